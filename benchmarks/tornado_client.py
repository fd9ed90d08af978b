"""End-to-end Tornado/asyncio benchmark: txamqp091's Tornado adapter against pika
1.4.4's ``pika.adapters.tornado_connection.TornadoConnection`` and, as the asyncio
reference, aio-pika, all three talking to a real RabbitMQ broker (default
``127.0.0.1:5672``, guest/guest).

Every (scenario, client) pair runs in a *fresh interpreter* (this script
re-invoked with ``--worker``), so that one client's event loop, GC and
allocator state cannot colour another's. Each worker runs one scenario on the
default asyncio event loop (Tornado 6's ``IOLoop`` *is* that loop: pika gets
``IOLoop.current()`` as its ``custom_ioloop``; no uvloop). The parent only
orchestrates: it names the queues, pre-loads the consume scenarios with
``pika.BlockingConnection`` (outside any timed section), starts the workers
with a hard timeout, deletes the queues afterwards and prints the table. With
``--repeats N`` the runs are interleaved (scenario by scenario, client by
client) N times and the table shows medians. The layout, options and output
follow ``twisted_client.py``.

Measured in each worker, around the timed section only:

* wall clock (``time.perf_counter``) -> messages per second;
* client CPU, ``resource.getrusage(RUSAGE_SELF)`` user+sys delta -> CPU µs per
  message (everything the process did: client library, event loop, the
  benchmark loop itself; for ``rpc`` also the in-process responder).

Scenarios (counts are multiplied by ``--scale``):

1. ``publish``    100,000 x 64 B, no confirms, to a fresh queue; the clock
   stops when ``queue_declare(passive=True)``'s ``message_count`` reports all
   of them. txamqp091 and pika publish ``--batch`` messages per loop turn
   (txamqp091 then awaits the batch's last publish Future, which honours its
   transport back-pressure; pika has none and buffers). aio-pika awaits every
   ``exchange.publish`` in turn (its API is a coroutine per message).
2. ``confirm``    50,000 x 64 B with publisher confirms, at most 1,000
   unconfirmed (each confirmation publishes the next). txamqp091: the Future
   of ``basic_publish``; pika: its ``confirm_delivery`` ack callback (with
   ``multiple`` handled); aio-pika: one task per ``exchange.publish``.
3. ``consume``    100,000 pre-loaded messages, prefetch 1,000, one ack per
   message, each client's usual API: txamqp091 ``await consumer.get()`` in a
   coroutine; pika its ``on_message_callback`` (it has no pull API);
   aio-pika ``async for message in queue.iterator()`` + ``await message.ack()``.
3b ``consume-cb`` the same with a push callback for everyone (txamqp091
   ``basic_consume(on_message_callback=...)``, aio-pika ``queue.consume``).
   Extra, not one of the five targets.
4. ``rpc``        2,000 sequential round trips: publish a request (reply_to +
   correlation_id) to a request queue; a responder in the same process, on
   another channel of the same connection (``--rpc-responder connection``: on
   a second connection, as ``twisted_client.py`` does), replies from its
   message callback to the client's exclusive reply queue; the client awaits
   the reply. 100 warm-up round trips are not counted. Reports p50/p99 latency
   in µs; CPU is per round trip, both sides.
5. ``large``      2,000 x 1 MiB published with confirms (window 50) on one
   connection and consumed back (prefetch 50, one ack each) on another,
   concurrently; MB/s = MB moved end to end / wall time.

aio-pika publishes with ``mandatory=False`` like the other two (its default is
True) and builds an ``aio_pika.Message`` per publish, as its API requires.

Usage::

    python benchmarks/tornado_client.py                      # everything, full size
    python benchmarks/tornado_client.py --scale 0.3          # quicker
    python benchmarks/tornado_client.py --repeats 3 --json results.json
    python benchmarks/tornado_client.py --only consume --only rpc --client txamqp091
    python benchmarks/tornado_client.py --only publish --profile prof/   # cProfile

``--only`` takes a scenario name or number (1-5, 3b) and may be repeated or
comma-separated. ``--profile DIR`` runs cProfile over each worker's timed
section (timings are then inflated; use it to find hot spots, not to compare).
After the table the script checks the issue's targets for txamqp091.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import _floor  # noqa: E402
from _meter import Meter, latency  # noqa: E402
from _parent import (  # noqa: E402
    add_run_arguments,
    cleanup,
    fmt,
    idle_percent,
    installed,
    parse_only,
    preload,
    print_run,
    source_state,
    wait_for_idle,
    worker,
)
from _publish import publish_in_batches  # noqa: E402
from _rpc import BODY_64, call_in_turn  # noqa: E402

CLIENTS = ("txamqp091", "pika", "aiopika")
#: The rpc scenario's reference rows (not clients under test): see _floor.py.
FLOORS = _floor.FLOORS

#: name -> (number, base message count, one-line description)
SCENARIOS: dict[str, tuple[str, int, str]] = {
    "publish": ("1", 100_000, "publish 64 B, no confirms, until the queue holds all"),
    "confirm": ("2", 50_000, "publish 64 B with confirms, 1,000 in flight"),
    "consume": ("3", 100_000, "consume pre-loaded, prefetch 1,000, ack each (usual API)"),
    "consume-cb": ("3b", 100_000, "consume pre-loaded, prefetch 1,000, ack each (callback)"),
    "rpc": ("4", 2_000, "sequential RPC round trips (p50/p99 latency)"),
    "large": ("5", 2_000, "1 MiB publish with confirms (window 50) + consume back"),
}

MIB = 1 << 20
CONFIRM_WINDOW = 1000
PREFETCH = 1000
LARGE_WINDOW = 50
LARGE_PREFETCH = 50
RPC_WARMUP = 100
#: The untimed setup connection's name (pre-load, cleanup).
SETUP_NAME = "bench-tornado-setup"
POLL_INTERVAL = 0.002  # seconds between passive queue_declare polls

#: The issue's reference figures, measured earlier on this machine (msgs/s).
C_CLIENT_PUBLISH_RATE = 171_000


def scaled(name: str, scale: float) -> int:
    return max(1, round(SCENARIOS[name][1] * scale))


# ==========================================================================================
# Workers: run inside a fresh interpreter, one scenario, one client, on one asyncio loop.
# ==========================================================================================


def future_window(
    start_one: Callable[[], asyncio.Future[Any]], n: int, window: int
) -> asyncio.Future[None]:
    """Keep at most ``window`` of ``start_one()``'s futures pending; done once ``n`` are.

    ``start_one()`` publishes one message and returns a future that completes on
    the broker's ack (txamqp091's ``basic_publish`` Future, an aio-pika task).
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    sent = inflight = confirmed = 0

    def settled(f: asyncio.Future[Any]) -> None:
        nonlocal inflight, confirmed
        if done.done():
            return
        if f.cancelled():
            done.set_exception(RuntimeError("a publish was cancelled"))
            return
        error = f.exception()
        if error is not None:
            done.set_exception(error)
            return
        inflight -= 1
        confirmed += 1
        if confirmed == n:
            done.set_result(None)
        elif sent < n:
            pump()

    def pump() -> None:
        nonlocal sent, inflight
        while inflight < window and sent < n:
            sent += 1
            inflight += 1
            start_one().add_done_callback(settled)

    pump()
    return done


