"""The client's Python cost per RPC call, without a broker or a socket.

``benchmarks/twisted_client.py --only rpc`` measures a round trip through RabbitMQ on a
noisy two-core machine: the client's own share of it is hard to see there. This harness
runs the same RPC shape on the Twisted adapter with the network taken out, so that a
change of a few hundred nanoseconds per call shows:

- one connection, a responder channel (1) and a client channel (2), set up through the
  public API against replies fed as broker bytes;
- the same user code as the benchmark's ``rpc`` scenario: the responder coroutine awaits
  ``requests.get()`` and publishes the reply with ``BasicProperties(correlation_id=...)``;
  the client loop publishes ``BODY_64`` with ``BasicProperties(reply_to=...,
  correlation_id=cid)`` and awaits ``replies.get()``;
- per call, two reads as the broker would send them (the request delivered on channel 1,
  then the reply on channel 2), pre-encoded before the clock starts and handed to the
  protocol where the socket read would (``_read_socket`` -> ``data_received``); the
  protocol's writes go to a fake socket's ``send``, so the adapter's direct-send path
  runs as it does live.

It reports nanoseconds of client Python per call (both halves: request read -> reply
written, reply read -> next request written), as the median of ``--repeats`` runs of
``--calls`` calls. ``--profile`` prints a cProfile of one run instead. Run it with
``TXAMQP091_NO_EXTENSIONS=1`` for the pure-Python core.

That figure is warm: one half follows the other at once, so the code and data it
touches stay in the core's caches. Live, the client sleeps between two halves while
the broker runs on the same cores and evicts them; ``--evict-kib KIB`` copies KIB KiB
before each read and times the reads only, which is closer to what a live call costs
(with KIB at least the L2 cache's size). The gap between the two is the price of the
cache lines a call touches, which instruction counts (callgrind) do not show.

    python benchmarks/rpc_path.py                     # Twisted, median ns/call
    python benchmarks/rpc_path.py --evict-kib 4096    # the same, caches cold per read
    python benchmarks/rpc_path.py --profile | head -40

It is a measuring tool, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import hashlib
import io
import os
import pickle
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock

from txamqp091 import BasicProperties, ConnectionParameters
from txamqp091.core import _accel, spec
from txamqp091.core.testing import ServerFrames, parse_client_frames
from txamqp091.twisted.protocol import AMQPProtocol

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from _rpc import BODY_64, answer_requests, call_in_turn  # noqa: E402

REQUEST_QUEUE = "rpc-path-requests"
REPLY_QUEUE = "amq.gen-rpc-path-replies"
REQUEST_TAG = "ctag-requests"
REPLY_TAG = "ctag-replies"


def cached_input(key: str, make: Callable[[], Any]) -> Any:
    """``make()``, kept in ``$CLIENT_PATH_CACHE`` (a folder) when that is set: a run under
    callgrind then counts the client's instructions, not the encoding of its input (the
    broker's reads, built before the clock starts but in the same process)."""
    folder = os.environ.get("CLIENT_PATH_CACHE")
    if not folder:
        return make()
    path = Path(folder) / (hashlib.sha1(key.encode()).hexdigest() + ".pickle")
    if path.exists():
        return pickle.loads(path.read_bytes())
    value = make()
    path.write_bytes(pickle.dumps(value))
    return value


class _Socket:
    """What ``_write_now`` sends to: takes every byte, keeps a count (and, when asked,
    the writes themselves, to check them)."""

    def __init__(self) -> None:
        self.sent = 0
        self.kept: list[bytes] | None = None

    def send(self, data: bytes | bytearray | memoryview) -> int:
        self.sent += 1
        if self.kept is not None:
            self.kept.append(bytes(data))
        return len(data)


class _Transport:
    """A connected TCP transport as far as AMQPProtocol's direct send looks at one."""

    SEND_LIMIT = 1 << 20
    dataBuffer = b""
    _tempDataLen = 0
    connected = True
    disconnecting = False
    _writeDisconnected = False

    def __init__(self) -> None:
        self.socket = _Socket()

    def write(self, data: bytes) -> None:  # only if the direct send did not take it all
        self.socket.send(data)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        pass

    def loseConnection(self) -> None:
        self.connected = False


