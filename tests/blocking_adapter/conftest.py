"""Fixtures for the blocking facade's tests: a connection, a channel, unique names.

Every name a test takes from ``names`` is deleted (as a queue and as an exchange)
after the test, on a connection of its own, whatever the test left behind.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.blocking_adapter.support import AMQP_URL, Names
from txamqp091 import blocking


@pytest.fixture
def names() -> Iterator[Names]:
    n = Names()
    yield n
    n.delete_all()


@pytest.fixture
def conn() -> Iterator[blocking.BlockingConnection]:
    c = blocking.BlockingConnection(AMQP_URL, timeout=10)
    yield c
    if c.is_open:
        c.close()


@pytest.fixture
def ch(conn: blocking.BlockingConnection) -> blocking.BlockingChannel:
    return conn.channel()