async def poll_count(declare_passive: Callable[[], Any], n: int) -> None:
    """Poll ``await declare_passive()`` (-> message count) until it reports ``n``."""
    while True:
        if await declare_passive() >= n:
            return
        await asyncio.sleep(POLL_INTERVAL)


def _url(a: argparse.Namespace, name: str) -> str:
    return f"amqp://{a.user}:{a.password}@{a.host}:{a.port}/?connection_name={name}"


# ---- txamqp091 ---------------------------------------------------------------------------


async def tx_scenario(a: argparse.Namespace, meter: Meter) -> dict[str, Any]:
    from txamqp091 import BasicProperties
    from txamqp091.tornado import connect

    scen, q, n = a.worker, a.queue, a.n
    conn = await connect(_url(a, f"bench-{scen}-tx"))
    conns = [conn]
    try:
        ch = await conn.channel()

        async def count() -> int:
            ok = await ch.queue_declare(q, passive=True)
            return int(ok.message_count)

        if scen == "publish":
            await ch.queue_declare(q)
            meter.start()
            await publish_in_batches(ch.basic_publish, asyncio.sleep, q, n, a.batch)
            await poll_count(count, n)
            meter.stop()
            await ch.queue_delete(q)
            return meter.result(n)

        if scen == "confirm":
            await ch.queue_declare(q)
            await ch.confirm_delivery()
            publish = ch.basic_publish
            meter.start()
            await future_window(lambda: publish("", q, BODY_64), n, CONFIRM_WINDOW)
            meter.stop()
            await ch.queue_delete(q)
            return meter.result(n)

        if scen == "consume":
            await ch.basic_qos(prefetch_count=PREFETCH)
            meter.start()
            consumer = await ch.basic_consume(q)
            get = consumer.get
            for _ in range(n):
                msg = await get()
                msg.ack()
            meter.stop()
            await consumer.cancel()
            await ch.queue_delete(q)
            return meter.result(n)

        if scen == "consume-cb":
            await ch.basic_qos(prefetch_count=PREFETCH)
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            received = 0

            def on_message(msg: Any) -> None:
                nonlocal received
                msg.ack()
                received += 1
                if received == n:
                    done.set_result(None)

            meter.start()
            consumer = await ch.basic_consume(q, on_message_callback=on_message)
            await done
            meter.stop()
            await consumer.cancel()
            await ch.queue_delete(q)
            return meter.result(n)

        if scen == "rpc":
            if a.rpc_responder == "connection":
                rconn = await connect(_url(a, "bench-rpc-tx-responder"))
                conns.append(rconn)
            else:
                rconn = conn
            rch = await rconn.channel()
            await rch.queue_declare(q, auto_delete=True)
            rpublish = rch.basic_publish

            def on_request(req: Any) -> None:  # returns None: nothing for the loop to await
                props = req.properties
                rpublish(
                    "",
                    props.reply_to,
                    req.body,
                    BasicProperties(correlation_id=props.correlation_id),
                )

            requests = await rch.basic_consume(q, on_message_callback=on_request, auto_ack=True)
            ok = await ch.queue_declare("", exclusive=True)
            reply_q = ok.queue
            replies = await ch.basic_consume(reply_q, auto_ack=True)
            lat: list[float] = []
            await call_in_turn(
                replies.get,
                ch.basic_publish,
                q,
                reply_q,
                RPC_WARMUP + n,
                lat,
                warmup=RPC_WARMUP,
                on_warm=meter.start,
            )
            meter.stop()
            await requests.cancel()
            await rch.queue_delete(q)
            return meter.result(n, **latency(lat[RPC_WARMUP:]))

        if scen == "large":
            cconn = await connect(_url(a, "bench-large-tx-consumer"))
            conns.append(cconn)
            await ch.queue_declare(q)
            await ch.confirm_delivery()
            cch = await cconn.channel()
            await cch.basic_qos(prefetch_count=LARGE_PREFETCH)
            body = b"x" * MIB
            nbytes = 0

            async def consume() -> None:
                nonlocal nbytes
                consumer = await cch.basic_consume(q)
                get = consumer.get
                for _ in range(n):
                    msg = await get()
                    nbytes += len(msg.body)
                    msg.ack()
                await consumer.cancel()

            publish = ch.basic_publish
            meter.start()
            consumed = asyncio.ensure_future(consume())
            await future_window(lambda: publish("", q, body), n, LARGE_WINDOW)
            await consumed
            meter.stop()
            if nbytes != n * MIB:
                raise RuntimeError(f"consumed {nbytes} bytes, expected {n * MIB}")
            await ch.queue_delete(q)
            return meter.result(n, mb_per_s=n * MIB / 1e6 / (meter.t1 - meter.t0))

        raise ValueError(f"unknown scenario {scen!r}")
    finally:
        for c in conns:
            if c.is_open:
                await asyncio.wait_for(c.close(), 10)


