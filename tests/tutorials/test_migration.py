"""The migration guide's before/after programs print the same thing against the real broker.

Each pair is a pika program and its txamqp091 port (examples/migration/); the guide
includes both with ``literalinclude``, so a port that drifts from its original fails here.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from .programs import EXAMPLES, private_vhost, run

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl"),
]

EXPECTED = [
    "got message 0 (header x-n=0)",
    "got message 1 (header x-n=1)",
    "got message 2 (header x-n=2)",
    "queue empty",
]


@pytest.fixture(scope="module")
def vhost_url() -> Iterator[str]:
    yield from private_vhost()


@pytest.mark.parametrize("adapter", ["twisted", "asyncio"])
def test_port_prints_what_the_pika_original_prints(vhost_url: str, adapter: str) -> None:
    before = run(EXAMPLES / "migration" / f"pika_{adapter}.py", [], vhost_url)
    after = run(EXAMPLES / "migration" / f"txamqp091_{adapter}.py", [], vhost_url)
    assert before == EXPECTED
    assert after == before


EXPECTED_BLOCKING = [
    "returned: 312 NO_ROUTE",
    "got order 0 via order.0 (x-n=0)",
    "got order 1 via order.1 (x-n=1)",
    "got order 2 via order.2 (x-n=2)",
    "queue empty",
]


def test_blocking_port_prints_what_the_pika_original_prints(vhost_url: str) -> None:
    """The guide's table says which lines of a pika script change; the pair proves it."""
    before = run(EXAMPLES / "migration" / "pika_blocking.py", [], vhost_url)
    after = run(EXAMPLES / "migration" / "txamqp091_blocking.py", [], vhost_url)
    assert before == EXPECTED_BLOCKING
    assert after == before
