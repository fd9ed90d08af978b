"""Live timeline of the rpc round trip on both adapters: where a call's time goes.

The rpc scenario of ``twisted_client.py`` and ``tornado_client.py`` (the user code of
``_rpc.py``, the responder on a second channel of the client's connection), against
the real broker, with every socket ``send``/``recv`` and every poller wake-up stamped
with ``time.perf_counter``. Each call splits into:

=============  ===========================================================================
segment        from -> to
=============  ===========================================================================
send req       the request's ``send()`` called -> returned (the syscall)
broker1        that return -> the poller's wake-up that brings the request
wake->recv     wake-up -> our ``recv()`` returned (framework dispatch + the recv syscall)
recv->send     that recv -> the reply's ``send()`` (decode, route, resolve, resume the
               responder, its ``basic_publish``)
send rep       the reply's ``send()`` syscall
broker2        its return -> the wake-up that brings the reply
wake->recv2    as wake->recv, for the reply
recv->done     that recv -> the client's ``await get()`` returned (decode, route, resolve,
               resume the client coroutine)
done->pub      the previous call done -> this call's request ``send()`` (the client loop:
               ``BasicProperties``, ``basic_publish``, the adapter's write)
=============  ===========================================================================

Each worker (a fresh interpreter per adapter and round) prints, per segment, the
median over its N calls; the parent alternates the adapters (and, with ``--floors``,
``_floor.py``'s reference rows, with ``--c`` the C program's) for ``--rounds`` rounds and shows the median of the
rounds' values and their range. Compare segments between adapters and runs; the
totals are inflated by the stamps themselves (six proxied calls per round trip, each
a Python frame and a clock read, ~1 us each live).

The stamps sit on **private attributes**, which this script replaces with proxies for
the timed calls (see ``ADAPTERS``): txamqp091's ``AMQPProtocol._sock`` (Tornado) and
``AMQPProtocol._socket_transport.socket`` (Twisted), asyncio's
``loop._selector._selector`` and Twisted's ``reactor._poller`` (the ``select.epoll``
object). Nothing public exposes them. When one is missing (another version, another
reactor, a transport the adapter does not drive itself) the worker stops with a
``MissingInternals`` error naming it, instead of timing something else.

Usage::

    .venv/bin/python benchmarks/rpc_timeline.py                        # both, 3 rounds of 3,000
    .venv/bin/python benchmarks/rpc_timeline.py --adapter tornado --calls 5000 --rounds 5
    .venv/bin/python benchmarks/rpc_timeline.py --floors --c --json timeline.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (str(ROOT), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import _floor  # noqa: E402
from _parent import add_broker_arguments, add_idle_arguments  # noqa: E402
from _rpc import answer_requests, call_in_turn  # noqa: E402

ADAPTER_NAMES = ("tornado", "twisted")
SEGMENTS = (
    "send req", "broker1", "wake->recv", "recv->send", "send rep",
    "broker2", "wake->recv2", "recv->done", "done->pub",
)  # fmt: skip
WARMUP = 200


class MissingInternals(RuntimeError):
    """A private attribute this script places a proxy on is not there."""


# ---- the stamps ------------------------------------------------------------------------------

#: (tag, perf_counter) in the order they happen: "send0"/"send1" around a send,
#: "recv" after a recv that returned bytes, "wake" after a poll that returned events,
#: "done" when a call's latency is appended.
Mark = tuple[str, float]


class SocketProxy:
    """A socket whose ``send`` and ``recv`` stamp the timeline; everything else passes."""

    def __init__(self, sock: Any, marks: list[Mark]) -> None:
        self._sock = sock
        self._marks = marks

    def recv(self, size: int) -> bytes:
        data: bytes = self._sock.recv(size)  # raises (EAGAIN) before any stamp
        self._marks.append(("recv", time.perf_counter()))
        return data

    def send(self, data: bytes) -> int:
        marks, perf = self._marks, time.perf_counter
        marks.append(("send0", perf()))
        sent: int = self._sock.send(data)
        marks.append(("send1", perf()))
        return sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class PollerProxy:
    """An ``epoll`` object whose ``poll`` stamps the wake-ups that bring events."""

    def __init__(self, poller: Any, marks: list[Mark]) -> None:
        self._poller = poller
        self._marks = marks

    def poll(self, *args: Any) -> Any:
        events = self._poller.poll(*args)
        if events:
            self._marks.append(("wake", time.perf_counter()))
        return events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._poller, name)


class StampedLatencies(list[float]):
    """``call_in_turn``'s latency list, stamping "done" as each call ends."""

    def __init__(self, marks: list[Mark]) -> None:
        super().__init__()
        self._marks = marks

    def append(self, latency: float) -> None:
        self._marks.append(("done", time.perf_counter()))
        super().append(latency)