class _RPC:
    """What both adapters' harnesses share: the connection's setup through the public API
    against the broker's replies, and the broker's reads of each call. A subclass says
    how to wait for a reply (:meth:`_reply`) and starts the benchmark's code."""

    frames: ServerFrames
    conn: Any
    latencies: list[float]

    def _reply(self, waiter: Any, data: bytes) -> Any:
        raise NotImplementedError

    def setup(self) -> None:
        f = self.frames
        conn = self.conn
        rch = self._reply(conn.channel(), f.channel_open_ok(1))
        ch = self._reply(conn.channel(), f.channel_open_ok(2))
        self._reply(
            rch.queue_declare(REQUEST_QUEUE, auto_delete=True), f.queue_declare_ok(1, REQUEST_QUEUE)
        )
        requests = self._reply(
            rch.basic_consume(REQUEST_QUEUE, auto_ack=True, consumer_tag=REQUEST_TAG),
            f.consume_ok(1, REQUEST_TAG),
        )
        self._reply(ch.queue_declare("", exclusive=True), f.queue_declare_ok(2, REPLY_QUEUE))
        replies = self._reply(
            ch.basic_consume(REPLY_QUEUE, auto_ack=True, consumer_tag=REPLY_TAG),
            f.consume_ok(2, REPLY_TAG),
        )
        self.rch, self.ch, self.requests, self.replies = rch, ch, requests, replies

    def _code(self, calls: int) -> tuple[Coroutine[Any, Any, None], Coroutine[Any, Any, None]]:
        """The benchmark's responder and client loop (benchmarks/_rpc.py), not started."""
        responder = answer_requests(self.requests, self.rch.basic_publish)
        client = call_in_turn(
            self.replies.get,
            self.ch.basic_publish,
            REQUEST_QUEUE,
            REPLY_QUEUE,
            calls,
            self.latencies,
        )
        return responder, client

    def reads(self, calls: int, first_tag: int = 1) -> list[bytes]:
        """The broker's two reads per call, in order: the request, then its reply."""
        built: list[bytes] = cached_input(
            f"rpc-reads-{calls}-{first_tag}", lambda: self._build_reads(calls, first_tag)
        )
        return built

    def _build_reads(self, calls: int, first_tag: int) -> list[bytes]:
        f = self.frames
        out: list[bytes] = []
        for i in range(calls):
            cid = str(i)
            out.append(
                f.deliver(
                    1,
                    REQUEST_TAG,
                    first_tag + 2 * i,
                    BODY_64,
                    BasicProperties(reply_to=REPLY_QUEUE, correlation_id=cid),
                    routing_key=REQUEST_QUEUE,
                )
            )
            out.append(
                f.deliver(
                    2,
                    REPLY_TAG,
                    first_tag + 2 * i,
                    BODY_64,
                    BasicProperties(correlation_id=cid),
                    routing_key=REPLY_QUEUE,
                )
            )
        return out


class TwistedRPC(_RPC):
    """One protocol with the benchmark's responder and client loop, fed by hand."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.frames = ServerFrames()
        self.protocol = AMQPProtocol(ConnectionParameters(), self.clock)
        self.transport = _Transport()
        self.protocol.makeConnection(self.transport)  # type: ignore[no-untyped-call]
        # What connectionMade sets up for a real tcp.Connection.
        self.protocol._socket_transport = self.transport
        self.receive: Callable[[bytes], None] = self.protocol.connection.data_received
        # RabbitMQ's 60 s heartbeat, as live (the Clock never reaches it).
        self.receive(self.frames.handshake(heartbeat=60))
        self.conn: Any = self._result(self.protocol.ready)
        self.loop: Deferred[Any] | None = None
        self.latencies: list[float] = []

    def _result(self, waiter: Any) -> Any:
        """Run the pending flush, then return the Deferred's result."""
        self.clock.advance(0)
        box: list[Any] = []
        waiter.addBoth(box.append)
        if not box:
            raise RuntimeError("the waiter has not fired")
        if isinstance(box[0], BaseException) or hasattr(box[0], "raiseException"):
            box[0].raiseException()
        return box[0]

    def _reply(self, waiter: Any, data: bytes) -> Any:
        self.clock.advance(0)
        self.receive(data)
        return self._result(waiter)

    def start(self, calls: int) -> None:
        """Start the responder and the client loop (the benchmark's code); the first
        request is written by a scheduled flush, as live."""
        responder, client = self._code(calls)
        self.responder = ensureDeferred(responder)
        self.loop = ensureDeferred(client)
        self.clock.advance(0)  # the first request's scheduled flush


class _AsyncioTransport(asyncio.Transport):
    """asyncio's selector socket transport as far as the Tornado protocol's direct write
    looks at one (an empty buffer, open); writes that get past it are counted too."""

    def __init__(self, sock: _Socket) -> None:
        super().__init__()
        self._sock = sock
        self._buffer = bytearray()
        self._closing = False
        self._conn_lost = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._sock.send(data)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def close(self) -> None:
        self._closing = True


