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
