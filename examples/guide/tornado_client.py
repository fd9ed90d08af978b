"""asyncio (or Tornado): ``AMQPClient`` publishing through whichever cluster node answers.

Run it with the nodes' URLs as arguments (``AMQP_URL`` or localhost without any);
a node that refuses the connection is skipped for the next one.
``docs/tornado.rst`` includes this file; ``tests/guide`` runs it.
"""

from __future__ import annotations

import asyncio
import os
import sys

from txamqp091.tornado import AMQPClient

NODES = sys.argv[1:] or [os.environ.get("AMQP_URL", "amqp://guest:guest@localhost/")]


async def run() -> None:
    async with AMQPClient(NODES) as client:  # start() ... stop()
        ch = await client.channel()  # survives reconnects
        await ch.queue_declare("q")
        await ch.confirm_delivery()
        await ch.basic_publish("", "q", b"body")  # waits out outages
        print("the broker has the message")
        msg = await ch.basic_get("q")
        assert msg is not None
        print("got", msg.body)
        msg.ack()
        await ch.queue_delete("q")


if __name__ == "__main__":
    asyncio.run(run())
