"""Tutorial 3, "Publish/Subscribe": print every log line sent to the ``logs`` exchange.

Each receiver declares its own server-named, exclusive queue (``queue_declare("")``:
the broker picks the name, and deletes the queue when this connection ends) and binds
it to the fanout exchange.
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
    await channel.exchange_declare("logs", exchange_type="fanout")
    declared = await channel.queue_declare("", exclusive=True)
    await channel.queue_bind(declared.queue, "logs")
    consumer = await channel.basic_consume(declared.queue, auto_ack=True)
    print(" [*] Waiting for logs. To exit press CTRL+C")
    async for message in consumer:
        print(f" [x] {message.body.decode()}")


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
