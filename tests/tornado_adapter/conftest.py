"""Fixtures for the asyncio/Tornado adapter tests: a connection, a channel, unique names.

Every name a test takes from ``names`` is deleted (as a queue and as an
exchange) on a fresh connection after the test, whatever it left behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.tornado_adapter.support import AMQP_URL, Names
from txamqp091.tornado import Channel, Connection, connect


@pytest_asyncio.fixture
async def names() -> AsyncIterator[Names]:
    n = Names()
    yield n
    await n.delete_all()


@pytest_asyncio.fixture
async def conn() -> AsyncIterator[Connection]:
    c = await connect(AMQP_URL)
    yield c
    if c.is_open:
        await c.close()


@pytest_asyncio.fixture
async def ch(conn: Connection) -> Channel:
    channel: Channel = await conn.channel()
    return channel