def swap(owner: Any, attribute: str, proxy: Callable[[Any], Any], where: str) -> Callable[[], None]:
    """Put ``proxy(owner.attribute)`` in its place; return what puts the original back."""
    original = getattr(owner, attribute, None)
    if original is None:
        raise MissingInternals(
            f"{where}: {type(owner).__module__}.{type(owner).__qualname__} has no "
            f"{attribute!r} (a private attribute rpc_timeline.py stamps); this version "
            "or setup differs from the one the script knows: update its ADAPTERS"
        )
    setattr(owner, attribute, proxy(original))
    return lambda: setattr(owner, attribute, original)


def _last_wake(tags: list[str], start: int, end: int) -> int:
    """The wake-up that brought the bytes the recv at ``end`` read: the last one since
    ``start`` (an earlier one may have served a timer or another socket)."""
    for i in range(end - 1, start, -1):
        if tags[i] == "wake":
            return i
    raise ValueError("no wake-up between the send and the recv")


def segments(marks: list[Mark]) -> dict[str, list[float]]:
    """Every call's segments (seconds) from the stamps; a call whose stamps do not show
    the expected sequence (a partial read, a stray write) is left out of all of them."""
    out: dict[str, list[float]] = {name: [] for name in SEGMENTS}
    calls: list[list[Mark]] = [[]]
    for mark in marks:
        calls[-1].append(mark)
        if mark[0] == "done":
            calls.append([])
    previous_done: float | None = None
    for call in calls[:-1]:
        tags = [tag for tag, _ in call]
        times = [t for _, t in call]
        try:
            s0 = tags.index("send0")
            s1 = tags.index("send1", s0)
            r1 = tags.index("recv", s1)
            w1 = _last_wake(tags, s1, r1)
            t0 = tags.index("send0", r1)
            t1 = tags.index("send1", t0)
            r2 = tags.index("recv", t1)
            w2 = _last_wake(tags, t1, r2)
        except ValueError:
            previous_done = times[-1]
            continue
        split = {
            "send req": times[s1] - times[s0],
            "broker1": times[w1] - times[s1],
            "wake->recv": times[r1] - times[w1],
            "recv->send": times[t0] - times[r1],
            "send rep": times[t1] - times[t0],
            "broker2": times[w2] - times[t1],
            "wake->recv2": times[r2] - times[w2],
            "recv->done": times[-1] - times[r2],
        }
        if previous_done is not None:
            split["done->pub"] = times[s0] - previous_done
        for name, value in split.items():
            out[name].append(value)
        previous_done = times[-1]
    return out


# ---- the adapters: how to connect, run, and where the socket and the poller live ---------------


@dataclass(frozen=True)
class Adapter:
    """What differs between the adapters; the timed code is the same for both."""

    name: str
    #: url -> the connection (awaitable)
    connect: Callable[[str], Awaitable[Any]]
    #: start a coroutine alongside (the responder)
    spawn: Callable[[Coroutine[Any, Any, None]], object]
    #: connection -> (owner, attribute) of the socket the adapter sends and receives on
    socket_place: Callable[[Any], tuple[Any, str]]
    #: () -> (owner, attribute) of the event loop's epoll object
    poller_place: Callable[[], tuple[Any, str]]
    #: run a coroutine function to its end on the adapter's loop, return its result
    run: Callable[[Callable[[], Coroutine[Any, Any, Any]]], Any]


def tornado_adapter() -> Adapter:
    import asyncio

    from txamqp091.tornado import connect

    def poller_place() -> tuple[Any, str]:
        loop = asyncio.get_running_loop()
        selector = getattr(loop, "_selector", None)
        if selector is None:
            raise MissingInternals(
                f"{type(loop).__name__} has no '_selector' (not asyncio's selector loop)"
            )
        return selector, "_selector"

    return Adapter(
        name="tornado",
        connect=connect,
        spawn=asyncio.ensure_future,
        socket_place=lambda conn: (conn._runtime, "_sock"),
        poller_place=poller_place,
        run=lambda main: asyncio.run(main()),
    )


