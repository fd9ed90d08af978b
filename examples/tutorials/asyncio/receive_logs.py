"""Tutorial 3, "Publish/Subscribe": print every log line sent to the ``logs`` exchange.

Each receiver declares its own server-named, exclusive queue (``queue_declare("")``:
the broker picks the name, and deletes the queue when this connection ends) and binds
it to the fanout exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from txamqp091.tornado import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


async def main() -> None:
    connection = await connect(URL)
    channel = await connection.channel()
    await channel.exchange_declare("logs", exchange_type="fanout")
    declared = await channel.queue_declare("", exclusive=True)
    await channel.queue_bind(declared.queue, "logs")
    consumer = await channel.basic_consume(declared.queue, auto_ack=True)
    print(" [*] Waiting for logs. To exit press CTRL+C")
    async for message in consumer:
        print(f" [x] {message.body.decode()}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # CTRL+C ends it quietly
        asyncio.run(main())
