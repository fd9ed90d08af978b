"""The publish scenario's loop, once: the live benchmarks (``twisted_client.py``,
``tornado_client.py``) and the broker-less harness (``client_path.py``) must time the
same code, or the harness' figures say nothing about the live ones. It runs on every
client whose publish returns something to await: txamqp091 on both adapters (a
Deferred, a future) and pika's Twisted adapter (a fired Deferred). pika's Tornado
adapter, whose publish returns None, keeps its own loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from _rpc import BODY_64


async def publish_in_batches(
    publish: Callable[..., Any],
    sleep: Callable[[float], Awaitable[Any]],
    queue: str,
    n: int,
    batch: int,
) -> None:
    """``n`` publishes of ``BODY_64`` to ``queue``, ``batch`` per loop turn: the last
    waiter of each batch awaited (done at once unless the transport pushed back), then
    ``sleep(0)``, the loop turn that writes them."""
    sent = 0
    waiter: Any = None
    while sent < n:
        k = min(batch, n - sent)
        for _ in range(k):
            waiter = publish("", queue, BODY_64)
        sent += k
        await waiter
        await sleep(0)