# ---- pika's Tornado adapter (callbacks wrapped in futures) ----------------------------------


class PikaFailure(Exception):
    pass


async def _pika_connect(a: argparse.Namespace, name: str) -> Any:
    import pika
    from pika.adapters.tornado_connection import TornadoConnection
    from tornado.ioloop import IOLoop

    loop = asyncio.get_running_loop()
    opened: asyncio.Future[Any] = loop.create_future()
    closed: asyncio.Future[Any] = loop.create_future()

    def on_open(conn: Any) -> None:
        if not opened.done():
            opened.set_result(conn)

    def on_open_error(conn: Any, exc: BaseException) -> None:
        if not opened.done():
            opened.set_exception(PikaFailure(f"pika could not connect: {exc!r}"))

    def on_close(conn: Any, exc: BaseException) -> None:
        if not closed.done():
            closed.set_result(exc)

    params = pika.ConnectionParameters(
        host=a.host,
        port=a.port,
        credentials=pika.PlainCredentials(a.user, a.password),
        client_properties={"connection_name": name},
    )
    conn = TornadoConnection(
        params,
        on_open_callback=on_open,
        on_open_error_callback=on_open_error,
        on_close_callback=on_close,
        custom_ioloop=IOLoop.current(),
    )
    conn.bench_closed = closed
    return await opened


async def _pika_channel(conn: Any) -> Any:
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def on_close(ch: Any, reason: BaseException) -> None:
        # The scenario itself would just stall (until --timeout); say why in the log.
        if not getattr(ch, "bench_closing", False):
            print(f"pika channel {ch.channel_number} closed: {reason!r}", file=sys.stderr)
        if not fut.done():
            fut.set_exception(PikaFailure(f"channel closed: {reason!r}"))

    conn.channel(on_open_callback=_resolver(fut))
    ch = await fut
    ch.add_on_close_callback(on_close)
    return ch


def _resolver(fut: asyncio.Future[Any]) -> Callable[[Any], None]:
    """A pika callback that completes ``fut`` with its argument (once)."""

    def resolve(value: Any) -> None:
        if not fut.done():
            fut.set_result(value)

    return resolve


