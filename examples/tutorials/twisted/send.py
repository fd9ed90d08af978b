"""Tutorial 1, "Hello World!": send one message to the queue ``hello``.

Twisted, written with ``async def`` and ``defer.ensureDeferred``.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, task

from txamqp091.twisted import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


async def main(reactor: Any) -> None:
    connection = await connect(reactor, URL)
    channel = await connection.channel()
    await channel.queue_declare("hello")
    await channel.basic_publish(exchange="", routing_key="hello", body=b"Hello World!")
    print(" [x] Sent 'Hello World!'")
    await connection.close()


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