class TornadoRPC(_RPC):
    """The same RPC on the Tornado (asyncio) adapter: reads are fed from a loop callback,
    as the selector transport's reader runs (not inside a task), so that dispatch_read
    may run the woken task at once, as live."""

    def __init__(self) -> None:
        from txamqp091.tornado.protocol import AMQPProtocol as TornadoProtocol

        self.loop = asyncio.new_event_loop()
        # The loop's timers see a clock that stands still, as the Twisted harness's Clock:
        # the connection's heartbeat timer never comes due, however slow the run (under
        # valgrind, 3,000 calls outlast the 30 s between heartbeats, whose write then
        # joined the calls' and failed the writes check). Reads still stamp
        # time.monotonic, as live: the adapter picks that from the loop's class.
        frozen = self.loop.time()
        self.loop.time = lambda: frozen  # type: ignore[method-assign]
        self.frames = ServerFrames()
        self.protocol = TornadoProtocol(ConnectionParameters(), self.loop)
        self.socket = _Socket()
        self.transport = _AsyncioTransport(self.socket)
        self.protocol.connection_made(self.transport)
        # What connection_made sets up for asyncio's own selector transport.
        self.protocol._direct = self.transport
        self.protocol._sock = self.socket  # type: ignore[assignment]
        self.receive: Callable[[bytes], None] = self.protocol.connection.data_received
        self.receive(self.frames.handshake(heartbeat=60))
        self.conn: Any = self.loop.run_until_complete(self.protocol.ready)
        self.latencies: list[float] = []

    def _reply(self, waiter: Any, data: bytes) -> Any:
        self.loop.call_soon(self.receive, data)
        return self.loop.run_until_complete(waiter)

    def start(self, calls: int) -> None:
        """The benchmark's responder and client loop (tornado_client.py's code), as tasks."""
        responder, client = self._code(calls)
        self.responder = self.loop.create_task(responder)
        self.client = self.loop.create_task(client)
        for _ in range(3):  # both tasks reach their first get(); the request is flushed
            self.loop.run_until_complete(_yield())

    def feed(self, reads: list[bytes]) -> None:
        """Hand ``reads`` to the protocol from one loop callback, as the transport would."""
        loop = self.loop

        def feed_then_stop() -> None:  # the only callback of its loop turn, as a read's
            _feed_all(self.receive, reads)
            loop.stop()

        loop.call_soon(feed_then_stop)
        loop.run_forever()


async def _yield() -> None:
    await asyncio.sleep(0)


def timed_ns(profile: cProfile.Profile | None, run: Callable[[], None]) -> int:
    """``run()``'s elapsed ns, after a collection and under ``profile`` when given: the
    timed section of every run here and in ``client_path.py``."""
    gc.collect()
    if profile is not None:
        profile.enable()
    t0 = time.perf_counter_ns()
    run()
    elapsed = time.perf_counter_ns() - t0
    if profile is not None:
        profile.disable()
    return elapsed


def print_profile(profile: cProfile.Profile, sort: str, lines: int, title: str) -> None:
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats(sort).print_stats(lines)
    print(title)
    print(out.getvalue())


def _feed_all(receive: Callable[[bytes], None], reads: list[bytes]) -> None:
    for data in reads:
        receive(data)


class Evictor:
    """What the broker does to a core's caches while the client sleeps between two RPC
    halves, done here before each read: ``kib`` KiB copied from one buffer to another
    (``2 * kib`` KiB touched). With ``kib`` at least the L2 cache's size, each half runs
    with cold L1 and L2 caches, as live; then only the halves themselves are timed."""

    def __init__(self, kib: int) -> None:
        self.source = bytearray(os.urandom(kib * 1024))
        self.target = bytearray(kib * 1024)

    def timed_feed(self, receive: Callable[[bytes], None], reads: list[bytes]) -> int:
        """ns spent in ``receive`` over ``reads``, each read after an eviction."""
        gc.collect()
        source, target, clock = self.source, self.target, time.perf_counter_ns
        spent = 0
        for data in reads:
            target[:] = source
            t0 = clock()
            receive(data)
            spent += clock() - t0
        return spent


def feed_ns(
    profile: cProfile.Profile | None,
    receive: Callable[[bytes], None],
    reads: list[bytes],
    evictor: Evictor | None,
) -> int:
    """ns of client Python over ``reads``: the whole loop, or with ``evictor`` only the
    reads (see :class:`Evictor`; no profile then)."""
    if evictor is None:
        return timed_ns(profile, lambda: _feed_all(receive, reads))
    return evictor.timed_feed(receive, reads)


