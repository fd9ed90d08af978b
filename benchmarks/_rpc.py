"""The rpc scenario's user code on txamqp091, once: the live benchmarks
(``twisted_client.py``, ``tornado_client.py``) and the broker-less harness
(``rpc_path.py``) must time the same code, or the harness' figures say nothing about
the live ones. Both adapters run it unchanged: ``await get()`` takes a Deferred in a
coroutine driven by ``ensureDeferred`` as it takes an asyncio future in a task.

pika's rows keep their own loops: pika's ``get()`` returns a tuple, not a message.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from txamqp091 import BasicProperties

#: The request (and so the reply) body, as in the C client's rpc scenario.
BODY_64 = b"x" * 64


async def answer_requests(requests: Any, publish: Callable[..., Any]) -> None:
    """The responder: each request's body back to its ``reply_to`` with its
    ``correlation_id``, until ``requests.get()`` raises (the consumer cancelled)."""
    get = requests.get
    while True:
        try:
            req = await get()
        except BaseException:
            return
        props = req.properties
        publish(
            "",
            props.reply_to,
            req.body,
            BasicProperties(correlation_id=props.correlation_id),
        )


async def call_in_turn(
    get: Callable[[], Awaitable[Any]],
    publish: Callable[..., Any],
    queue: str,
    reply_queue: str,
    calls: int,
    latencies: list[float],
    warmup: int = 0,
    on_warm: Callable[[], object] | None = None,
) -> None:
    """The client: ``calls`` sequential round trips, each one's latency (seconds) appended
    to ``latencies``; ``on_warm`` runs before call number ``warmup`` (the meter's start),
    so that the first calls warm the caches outside the timed window."""
    perf = time.perf_counter
    append = latencies.append
    for i in range(calls):
        if i == warmup and on_warm is not None:
            on_warm()
        cid = str(i)
        t0 = perf()
        publish("", queue, BODY_64, BasicProperties(reply_to=reply_queue, correlation_id=cid))
        reply = await get()
        append(perf() - t0)
        if reply.properties.correlation_id != cid:
            raise RuntimeError(f"reply {reply.properties.correlation_id!r} for {cid!r}")
