"""Tutorial 1, "Hello World!": print every message that arrives on the queue ``hello``.

Twisted, written with ``async def`` and ``defer.ensureDeferred``. The callback gets one
:class:`~txamqp091.Message` per delivery; it runs until the connection ends or CTRL+C.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, task

from txamqp091 import Message
from txamqp091.twisted import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


def callback(message: Message) -> None:
    print(f" [x] Received {message.body!r}")


async def main(reactor: Any) -> None:
    connection = await connect(reactor, URL)
    channel = await connection.channel()
    await channel.queue_declare("hello")
    await channel.basic_consume("hello", on_message_callback=callback, auto_ack=True)
    print(" [*] Waiting for messages. To exit press CTRL+C")
    await connection.closed


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