def run_tornado(
    calls: int, profile: cProfile.Profile | None = None, evictor: Evictor | None = None
) -> float:
    """ns of client Python per call on the Tornado adapter (see run_twisted)."""
    rpc = TornadoRPC()
    rpc.setup()
    rpc.socket.sent = 0
    rpc.socket.kept = []
    rpc.start(calls)
    reads = rpc.reads(calls)
    rpc.feed(reads[:2])
    _check_writes(rpc.socket.kept)
    rpc.socket.kept = None
    todo = reads[2:]
    box: list[int] = []

    def timed() -> None:
        box.append(feed_ns(profile, rpc.receive, todo, evictor))

    rpc.loop.call_soon(timed)
    rpc.loop.run_until_complete(rpc.client)
    if rpc.socket.sent != 2 * calls:
        raise RuntimeError(f"{rpc.socket.sent} writes for {calls} calls")
    rpc.responder.cancel()
    rpc.loop.run_until_complete(_yield())
    rpc.loop.close()
    return box[0] / (calls - 1)


def _check(rpc: TwistedRPC) -> None:
    _check_writes(rpc.transport.socket.kept)


def _check_writes(kept: list[bytes] | None) -> None:
    """The writes are what the benchmark's client would send: a request then a reply."""
    kept = kept or []
    sent = [parse_client_frames(data) for data in kept]
    want = [
        (2, "", REQUEST_QUEUE, BasicProperties(reply_to=REPLY_QUEUE, correlation_id="0")),
        (1, "", REPLY_QUEUE, BasicProperties(correlation_id="0")),
        (2, "", REQUEST_QUEUE, BasicProperties(reply_to=REPLY_QUEUE, correlation_id="1")),
    ]
    for frames, (channel, exchange, key, props) in zip(sent, want, strict=False):
        method = frames[0][2]
        if not (
            len(frames) == 3
            and frames[0][1] == channel
            and isinstance(method, spec.BasicPublish)
            and method.exchange == exchange
            and method.routing_key == key
            and frames[1][2] == (len(BODY_64), props)
            and frames[2][2] == BODY_64
        ):
            raise RuntimeError(f"unexpected write: {frames!r}")
    if len(sent) < len(want):
        raise RuntimeError(f"only {len(sent)} writes")


def run_twisted(
    calls: int, profile: cProfile.Profile | None = None, evictor: Evictor | None = None
) -> float:
    """ns of client Python per call, for ``calls`` calls on a fresh connection."""
    rpc = TwistedRPC()
    rpc.setup()
    rpc.transport.socket.sent = 0
    rpc.transport.socket.kept = []
    rpc.start(calls)
    reads = rpc.reads(calls)
    # The first call outside the clock, with its writes checked.
    receive = rpc.receive
    receive(reads[0])
    receive(reads[1])
    _check(rpc)
    rpc.transport.socket.kept = None
    todo = reads[2:]
    elapsed = feed_ns(profile, receive, todo, evictor)
    loop = rpc.loop
    if loop is None or not loop.called:
        raise RuntimeError("the client loop did not finish: a reply went missing")
    rpc._result(loop)
    if rpc.transport.socket.sent != 2 * calls:
        raise RuntimeError(f"{rpc.transport.socket.sent} writes for {calls} calls")
    return elapsed / (calls - 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--calls", type=int, default=20_000, help="RPC calls per run")
    p.add_argument("--repeats", type=int, default=7, help="runs; the median is reported")
    p.add_argument(
        "--adapter", choices=["twisted", "tornado", "both"], default="twisted", help="which adapter"
    )
    p.add_argument("--profile", action="store_true", help="print a cProfile of one run")
    p.add_argument("--sort", default="tottime", help="cProfile sort key (with --profile)")
    p.add_argument("--lines", type=int, default=35, help="cProfile rows (with --profile)")
    p.add_argument(
        "--evict-kib",
        type=int,
        default=0,
        metavar="KIB",
        help="before each read copy KIB KiB, as the broker's run between two halves\n"
        "evicts the caches, and time only the reads (0: warm, the whole loop)",
    )
    a = p.parse_args(argv)
    if a.profile and a.evict_kib:
        p.error("--profile times the whole loop: leave out --evict-kib")
    evictor = Evictor(a.evict_kib) if a.evict_kib > 0 else None
    core = "C accelerator" if _accel.speedups is not None else "pure Python"
    adapters = ["twisted", "tornado"] if a.adapter == "both" else [a.adapter]
    runners = {"twisted": run_twisted, "tornado": run_tornado}
    for name in adapters:
        run = runners[name]
        if a.profile:
            prof = cProfile.Profile()
            run(a.calls, prof)
            print_profile(prof, a.sort, a.lines, f"{name}, {core}, {a.calls} calls")
            continue
        runs = [run(a.calls, None, evictor) for _ in range(a.repeats)]
        cold = f", {a.evict_kib} KiB evicted before each read" if evictor else ""
        print(
            f"{name} ({core}{cold}): {statistics.median(runs):.0f} ns/call median of {a.repeats} "
            f"(min {min(runs):.0f}, max {max(runs):.0f}; {a.calls} calls each)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
