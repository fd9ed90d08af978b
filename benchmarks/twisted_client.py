"""End-to-end Twisted benchmark: txamqp091's Twisted adapter against pika 1.4.4's
``pika.adapters.twisted_connection.TwistedProtocolConnection``, both talking to a
real RabbitMQ broker (default ``127.0.0.1:5672``, guest/guest).

Every (scenario, client) pair runs in a *fresh interpreter* (this script
re-invoked with ``--worker``), because a Twisted reactor cannot be restarted and
one client's reactor, GC and allocator state must not colour the other's. The
parent only orchestrates: it names the queues, pre-loads the consume scenario
with ``pika.BlockingConnection`` (outside any timed section), starts the
workers with a hard timeout, deletes the queues afterwards and prints the
table. With ``--repeats N`` the pairs are interleaved (scenario by scenario,
client by client) N times and the table shows medians.

Measured in each worker, around the timed section only:

* wall clock (``time.perf_counter``) -> messages per second;
* client CPU, ``resource.getrusage(RUSAGE_SELF)`` user+sys delta -> CPU µs per
  message (everything the process did: client library, reactor, the
  benchmark loop itself; for ``rpc`` also the in-process responder).

Scenarios (counts are multiplied by ``--scale``):

1. ``publish``    100,000 x 64 B, no confirms, to a fresh queue; the clock
   stops when ``queue_declare(passive=True).message_count`` reports all of
   them. Published in batches of ``--batch`` per reactor turn (the loop
   awaits the last publish Deferred of each batch, which honours
   txamqp091's transport back-pressure and is an already-fired Deferred for
   pika, whose Twisted adapter has none).
2. ``confirm``    50,000 x 64 B with publisher confirms, at most 1,000
   unconfirmed (each confirm's Deferred callback publishes the next).
3. ``consume``    100,000 pre-loaded messages, prefetch 1,000, one
   ``basic_ack`` per message, read with the adapters' pull API in a coroutine
   (txamqp091 ``await consumer.get()``; pika ``await queue_object.get()``).
3b ``consume-cb`` the same with a push callback (txamqp091
   ``basic_consume(on_message_callback=...)``; pika: the wrapped
   ``pika.channel.Channel`` behind ``TwistedChannel._channel``, since pika's
   Twisted wrapper only offers the queue). Extra, not one of the five targets.
4. ``rpc``        2,000 sequential round trips: publish a request (reply_to +
   correlation_id) to a request queue; a responder in the same process
   echoes it back to the client's exclusive reply queue;
   the client awaits the reply. 100 warm-up round trips are not counted.
   The responder is on another channel of the client's connection, as in the C
   program (``--rpc-responder connection``: on a second connection).
   Reports p50/p99 latency in µs; CPU is per round trip, both sides.
5. ``large``      2,000 x 1 MiB published with confirms (window 50) on one
   connection and consumed back (prefetch 50, one ack each) on another,
   concurrently; MB/s = MiB moved end to end / wall time.

Usage::

    python benchmarks/twisted_client.py                      # everything, full size
    python benchmarks/twisted_client.py --scale 0.3          # quicker
    python benchmarks/twisted_client.py --repeats 3 --json results.json
    python benchmarks/twisted_client.py --only consume --only rpc --client txamqp091
    python benchmarks/twisted_client.py --only publish --profile prof/   # cProfile each worker

``--only`` takes a scenario name or number (1-5, 3b) and may be repeated or
comma-separated. ``--profile DIR`` runs every worker under cProfile (timings
are then inflated; use it to find hot spots, not to compare).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
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
from _rpc import BODY_64, answer_requests, call_in_turn  # noqa: E402

CLIENTS = ("txamqp091", "pika")
#: The rpc scenario's reference rows (not clients under test): see _floor.py.
FLOORS = _floor.FLOORS

#: name -> (number, base message count, one-line description)
SCENARIOS: dict[str, tuple[str, int, str]] = {
    "publish": ("1", 100_000, "publish 64 B, no confirms, until the queue holds all"),
    "confirm": ("2", 50_000, "publish 64 B with confirms, 1,000 in flight"),
    "consume": ("3", 100_000, "consume pre-loaded, prefetch 1,000, ack each (pull API)"),
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
SETUP_NAME = "bench-twisted-setup"
POLL_INTERVAL = 0.002  # seconds between passive queue_declare polls


def scaled(name: str, scale: float) -> int:
    return max(1, round(SCENARIOS[name][1] * scale))


# ==========================================================================================
# Workers: run inside a fresh interpreter, one scenario, one client.
# ==========================================================================================


def _sleep(reactor: Any, seconds: float) -> Any:
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)


# ---- txamqp091 ---------------------------------------------------------------------------


async def _tx_connect(reactor: Any, a: argparse.Namespace, name: str) -> Any:
    from txamqp091.twisted import connect

    url = f"amqp://{a.user}:{a.password}@{a.host}:{a.port}/?connection_name={name}"
    return await connect(reactor, url)


async def tx_scenario(reactor: Any, a: argparse.Namespace) -> dict[str, Any]:
    from twisted.internet import defer

    scen, q, n = a.worker, a.queue, a.n
    meter = Meter()
    conn = await _tx_connect(reactor, a, f"bench-{scen}-tx")
    conns = [conn]
    try:
        ch = await conn.channel()

        if scen == "publish":
            await ch.queue_declare(q)
            meter.start()
            await publish_in_batches(ch.basic_publish, lambda s: _sleep(reactor, s), q, n, a.batch)
            while True:
                ok = await ch.queue_declare(q, passive=True)
                if ok.message_count >= n:
                    break
                await _sleep(reactor, POLL_INTERVAL)
            meter.stop()
            await ch.queue_delete(q)
            return meter.result(n)

        if scen == "confirm":
            await ch.queue_declare(q)
            await ch.confirm_delivery()
            meter.start()
            await _confirm_window(ch.basic_publish, q, BODY_64, n, CONFIRM_WINDOW)
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
            done: defer.Deferred[None] = defer.Deferred()
            count = 0

            def on_message(msg: Any) -> None:
                nonlocal count
                msg.ack()
                count += 1
                if count == n:
                    done.callback(None)

            meter.start()
            consumer = await ch.basic_consume(q, on_message_callback=on_message)
            await done
            meter.stop()
            await consumer.cancel()
            await ch.queue_delete(q)
            return meter.result(n)

        if scen == "rpc":
            if a.rpc_responder == "connection":
                rconn = await _tx_connect(reactor, a, "bench-rpc-tx-responder")
                conns.append(rconn)
            else:
                rconn = conn
            rch = await rconn.channel()
            await rch.queue_declare(q, auto_delete=True)
            requests = await rch.basic_consume(q, auto_ack=True)

            resp = defer.ensureDeferred(answer_requests(requests, rch.basic_publish))
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
            await resp
            await rch.queue_delete(q)
            return meter.result(n, **latency(lat[RPC_WARMUP:]))

        if scen == "large":
            cconn = await _tx_connect(reactor, a, "bench-large-tx-consumer")
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

            meter.start()
            consumed = defer.ensureDeferred(consume())
            await _confirm_window(ch.basic_publish, q, body, n, LARGE_WINDOW)
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
                await c.close()


def _confirm_window(publish: Any, queue: str, body: bytes, n: int, window: int) -> Any:
    """Keep at most ``window`` publishes unconfirmed; fires once all ``n`` are confirmed.

    ``publish(exchange, routing_key, body)`` returns a Deferred that fires on the
    broker's ack (both clients in confirm mode). Shared by both clients.
    """
    from twisted.internet import defer

    done: defer.Deferred[None] = defer.Deferred()
    sent = inflight = confirmed = 0

    def acked(_: Any) -> None:
        nonlocal inflight, confirmed
        inflight -= 1
        confirmed += 1
        if confirmed == n:
            done.callback(None)
        elif sent < n:
            pump()

    def failed(f: Any) -> None:
        if not done.called:
            done.errback(f)

    def pump() -> None:
        nonlocal sent, inflight
        while inflight < window and sent < n:
            sent += 1
            inflight += 1
            publish("", queue, body).addCallbacks(acked, failed)

    pump()
    return done


# ---- pika's Twisted adapter ------------------------------------------------------------------


async def _pika_connect(reactor: Any, a: argparse.Namespace, name: str) -> Any:
    import pika
    from pika.adapters.twisted_connection import TwistedProtocolConnection
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    params = pika.ConnectionParameters(
        host=a.host,
        port=a.port,
        credentials=pika.PlainCredentials(a.user, a.password),
        client_properties={"connection_name": name},
    )
    endpoint = TCP4ClientEndpoint(reactor, a.host, a.port)
    proto = await connectProtocol(endpoint, TwistedProtocolConnection(params))  # type: ignore[no-untyped-call]
    await proto.ready
    return proto


async def pika_scenario(reactor: Any, a: argparse.Namespace) -> dict[str, Any]:
    import pika
    from twisted.internet import defer

    scen, q, n = a.worker, a.queue, a.n
    meter = Meter()
    conn = await _pika_connect(reactor, a, f"bench-{scen}-pika")
    conns = [conn]
    try:
        ch = await conn.channel()

        if scen == "publish":
            await ch.queue_declare(q)
            meter.start()
            await publish_in_batches(ch.basic_publish, lambda s: _sleep(reactor, s), q, n, a.batch)
            while True:
                frame = await ch.queue_declare(q, passive=True)
                if frame.method.message_count >= n:
                    break
                await _sleep(reactor, POLL_INTERVAL)
            meter.stop()
            await ch.queue_delete(q)
            return meter.result(n)

        if scen == "confirm":
            await ch.queue_declare(q)
            await ch.confirm_delivery()
            meter.start()
            await _confirm_window(ch.basic_publish, q, BODY_64, n, CONFIRM_WINDOW)
            meter.stop()
            await ch.queue_delete(q)
            return meter.result(n)

        if scen == "consume":
            await ch.basic_qos(prefetch_count=PREFETCH)
            meter.start()
            queue_obj, tag = await ch.basic_consume(q)
            get = queue_obj.get
            ack = ch.basic_ack
            for _ in range(n):
                _ch, method, _props, _body = await get()
                ack(method.delivery_tag)
            meter.stop()
            await ch.basic_cancel(tag)
            await ch.queue_delete(q)
            return meter.result(n)

        if scen == "consume-cb":
            await ch.basic_qos(prefetch_count=PREFETCH)
            done: defer.Deferred[None] = defer.Deferred()
            count = 0
            raw = ch._channel  # pika.channel.Channel: the push-callback API

            def on_message(channel: Any, method: Any, _props: Any, _body: bytes) -> None:
                nonlocal count
                channel.basic_ack(method.delivery_tag)
                count += 1
                if count == n:
                    done.callback(None)

            consume_ok: defer.Deferred[Any] = defer.Deferred()
            meter.start()
            tag = raw.basic_consume(q, on_message, callback=consume_ok.callback)
            await consume_ok
            await done
            meter.stop()
            cancel_ok: defer.Deferred[Any] = defer.Deferred()
            raw.basic_cancel(tag, callback=cancel_ok.callback)
            await cancel_ok
            await ch.queue_delete(q)
            return meter.result(n)

        if scen == "rpc":
            if a.rpc_responder == "connection":
                rconn = await _pika_connect(reactor, a, "bench-rpc-pika-responder")
                conns.append(rconn)
            else:
                rconn = conn
            rch = await rconn.channel()
            await rch.queue_declare(q, auto_delete=True)
            requests, req_tag = await rch.basic_consume(q, auto_ack=True)
            BasicProperties = pika.BasicProperties

            async def responder() -> None:
                get = requests.get
                publish = rch.basic_publish
                while True:
                    try:
                        _ch, _method, props, body = await get()
                    except BaseException:
                        return
                    publish(
                        "",
                        props.reply_to,
                        body,
                        BasicProperties(correlation_id=props.correlation_id),
                    )

            resp = defer.ensureDeferred(responder())
            frame = await ch.queue_declare("", exclusive=True)
            reply_q = frame.method.queue
            replies, _tag = await ch.basic_consume(reply_q, auto_ack=True)
            get = replies.get
            publish = ch.basic_publish
            perf = time.perf_counter
            lat: list[float] = []
            for i in range(RPC_WARMUP + n):
                if i == RPC_WARMUP:
                    meter.start()
                cid = str(i)
                t0 = perf()
                publish("", q, BODY_64, BasicProperties(reply_to=reply_q, correlation_id=cid))
                _ch, _method, props, _body = await get()
                lat.append(perf() - t0)
                if props.correlation_id != cid:
                    raise RuntimeError(f"reply {props.correlation_id!r} for {cid!r}")
            meter.stop()
            await rch.basic_cancel(req_tag)
            await resp
            await rch.queue_delete(q)
            return meter.result(n, **latency(lat[RPC_WARMUP:]))

        if scen == "large":
            cconn = await _pika_connect(reactor, a, "bench-large-pika-consumer")
            conns.append(cconn)
            await ch.queue_declare(q)
            await ch.confirm_delivery()
            cch = await cconn.channel()
            await cch.basic_qos(prefetch_count=LARGE_PREFETCH)
            body = b"x" * MIB
            nbytes = 0

            async def consume() -> None:
                nonlocal nbytes
                queue_obj, tag = await cch.basic_consume(q)
                get = queue_obj.get
                ack = cch.basic_ack
                for _ in range(n):
                    _ch, method, _props, mbody = await get()
                    nbytes += len(mbody)
                    ack(method.delivery_tag)
                await cch.basic_cancel(tag)

            meter.start()
            consumed = defer.ensureDeferred(consume())
            await _confirm_window(ch.basic_publish, q, body, n, LARGE_WINDOW)
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
                closed = c.close()
                if closed is not None:
                    await closed


def run_worker(a: argparse.Namespace) -> int:
    """One scenario, one client, in this process; the result goes to ``a.out`` as JSON."""
    if a.client in FLOORS:
        result: dict[str, Any] = _floor.worker(a, Meter(), latency, RPC_WARMUP)
        result.update(scenario=a.worker, client=a.client)
        Path(a.out).write_text(json.dumps(result))
        return 0 if "error" not in result else 1

    from twisted.internet import defer, reactor

    result = {}
    scenario = tx_scenario if a.client == "txamqp091" else pika_scenario
    running: list[Any] = []  # the scenario's Deferred, once started

    def finish(value: Any) -> None:
        if isinstance(value, dict):
            result.update(value)
        elif "error" not in result:  # keep "timeout: ..." rather than the CancelledError
            result["error"] = (
                value.getTraceback() if hasattr(value, "getTraceback") else repr(value)
            )
        if timer.active():
            timer.cancel()
        if reactor.running:
            reactor.stop()

    def timed_out() -> None:
        result["error"] = f"timeout: {a.worker} did not finish within {a.timeout} s"
        for d in running:
            d.cancel()
        if reactor.running:
            reactor.stop()

    profiler = None
    if a.profile_out:
        import cProfile

        profiler = cProfile.Profile()

    def start() -> None:
        if profiler is not None:
            profiler.enable()
        d = defer.ensureDeferred(scenario(reactor, a))
        running.append(d)
        d.addBoth(finish)

    timer = reactor.callLater(a.timeout, timed_out)
    reactor.callWhenRunning(start)
    reactor.run()
    if profiler is not None:
        profiler.disable()
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
    queue = f"bench.twisted.{scenario}.{client}.{uuid.uuid4().hex[:8]}"
    if scenario in ("consume", "consume-cb"):
        secs = preload(a, queue, n, SETUP_NAME)
        if a.verbose:
            print(f"  pre-loaded {n} messages into {queue} in {secs:.1f} s", file=sys.stderr)
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
    result: dict[str, Any]
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
    except subprocess.TimeoutExpired:
        result = {"error": f"worker killed after {a.timeout + 30} s"}
    finally:
        try:
            os.unlink(out)
        except OSError:
            pass
        cleanup(a, [queue], SETUP_NAME)
    result.update(
        scenario=scenario,
        client=client,
        repeat=rep,
        loadavg_1m=load_before,
        idle_pct_before=idle_before,
    )
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
        ok = [
            r
            for r in runs
            if r["scenario"] == scenario and r["client"] == client and "error" not in r
        ]
        row: dict[str, Any] = {"scenario": scenario, "client": client, "runs": len(ok)}
        row["errors"] = sum(
            1 for r in runs if r["scenario"] == scenario and r["client"] == client and "error" in r
        )
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
    # Ratios: the median of the per-repeat ratios (each txamqp091 run against the pika
    # run that directly followed it), which cancels slow drifts in machine load better
    # than a ratio of medians (also given, as *_of_medians).
    by = {(r["scenario"], r["client"]): r for r in rows}
    ok_runs = {(r["scenario"], r["client"], r["repeat"]): r for r in runs if "error" not in r}
    for r in rows:
        if r["client"] != "txamqp091":
            continue
        p = by.get((r["scenario"], "pika"))
        if not (p and "msgs_per_s" in r and "msgs_per_s" in p):
            continue
        r["speedup_of_medians"] = r["msgs_per_s"] / p["msgs_per_s"]
        r["cpu_ratio_of_medians"] = p["cpu_us_per_msg"] / r["cpu_us_per_msg"]
        pairs = [
            (t, ok_runs[(r["scenario"], "pika", rep)])
            for (scen, client, rep), t in ok_runs.items()
            if scen == r["scenario"]
            and client == "txamqp091"
            and (r["scenario"], "pika", rep) in ok_runs
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
        f"Twisted end-to-end, medians of {repeats} run(s) "
        "(speedup = txamqp091 rate / pika rate; CPU ratio = pika CPU / txamqp091 CPU;\n"
        " both are medians of per-repeat paired ratios)"
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(
        p, SCENARIOS, CLIENTS, "reactor", "twisted-floor: the reactor without txamqp091"
    )
    a = p.parse_args(argv)

    if a.worker:
        a.client = a.client[0] if a.client else "txamqp091"
        return run_worker(a)

    scenarios = parse_only(a.only, SCENARIOS)
    clients = [c for c in CLIENTS if not a.client or c in a.client]
    import txamqp091  # pika is only imported by its own workers (and the setup, if installed)

    print(
        f"python {platform.python_version()}, txamqp091 {getattr(txamqp091, '__version__', '?')}, "
        f"pika {installed('pika')}, broker {a.host}:{a.port}, scale {a.scale}, repeats {a.repeats}",
        flush=True,
    )
    runs: list[dict[str, Any]] = []
    for rep in range(a.repeats):
        for scenario in scenarios:
            for client in _floor.rows(scenario, clients, a.client, a.no_floor, ("twisted",)):
                r = run_one(a, scenario, client, rep)
                runs.append(r)
                print_run(rep, a.repeats, scenario, client, r, a.verbose)
    rows = summarize(runs)
    print_table(rows, a.repeats)
    if a.json:
        meta = {
            "benchmark": "twisted_client",
            "python": platform.python_version(),
            "pika": installed("pika"),
            "txamqp091": getattr(txamqp091, "__version__", None),
            "broker": f"{a.host}:{a.port}",
            "scale": a.scale,
            "repeats": a.repeats,
            "batch": a.batch,
            "cpus": os.cpu_count(),
            **source_state(ROOT),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        Path(a.json).write_text(json.dumps({"meta": meta, "summary": rows, "runs": runs}, indent=2))
        print(f"wrote {a.json}")
    return 1 if any("error" in r for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
