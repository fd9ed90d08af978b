"""asyncio (or Tornado): publish one message, then consume it with ``async for``.

``docs/tornado.rst`` includes this file; ``tests/guide`` runs it.
"""

from __future__ import annotations

import asyncio
import os

from txamqp091.tornado import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost/")


async def main() -> None:
    conn = await connect(URL)
    ch = await conn.channel()
    await ch.queue_declare("q")
    await ch.basic_publish("", "q", b"body")
    async for msg in await ch.basic_consume("q"):
        print(msg.body)
        msg.ack()
        break
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