def _pcall(method: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
    """Call a pika channel method with ``callback=``; the future gets its reply frame."""
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    method(*args, callback=_resolver(fut), **kwargs)
    return fut


async def _pika_confirm_mode(ch: Any) -> Callable[[bytes, str, int, int], asyncio.Future[None]]:
    """Confirm.Select on ``ch``; returns ``window_publish(body, queue, n, window)``.

    pika reports confirms through one callback per Basic.Ack (``multiple``
    covers every earlier tag); the outstanding tags are tracked in a set.
    """
    from pika import spec

    state: dict[str, Any] = {}

    def on_confirm(frame: Any) -> None:
        state["on_confirm"](frame.method)

    await _pcall(ch.confirm_delivery, on_confirm)

    def window_publish(body: bytes, queue: str, n: int, window: int) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending: set[int] = set()
        publish = ch.basic_publish
        seq = confirmed = 0
        lowest = 1

        def pump() -> None:
            nonlocal seq
            while seq - confirmed < window and seq < n:
                seq += 1
                pending.add(seq)
                publish("", queue, body)

        def on_method(method: Any) -> None:
            nonlocal confirmed, lowest
            if done.done():
                return
            if not isinstance(method, spec.Basic.Ack):
                done.set_exception(PikaFailure(f"broker nacked: {method!r}"))
                return
            tag = method.delivery_tag
            if method.multiple:
                for t in range(lowest, tag + 1):
                    if t in pending:
                        pending.remove(t)
                        confirmed += 1
                if tag >= lowest:
                    lowest = tag + 1
            elif tag in pending:
                pending.remove(tag)
                confirmed += 1
                while lowest <= seq and lowest not in pending:
                    lowest += 1
            if confirmed == n:
                done.set_result(None)
            elif seq < n:
                pump()

        state["on_confirm"] = on_method
        pump()
        return done

    return window_publish


async def pika_scenario(a: argparse.Namespace, meter: Meter) -> dict[str, Any]:
    import pika

    scen, q, n = a.worker, a.queue, a.n
    loop = asyncio.get_running_loop()
    conn = await _pika_connect(a, f"bench-{scen}-pika")
    conns = [conn]
    try:
        ch = await _pika_channel(conn)

        async def count() -> int:
            frame = await _pcall(ch.queue_declare, q, passive=True)
            return int(frame.method.message_count)

        if scen == "publish":
            await _pcall(ch.queue_declare, q)
            publish = ch.basic_publish
            batch = a.batch
            sleep = asyncio.sleep
            meter.start()
            sent = 0
            while sent < n:
                k = min(batch, n - sent)
                for _ in range(k):
                    publish("", q, BODY_64)
                sent += k
                await sleep(0)
            await poll_count(count, n)
            meter.stop()
            await _pcall(ch.queue_delete, q)
            return meter.result(n)

        if scen == "confirm":
            await _pcall(ch.queue_declare, q)
            window_publish = await _pika_confirm_mode(ch)
            meter.start()
            await window_publish(BODY_64, q, n, CONFIRM_WINDOW)
            meter.stop()
            await _pcall(ch.queue_delete, q)
            return meter.result(n)

        if scen in ("consume", "consume-cb"):
            # pika has no pull API: both scenarios use its on_message_callback.
            await _pcall(ch.basic_qos, prefetch_count=PREFETCH)
            done: asyncio.Future[None] = loop.create_future()
            received = 0

            def on_message(channel: Any, method: Any, _props: Any, _body: bytes) -> None:
                nonlocal received
                channel.basic_ack(method.delivery_tag)
                received += 1
                if received == n:
                    done.set_result(None)

            meter.start()
            consume_ok = loop.create_future()
            tag = ch.basic_consume(q, on_message, callback=_resolver(consume_ok))
            await consume_ok
            await done
            meter.stop()
            await _pcall(ch.basic_cancel, tag)
            await _pcall(ch.queue_delete, q)
            return meter.result(n)

        if scen == "rpc":
            if a.rpc_responder == "connection":
                rconn = await _pika_connect(a, "bench-rpc-pika-responder")
                conns.append(rconn)
            else:
                rconn = conn
            rch = await _pika_channel(rconn)
            await _pcall(rch.queue_declare, q, auto_delete=True)
            BasicProperties = pika.BasicProperties
            rpublish = rch.basic_publish

            def on_request(_ch: Any, _method: Any, props: Any, body: bytes) -> None:
                rpublish(
                    "", props.reply_to, body, BasicProperties(correlation_id=props.correlation_id)
                )

            req_ok = loop.create_future()
            req_tag = rch.basic_consume(
                q, on_request, auto_ack=True,
                callback=_resolver(req_ok),
            )  # fmt: skip
            await req_ok
            frame = await _pcall(ch.queue_declare, "", exclusive=True)
            reply_q = frame.method.queue
            waiter: list[asyncio.Future[Any]] = []

            def on_reply(_ch: Any, _method: Any, props: Any, _body: bytes) -> None:
                w = waiter.pop()
                w.set_result(props)

            rep_ok = loop.create_future()
            ch.basic_consume(
                reply_q, on_reply, auto_ack=True,
                callback=_resolver(rep_ok),
            )  # fmt: skip
            await rep_ok
            publish = ch.basic_publish
            create_future = loop.create_future
            perf = time.perf_counter
            lat: list[float] = []
            for i in range(RPC_WARMUP + n):
                if i == RPC_WARMUP:
                    meter.start()
                cid = str(i)
                t0 = perf()
                w = create_future()
                waiter.append(w)
                publish("", q, BODY_64, BasicProperties(reply_to=reply_q, correlation_id=cid))
                props = await w
                lat.append(perf() - t0)
                if props.correlation_id != cid:
                    raise RuntimeError(f"reply {props.correlation_id!r} for {cid!r}")
            meter.stop()
            await _pcall(rch.basic_cancel, req_tag)
            await _pcall(rch.queue_delete, q)
            return meter.result(n, **latency(lat[RPC_WARMUP:]))

        if scen == "large":
            cconn = await _pika_connect(a, "bench-large-pika-consumer")
            conns.append(cconn)
            await _pcall(ch.queue_declare, q)
            window_publish = await _pika_confirm_mode(ch)
            cch = await _pika_channel(cconn)
            await _pcall(cch.basic_qos, prefetch_count=LARGE_PREFETCH)
            body = b"x" * MIB
            nbytes = received = 0
            consumed: asyncio.Future[None] = loop.create_future()

            def on_large(channel: Any, method: Any, _props: Any, mbody: bytes) -> None:
                nonlocal nbytes, received
                nbytes += len(mbody)
                channel.basic_ack(method.delivery_tag)
                received += 1
                if received == n:
                    consumed.set_result(None)

            meter.start()
            consume_ok = loop.create_future()
            tag = cch.basic_consume(q, on_large, callback=_resolver(consume_ok))
            await window_publish(body, q, n, LARGE_WINDOW)
            await consumed
            meter.stop()
            await consume_ok
            await _pcall(cch.basic_cancel, tag)
            if nbytes != n * MIB:
                raise RuntimeError(f"consumed {nbytes} bytes, expected {n * MIB}")
            await _pcall(ch.queue_delete, q)
            return meter.result(n, mb_per_s=n * MIB / 1e6 / (meter.t1 - meter.t0))

        raise ValueError(f"unknown scenario {scen!r}")
    finally:
        for c in conns:
            if c.is_open:
                c.close()
            if not c.is_closed:
                try:
                    await asyncio.wait_for(asyncio.shield(c.bench_closed), 10)
                except asyncio.TimeoutError:
                    pass


# ---- aio-pika (the asyncio reference) -------------------------------------------------------


async def aiopika_scenario(a: argparse.Namespace, meter: Meter) -> dict[str, Any]:
    import aio_pika

    Message = aio_pika.Message
    scen, q, n = a.worker, a.queue, a.n
    loop = asyncio.get_running_loop()
    confirms = scen in ("confirm", "large")
    conn = await aio_pika.connect(_url(a, f"bench-{scen}-aiopika"))
    conns = [conn]
    try:
        ch = await conn.channel(publisher_confirms=confirms)
        exchange = ch.default_exchange

        async def count() -> int:
            queue = await ch.declare_queue(q, passive=True)
            return int(queue.declaration_result.message_count)

        if scen == "publish":
            await ch.declare_queue(q)
            publish = exchange.publish
            meter.start()
            for _ in range(n):
                await publish(Message(BODY_64), q, mandatory=False)
            await poll_count(count, n)
            meter.stop()
            await ch.queue_delete(q)
            return meter.result(n)

        if scen == "confirm":
            await ch.declare_queue(q)
            publish = exchange.publish
            ensure = asyncio.ensure_future
            meter.start()
            await future_window(
                lambda: ensure(publish(Message(BODY_64), q, mandatory=False)), n, CONFIRM_WINDOW
            )
            meter.stop()
            await ch.queue_delete(q)
            return meter.result(n)

        if scen == "consume":
            await ch.set_qos(prefetch_count=PREFETCH)
            queue = await ch.get_queue(q, ensure=False)
            received = 0
            meter.start()
            async with queue.iterator() as it:
                async for message in it:
                    await message.ack()
                    received += 1
                    if received == n:
                        meter.stop()
                        break
            await ch.queue_delete(q)
            return meter.result(n)

        if scen == "consume-cb":
            await ch.set_qos(prefetch_count=PREFETCH)
            queue = await ch.get_queue(q, ensure=False)
            done: asyncio.Future[None] = loop.create_future()
            received = 0

            async def on_message(message: Any) -> None:
                nonlocal received
                await message.ack()
                received += 1
                if received == n:
                    done.set_result(None)

            meter.start()
            tag = await queue.consume(on_message)
            await done
            meter.stop()
            await queue.cancel(tag)
            await ch.queue_delete(q)
            return meter.result(n)

        if scen == "rpc":
            if a.rpc_responder == "connection":
                rconn = await aio_pika.connect(_url(a, "bench-rpc-aiopika-responder"))
                conns.append(rconn)
            else:
                rconn = conn
            rch = await rconn.channel(publisher_confirms=False)
            requests = await rch.declare_queue(q, auto_delete=True)
            rpublish = rch.default_exchange.publish

            async def on_request(req: Any) -> None:
                await rpublish(
                    Message(req.body, correlation_id=req.correlation_id),
                    req.reply_to,
                    mandatory=False,
                )

            req_tag = await requests.consume(on_request, no_ack=True)
            reply_queue = await ch.declare_queue("", exclusive=True)
            reply_q = reply_queue.name
            waiter: list[asyncio.Future[Any]] = []

            async def on_reply(message: Any) -> None:
                waiter.pop().set_result(message.correlation_id)

            await reply_queue.consume(on_reply, no_ack=True)
            publish = exchange.publish
            create_future = loop.create_future
            perf = time.perf_counter
            lat: list[float] = []
            for i in range(RPC_WARMUP + n):
                if i == RPC_WARMUP:
                    meter.start()
                cid = str(i)
                t0 = perf()
                w = create_future()
                waiter.append(w)
                await publish(
                    Message(BODY_64, reply_to=reply_q, correlation_id=cid), q, mandatory=False
                )
                got = await w
                lat.append(perf() - t0)
                if got != cid:
                    raise RuntimeError(f"reply {got!r} for {cid!r}")
            meter.stop()
            await requests.cancel(req_tag)
            await rch.queue_delete(q)
            return meter.result(n, **latency(lat[RPC_WARMUP:]))

        if scen == "large":
            cconn = await aio_pika.connect(_url(a, "bench-large-aiopika-consumer"))
            conns.append(cconn)
            await ch.declare_queue(q)
            cch = await cconn.channel(publisher_confirms=False)
            await cch.set_qos(prefetch_count=LARGE_PREFETCH)
            cqueue = await cch.get_queue(q, ensure=False)
            body = b"x" * MIB
            nbytes = received = 0
            consumed: asyncio.Future[None] = loop.create_future()

            async def on_large(message: Any) -> None:
                nonlocal nbytes, received
                nbytes += len(message.body)
                await message.ack()
                received += 1
                if received == n:
                    consumed.set_result(None)

            publish = exchange.publish
            ensure = asyncio.ensure_future
            meter.start()
            tag = await cqueue.consume(on_large)
            await future_window(
                lambda: ensure(publish(Message(body), q, mandatory=False)), n, LARGE_WINDOW
            )
            await consumed
            meter.stop()
            await cqueue.cancel(tag)
            if nbytes != n * MIB:
                raise RuntimeError(f"consumed {nbytes} bytes, expected {n * MIB}")
            await ch.queue_delete(q)
            return meter.result(n, mb_per_s=n * MIB / 1e6 / (meter.t1 - meter.t0))

        raise ValueError(f"unknown scenario {scen!r}")
    finally:
        for c in conns:
            if not c.is_closed:
                await asyncio.wait_for(c.close(), 10)


WORKERS = {"txamqp091": tx_scenario, "pika": pika_scenario, "aiopika": aiopika_scenario}


def run_worker(a: argparse.Namespace) -> int:
    """One scenario, one client, in this process; the result goes to ``a.out`` as JSON."""
    profiler = None
    if a.profile_out:
        import cProfile

        profiler = cProfile.Profile()
    meter = Meter(profiler)
    result: dict[str, Any] = {}

    async def main() -> dict[str, Any]:
        return await asyncio.wait_for(WORKERS[a.client](a, meter), a.timeout)

    try:
        if a.client in FLOORS:  # their own loop, if any (_floor.py): not the adapter's
            result.update(_floor.worker(a, meter, latency, RPC_WARMUP))
        else:
            result.update(asyncio.run(main()))
    except asyncio.TimeoutError:
        result["error"] = f"timeout: {a.worker} did not finish within {a.timeout} s"
    except BaseException:
        result["error"] = traceback.format_exc()
    if profiler is not None:
        profiler.dump_stats(a.profile_out)
    result.setdefault("scenario", a.worker)
    result["client"] = a.client
    Path(a.out).write_text(json.dumps(result))
    return 0 if "error" not in result else 1


# ==========================================================================================
# Parent: orchestration, pre-loading, cleanup, table.
# ==========================================================================================


def run_one(a: argparse.Namespace, scenario: str, client: str, rep: int) -> dict[str, Any]:
    n = scaled(scenario, a.scale)
    queue = f"bench.tornado.{scenario}.{client}.{uuid.uuid4().hex[:8]}"
    result: dict[str, Any]
    try:
        if scenario in ("consume", "consume-cb"):
            secs = preload(a, queue, n, SETUP_NAME)
            if a.verbose:
                print(f"  pre-loaded {n} messages into {queue} in {secs:.1f} s", file=sys.stderr)
    except Exception as exc:
        cleanup(a, [queue], SETUP_NAME)
        result = {"error": f"pre-load failed: {exc!r}"}
        result.update(scenario=scenario, client=client, repeat=rep)
        return result
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        out = tmp.name
    head, root = worker(a, ROOT, Path(__file__).name)
    cmd = [
        *head,
        "--worker", scenario,
        "--client", client,
        "--queue", queue,
        "--n", str(n),
        "--out", out,
        "--timeout", str(a.timeout),
        "--batch", str(a.batch),
        "--rpc-responder", a.rpc_responder,
        "--host", a.host,
        "--port", str(a.port),
        "--user", a.user,
        "--password", a.password,
    ]  # fmt: skip
    if a.profile:
        Path(a.profile).mkdir(parents=True, exist_ok=True)
        cmd += ["--profile-out", str(Path(a.profile) / f"{scenario}-{client}-{rep}.prof")]
    idle_before = wait_for_idle(a.wait_idle, a.wait_idle_max) if a.wait_idle else idle_percent()
    load_before = os.getloadavg()[0]
    try:
        proc = subprocess.run(
            cmd, cwd=root, timeout=a.timeout + 30, capture_output=True, text=True, check=False
        )
        try:
            result = json.loads(Path(out).read_text())
        except (OSError, ValueError):
            result = {"error": f"worker exited {proc.returncode}: {proc.stderr[-2000:]}"}
        if proc.returncode and "error" not in result:
            result["error"] = f"worker exited {proc.returncode}: {proc.stderr[-2000:]}"
        if "error" in result and proc.stderr.strip():
            result["stderr"] = proc.stderr[-2000:]
    except subprocess.TimeoutExpired:
        result = {"error": f"worker killed after {a.timeout + 30} s"}
    finally:
        try:
            os.unlink(out)
        except OSError:
            pass
        cleanup(a, [queue], SETUP_NAME)
    result.update(
        scenario=scenario, client=client, repeat=rep, loadavg_1m=load_before,
        idle_pct_before=idle_before,
    )  # fmt: skip
    if client == "txamqp091":
        result["source_sha1"] = source_state(root)["source_sha1"]
    return result


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    keys = ("msgs_per_s", "cpu_us_per_msg", "mb_per_s", "p50_us", "p99_us", "wall_s", "cpu_s")
    order = list(SCENARIOS)
    seen = sorted(
        {(r["scenario"], r["client"]) for r in runs},
        key=lambda sc: (order.index(sc[0]), (*CLIENTS, *FLOORS).index(sc[1])),
    )
    for scenario, client in seen:
        mine = [r for r in runs if r["scenario"] == scenario and r["client"] == client]
        ok = [r for r in mine if "error" not in r]
        row: dict[str, Any] = {"scenario": scenario, "client": client, "runs": len(ok)}
        row["errors"] = len(mine) - len(ok)
        for k in keys:
            vals = [r[k] for r in ok if k in r]
            if vals:
                row[k] = statistics.median(vals)
                if len(vals) > 1:
                    row[k + "_min"] = min(vals)
                    row[k + "_max"] = max(vals)
        if ok:
            row["n"] = ok[0]["n"]
        rows.append(row)
    # Ratios against pika: the median of the per-repeat ratios (each run against the pika
    # run of the same repeat, minutes apart at most), which cancels slow drifts in
    # machine load better than a ratio of medians (also given, as *_of_medians).
    by = {(r["scenario"], r["client"]): r for r in rows}
    ok_runs = {(r["scenario"], r["client"], r["repeat"]): r for r in runs if "error" not in r}
    for r in rows:
        if r["client"] == "pika" or r["client"] in FLOORS:
            continue
        p = by.get((r["scenario"], "pika"))
        if not (p and "msgs_per_s" in r and "msgs_per_s" in p):
            continue
        r["speedup_of_medians"] = r["msgs_per_s"] / p["msgs_per_s"]
        r["cpu_ratio_of_medians"] = p["cpu_us_per_msg"] / r["cpu_us_per_msg"]
        pairs = [
            (t, ok_runs[(scen, "pika", rep)])
            for (scen, client, rep), t in ok_runs.items()
            if scen == r["scenario"] and client == r["client"] and (scen, "pika", rep) in ok_runs
        ]
        if pairs:
            r["speedup"] = statistics.median(t["msgs_per_s"] / q["msgs_per_s"] for t, q in pairs)
            r["cpu_ratio"] = statistics.median(
                q["cpu_us_per_msg"] / t["cpu_us_per_msg"] for t, q in pairs
            )
            if "p50_us" in r and "p50_us" in p:
                r["p50_ratio"] = statistics.median(q["p50_us"] / t["p50_us"] for t, q in pairs)
            r["paired_runs"] = len(pairs)
    return rows


def print_table(rows: list[dict[str, Any]], repeats: int) -> None:
    head = (
        f"{'#':<3} {'scenario':<11} {'client':<10} {'n':>7} {'msgs/s':>9} {'CPU µs/msg':>10} "
        f"{'MB/s':>7} {'p50 µs':>7} {'p99 µs':>7} {'speedup':>8} {'CPU ratio':>9}"
    )
    print()
    print(
        f"Tornado/asyncio end-to-end, medians of {repeats} run(s) "
        "(speedup = client rate / pika rate;\n CPU ratio = pika CPU per message / client CPU "
        "per message; both are medians of per-repeat paired ratios)"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        if not r["runs"]:
            print(
                f"{SCENARIOS[r['scenario']][0]:<3} {r['scenario']:<11} {r['client']:<10} "
                f"{'FAILED':>7} ({r['errors']} error(s))"
            )
            continue
        print(
            f"{SCENARIOS[r['scenario']][0]:<3} {r['scenario']:<11} {r['client']:<10} {r['n']:>7} "
            f"{r['msgs_per_s']:>9,.0f} {r['cpu_us_per_msg']:>10.2f} "
            f"{fmt(r.get('mb_per_s'), '7.0f'):>7} {fmt(r.get('p50_us'), '7.0f'):>7} "
            f"{fmt(r.get('p99_us'), '7.0f'):>7} "
            f"{fmt(r.get('speedup'), '7.2f') + ('x' if 'speedup' in r else ''):>8} "
            f"{fmt(r.get('cpu_ratio'), '8.2f') + ('x' if 'cpu_ratio' in r else ''):>9}"
        )
    print()


def check_targets(rows: list[dict[str, Any]], c_publish_rate: float) -> list[dict[str, Any]]:
    """The issue's targets for txamqp091, judged against pika measured in the same run."""
    by = {(r["scenario"], r["client"]): r for r in rows if r.get("runs")}
    checks: list[dict[str, Any]] = []

    def add(name: str, value: float | None, goal: str, ok: bool | None) -> None:
        checks.append({"target": name, "value": value, "goal": goal, "met": ok})

    for scen in ("publish", "confirm", "consume"):
        t = by.get((scen, "txamqp091"))
        if t and "cpu_ratio" in t:
            add(f"{scen}: CPU/msg <= 1/2 pika's", t["cpu_ratio"], "pika/tx >= 2.00x",
                t["cpu_ratio"] >= 2.0)  # fmt: skip
    t = by.get(("publish", "txamqp091"))
    if t:
        goal = 0.85 * c_publish_rate
        add("publish: within 15% of the C client", t["msgs_per_s"],
            f">= {goal:,.0f} msg/s", t["msgs_per_s"] >= goal)  # fmt: skip
    t = by.get(("consume", "txamqp091"))
    if t and "speedup" in t:
        add("consume: >= 1.5x pika", t["speedup"], ">= 1.50x", t["speedup"] >= 1.5)
    t = by.get(("rpc", "txamqp091"))
    if t and "p50_us" in t:
        add("rpc: p50 < 200 µs", t["p50_us"], "< 200 µs", t["p50_us"] < 200)
    if checks:
        print("Targets for txamqp091:")
        for c in checks:
            v = c["value"]
            shown = f"{v:,.0f}" if v >= 100 else f"{v:.2f}"
            print(
                f"  {'MET ' if c['met'] else 'MISS'}  {c['target']:<38} {shown:>10}  ({c['goal']})"
            )
        print()
    return checks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(p, SCENARIOS, CLIENTS, "loop", "asyncio-floor: the loop without txamqp091")
    p.add_argument(
        "--c-publish-rate",
        type=float,
        default=C_CLIENT_PUBLISH_RATE,
        help="the C client's publish rate for the 'within 15%%' target (default 171000)",
    )
    a = p.parse_args(argv)

    if a.worker:
        a.client = a.client[0] if a.client else "txamqp091"
        return run_worker(a)

    scenarios = parse_only(a.only, SCENARIOS)
    clients = [c for c in CLIENTS if not a.client or c in a.client]
    # pika and aio-pika are only imported by their own workers: the txamqp091 rows run
    # without the ``bench`` extra.
    import tornado

    import txamqp091

    print(
        f"python {platform.python_version()}, txamqp091 {getattr(txamqp091, '__version__', '?')}, "
        f"pika {installed('pika')}, aio-pika {installed('aio-pika')}, tornado {tornado.version}, "
        f"broker {a.host}:{a.port}, scale {a.scale}, repeats {a.repeats}",
        flush=True,
    )
    runs: list[dict[str, Any]] = []
    for rep in range(a.repeats):
        for scenario in scenarios:
            for client in _floor.rows(scenario, clients, a.client, a.no_floor, ("asyncio",)):
                r = run_one(a, scenario, client, rep)
                runs.append(r)
                print_run(rep, a.repeats, scenario, client, r, a.verbose)
    rows = summarize(runs)
    print_table(rows, a.repeats)
    checks = check_targets(rows, a.c_publish_rate) if "txamqp091" in clients else []
    if a.json:
        meta = {
            "benchmark": "tornado_client",
            "python": platform.python_version(),
            "pika": installed("pika"),
            "aio_pika": installed("aio-pika"),
            "tornado": tornado.version,
            "txamqp091": getattr(txamqp091, "__version__", None),
            "broker": f"{a.host}:{a.port}",
            "scale": a.scale,
            "repeats": a.repeats,
            "batch": a.batch,
            "rpc_responder": a.rpc_responder,
            "cpus": os.cpu_count(),
            **source_state(ROOT),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        Path(a.json).write_text(
            json.dumps({"meta": meta, "summary": rows, "targets": checks, "runs": runs}, indent=2)
        )
        print(f"wrote {a.json}")
    return 1 if any("error" in r for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
