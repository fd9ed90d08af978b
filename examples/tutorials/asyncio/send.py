"""Tutorial 1, "Hello World!": send one message to the queue ``hello``.

asyncio (and so Tornado): run with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import os

from txamqp091.tornado import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


async def main() -> None:
    connection = await connect(URL)
    channel = await connection.channel()
    await channel.queue_declare("hello")
    await channel.basic_publish(exchange="", routing_key="hello", body=b"Hello World!")
    print(" [x] Sent 'Hello World!'")
    await connection.close()


if __name__ == "__main__":
    asyncio.run(main())
