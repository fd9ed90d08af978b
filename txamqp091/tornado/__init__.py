"""txamqp091 for Tornado and asyncio: every operation returns an awaitable (a Future).

::

    conn = await connect("amqp://guest:guest@localhost/")
    ch = await conn.channel()
    await ch.basic_publish("", "q", b"body")
    async for msg in await ch.basic_consume("q"):
        msg.ack()

Tornado 6 runs on asyncio, so this package works from Tornado coroutines and
from plain asyncio alike. It imports nothing from Twisted.
"""

from __future__ import annotations

from .channel import Channel, Connection, Consumer
from .client import AMQPClient, RecoveringChannel, RecoveringConsumer
from .connect import connect
from .protocol import AMQPProtocol

__all__ = [
    "AMQPClient",
    "AMQPProtocol",
    "Channel",
    "Connection",
    "Consumer",
    "RecoveringChannel",
    "RecoveringConsumer",
    "connect",
]
