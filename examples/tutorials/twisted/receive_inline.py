"""Tutorial 1, "Hello World!": print every message that arrives on the queue ``hello``.

Twisted, written with ``@defer.inlineCallbacks``. It runs until the connection ends or
CTRL+C.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

from twisted.internet import defer, task

from txamqp091 import Message
from txamqp091.twisted import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


def callback(message: Message) -> None:
    print(f" [x] Received {message.body!r}")


@defer.inlineCallbacks
def main(reactor: Any) -> Generator[defer.Deferred[Any], Any, None]:
    connection = yield connect(reactor, URL)
    channel = yield connection.channel()
    yield channel.queue_declare("hello")
    yield channel.basic_consume("hello", on_message_callback=callback, auto_ack=True)
    print(" [*] Waiting for messages. To exit press CTRL+C")
    yield connection.closed


if __name__ == "__main__":
    task.react(main)