def twisted_adapter() -> Adapter:
    from twisted.internet import defer, reactor

    from txamqp091.twisted import connect

    def socket_place(conn: Any) -> tuple[Any, str]:
        transport = getattr(conn._runtime, "_socket_transport", None)
        if transport is None:
            raise MissingInternals(
                "txamqp091.twisted AMQPProtocol has no '_socket_transport' (it writes "
                "through the transport on this reactor or version)"
            )
        return transport, "socket"

    def run(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        outcome: list[Any] = []

        def finish(value: Any) -> None:
            outcome.append(value)
            reactor.stop()

        def start() -> None:
            defer.ensureDeferred(main()).addBoth(finish)

        reactor.callWhenRunning(start)
        reactor.run()
        value = outcome[0] if outcome else RuntimeError("the reactor stopped first")
        if hasattr(value, "raiseException"):
            value.raiseException()
        if isinstance(value, BaseException):
            raise value
        return value

    return Adapter(
        name="twisted",
        connect=lambda url: connect(reactor, url),
        spawn=defer.ensureDeferred,
        socket_place=socket_place,
        poller_place=lambda: (reactor, "_poller"),
        run=run,
    )


ADAPTERS: dict[str, Callable[[], Adapter]] = {
    "tornado": tornado_adapter,
    "twisted": twisted_adapter,
}


async def timeline(adapter: Adapter, a: argparse.Namespace) -> dict[str, Any]:
    """The rpc scenario on ``adapter``, ``a.calls`` timed calls stamped; the split."""
    from _meter import Meter, latency

    url = f"amqp://{a.user}:{a.password}@{a.host}:{a.port}/?connection_name=rpc-timeline"
    conn = await adapter.connect(url)
    try:
        client = await conn.channel()
        responder = await conn.channel()
        queue = f"bench.timeline.{adapter.name}.{uuid.uuid4().hex[:8]}"
        await responder.queue_declare(queue, auto_delete=True)
        requests = await responder.basic_consume(queue, auto_ack=True)
        adapter.spawn(answer_requests(requests, responder.basic_publish))
        ok = await client.queue_declare("", exclusive=True)
        replies = await client.basic_consume(ok.queue, auto_ack=True)
        await call_in_turn(replies.get, client.basic_publish, queue, ok.queue, WARMUP, [])
        marks: list[Mark] = []
        owner, attribute = adapter.socket_place(conn)
        restore_socket = swap(owner, attribute, lambda s: SocketProxy(s, marks), adapter.name)
        owner, attribute = adapter.poller_place()
        restore_poller = swap(owner, attribute, lambda p: PollerProxy(p, marks), adapter.name)
        lat = StampedLatencies(marks)
        meter = Meter()
        meter.start()
        try:
            await call_in_turn(replies.get, client.basic_publish, queue, ok.queue, a.calls, lat)
        finally:
            meter.stop()
            restore_poller()
            restore_socket()
        await responder.queue_delete(queue)
    finally:
        closed = conn.close()
        if closed is not None:
            await closed
    split = segments(marks)
    return {
        "row": adapter.name,
        "queue": queue,
        "calls": len(lat),
        "split_calls": len(split["broker1"]),
        "segments_us": {k: statistics.median(v) * 1e6 for k, v in split.items() if v},
        **meter.result(len(lat), **latency(list(lat))),
    }


def run_worker(a: argparse.Namespace) -> dict[str, Any]:
    """One row in this process: an adapter's timeline or a floor's round trips."""
    if a.worker in _floor.FLOORS:
        from _meter import Meter, latency

        meter = Meter()
        queue = f"bench.timeline.{a.worker}.{uuid.uuid4().hex[:8]}"
        lat = _floor.floor_rpc(
            a.worker, host=a.host, port=a.port, user=a.user, password=a.password,
            queue=queue, n=a.calls, warmup=WARMUP, meter=meter,
        )  # fmt: skip
        return {"row": a.worker, "queue": queue, **meter.result(a.calls, **latency(lat))}
    adapter = ADAPTERS[a.worker]()
    result: dict[str, Any] = adapter.run(lambda: timeline(adapter, a))
    return result


# ---- the parent: rounds, table -----------------------------------------------------------------


def run_c(a: argparse.Namespace) -> dict[str, Any]:
    """The C program's rpc run of ``a.calls`` calls, as ``compare.py`` runs it."""
    import _cceiling
    import compare
    import twisted_client

    binary, why = _cceiling.build()
    if binary is None:
        return {"row": "c-ceiling", "error": f"C ceiling unavailable: {why}"}
    ns = argparse.Namespace(
        scale=a.calls / twisted_client.SCENARIOS["rpc"][1], timeout=a.timeout,
        host=a.host, port=a.port, user=a.user, password=a.password, wait_idle=0,
        wait_idle_max=0,
    )  # fmt: skip
    return {**compare.run_c(ns, binary, "rpc"), "row": "c-ceiling"}


def run_row(a: argparse.Namespace, row: str) -> dict[str, Any]:
    from _parent import idle_percent, wait_for_idle

    idle = wait_for_idle(a.wait_idle, a.wait_idle_max) if a.wait_idle else idle_percent()
    result = run_c(a) if row == "c-ceiling" else run_worker_process(a, row)
    result["idle_pct_before"] = idle
    return result


def run_worker_process(a: argparse.Namespace, row: str) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        out = Path(tmp.name)
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--worker", row, "--out", str(out),
        "--calls", str(a.calls), "--host", a.host, "--port", str(a.port),
        "--user", a.user, "--password", a.password,
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=a.timeout)
        try:
            result: dict[str, Any] = json.loads(out.read_text())
        except (OSError, ValueError):
            result = {
                "row": row,
                "error": f"worker exited {proc.returncode}: {proc.stderr[-2000:]}",
            }
    except subprocess.TimeoutExpired:
        result = {"row": row, "error": f"worker killed after {a.timeout} s"}
    finally:
        out.unlink(missing_ok=True)
    return result


def _column(runs: list[dict[str, Any]], row: str, value: Callable[[dict[str, Any]], Any]) -> str:
    """``value`` of ``row``'s good runs: the median and the range over the rounds."""
    values = [
        v for r in runs if r["row"] == row and "error" not in r and (v := value(r)) is not None
    ]
    if not values:
        return "-"
    return f"{statistics.median(values):7.1f} ({min(values):.0f}-{max(values):.0f})"


def _segment(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda r: r["segments_us"].get(name)


def table(runs: list[dict[str, Any]], adapters: list[str], floors: list[str]) -> str:
    """Per segment and adapter, the median over the rounds of each run's p50 (and their
    range); then the totals, and the reference rows' p50 and CPU per call."""
    width = 22
    lines = [
        f"  {'p50 us: median (range) of rounds':<32}" + "".join(f"{n:>{width}}" for n in adapters)
    ]
    figures: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
        (name, _segment(name)) for name in SEGMENTS
    ]
    figures += [
        ("sum of segments", lambda r: sum(r["segments_us"].values())),
        ("round trip p50 (stamped)", lambda r: r.get("p50_us")),
        ("CPU us/call (stamped)", lambda r: r.get("cpu_us_per_msg")),
    ]
    for label, value in figures:
        lines.append(
            f"  {label:<32}" + "".join(f"{_column(runs, n, value):>{width}}" for n in adapters)
        )
    if floors:
        lines.append(
            f"\n  {'reference rows (not stamped)':<32}{'p50 us':>{width}}{'CPU us/call':>{width}}"
        )
        for floor in floors:
            p50 = _column(runs, floor, lambda r: r.get("p50_us"))
            cpu = _column(runs, floor, lambda r: r.get("cpu_us_per_msg"))
            lines.append(f"  {floor:<32}{p50:>{width}}{cpu:>{width}}")
    for r in runs:
        if "error" in r:
            lines.append(f"  {r['row']} failed: {r['error'].strip().splitlines()[-1][:150]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--adapter", choices=(*ADAPTER_NAMES, "both"), default="both")
    p.add_argument("--calls", type=int, default=3000, help="timed calls per run (default 3000)")
    p.add_argument("--rounds", type=int, default=3, help="runs per row, alternated (default 3)")
    p.add_argument(
        "--floors", action="store_true", help="also run the floors (_floor.py) each round"
    )
    p.add_argument("--c", action="store_true", help="also run the C program's rpc each round")
    add_idle_arguments(p, "row", 20.0, ", as compare.py")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds a worker may take")
    p.add_argument("--json", metavar="PATH", help="write every run here")
    add_broker_arguments(p)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    if a.worker:
        try:
            result = run_worker(a)
        except Exception:
            result = {"row": a.worker, "error": traceback.format_exc()}
        Path(a.out).write_text(json.dumps(result))
        return 0 if "error" not in result else 1

    adapters = list(ADAPTER_NAMES) if a.adapter == "both" else [a.adapter]
    floors = (["c-ceiling"] if a.c else []) + (list(_floor.FLOORS) if a.floors else [])
    rows = adapters + floors
    runs: list[dict[str, Any]] = []
    for rnd in range(a.rounds):
        shift = rnd % len(rows)
        for row in rows[shift:] + rows[:shift]:
            result = run_row(a, row)
            result["round"] = rnd
            runs.append(result)
            note = (
                result["error"].strip().splitlines()[-1][:100]
                if "error" in result
                else f"p50 {result['p50_us']:.0f} us, CPU {result['cpu_us_per_msg']:.0f} us/call"
                f"  (idle before {result['idle_pct_before'] or 0:.0f}%)"
            )
            print(f"  [{rnd + 1}/{a.rounds}] {row:<11} {note}", flush=True)
    print()
    print(table(runs, adapters, floors))
    print(
        f"\n{a.rounds} round(s) of {a.calls} calls, {time.strftime('%H:%M:%S')}, "
        f"load {os.getloadavg()[0]:.1f}; stamps add ~6 proxied calls per round trip"
    )
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "runs": runs}, indent=1))
    return 0 if all("error" not in r for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
