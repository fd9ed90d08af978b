"""The client's Python cost per message in the publish, confirm and consume scenarios, without
a broker or a socket (``rpc_path.py`` does the same for rpc).

``twisted_client.py`` and ``tornado_client.py`` measure confirm and consume through
RabbitMQ, which shares this two-core machine with the client: the client's own cost
per message hides in the broker's noise. Here the same user code runs on a
connection set up through the public API against pre-encoded broker replies, and the
broker's reads are handed to the protocol where the socket read would
(``data_received``), one read per loop turn; writes go to a fake socket.

- ``publish``: the benchmark's loop (``publish("", queue, BODY_64)`` in batches of
  ``--batch``, each followed by the loop turn that writes them), with no read at all.
- ``confirm``: the benchmark's window of 1,000 unconfirmed publishes (its own
  ``future_window`` / ``_confirm_window``), settled by reads of Basic.Ack frames in
  the shape a live run gets (``--acks-per-read`` frames a read, each acking
  ``--ack-cover`` publishes with ``multiple``, every fourth one a single publish).
- ``consume``: ``msg = await consumer.get(); msg.ack()`` (the benchmark's loop), fed
  reads of ``--per-read`` deliveries of 64 bytes.

It reports nanoseconds of client Python per message (median, min and max of
``--repeats`` runs). ``--profile`` prints a cProfile of one run instead. Run it with
``TXAMQP091_NO_EXTENSIONS=1`` for the pure-Python core.

    python benchmarks/client_path.py --adapter both --only publish,confirm,consume

It is a measuring tool, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from txamqp091.core import _accel, spec
from txamqp091.core.testing import ServerFrames, parse_client_frames

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from _publish import publish_in_batches  # noqa: E402
from _rpc import BODY_64  # noqa: E402
from rpc_path import TornadoRPC, TwistedRPC, print_profile, timed_ns  # noqa: E402
from rpc_path import cached_input as _cached  # noqa: E402

QUEUE = "client-path"
TAG = "ctag.txamqp091.4242.1"
WINDOW = 1000
PREFETCH = 1000


def ack_reads(n: int, per_read: int, cover: int) -> list[bytes]:
    """Reads of Basic.Ack frames that confirm publishes 1..n in order: ``per_read``
    frames a read, each a ``multiple`` ack of ``cover`` publishes, except every fourth,
    which acks one (a live run's mix)."""
    f = ServerFrames()
    reads: list[bytes] = []
    frames: list[bytes] = []
    acked = 0
    k = 0
    while acked < n:
        single = k % 4 == 3
        k += 1
        if single:
            acked += 1
            frames.append(f.ack(1, acked, False))
        else:
            acked = min(n, acked + cover)
            frames.append(f.ack(1, acked, True))
        if len(frames) == per_read or acked == n:
            reads.append(b"".join(frames))
            frames = []
    return reads


def delivery_reads(n: int, per_read: int) -> list[bytes]:
    """Reads of ``per_read`` deliveries (64 bytes, no properties), tags 1..n."""
    f = ServerFrames()
    reads = []
    for first in range(1, n + 1, per_read):
        last = min(n, first + per_read - 1)
        reads.append(
            b"".join(
                f.deliver(1, TAG, tag, BODY_64, routing_key=QUEUE) for tag in range(first, last + 1)
            )
        )
    return reads


def _ack_reads(n: int, a: argparse.Namespace) -> list[bytes]:
    key = f"acks {n} {a.acks_per_read} {a.ack_cover}"
    reads: list[bytes] = _cached(key, lambda: ack_reads(n, a.acks_per_read, a.ack_cover))
    return reads


def _delivery_reads(n: int, a: argparse.Namespace) -> list[bytes]:
    reads: list[bytes] = _cached(
        f"deliveries {n} {a.per_read}", lambda: delivery_reads(n, a.per_read)
    )
    return reads


def _check_publishes(kept: list[bytes], want: int) -> None:
    _checked(f"publishes {want}", kept, _parse_publishes, want)


def _checked(
    key: str, kept: list[bytes], check: Callable[[list[bytes], int], None], want: int
) -> None:
    """``check(kept, want)``; with a cache, once, and later runs compare the bytes."""
    data = b"".join(kept)

    def checked() -> bytes:
        check(kept, want)
        return data

    if _cached(key, checked) != data:
        raise RuntimeError(f"writes differ from the checked ones ({key})")


def _parse_publishes(kept: list[bytes], want: int) -> None:
    seen = 0
    for data in kept:
        for frame in parse_client_frames(data):
            if frame[0] == 3:
                if frame[2] != BODY_64:
                    raise RuntimeError(f"unexpected body {frame[2]!r}")
                seen += 1
    if seen != want:
        raise RuntimeError(f"{seen} publishes written, expected {want}")


# -- Tornado ------------------------------------------------------------------------------------


def _open_channel(h: Any) -> tuple[Any, Any]:
    """The harness ``h`` and channel 1 opened on its connection."""
    return h, h._reply(h.conn.channel(), h.frames.channel_open_ok(1))


async def _consume_loop(get: Callable[[], Any], n: int) -> None:
    """The benchmark's consume loop."""
    for _ in range(n):
        msg = await get()
        msg.ack()


def _tornado_feed(h: Any, reads: list[bytes], done: Any, profile: cProfile.Profile | None) -> int:
    """Feed ``reads`` one per loop turn until ``done``; the elapsed ns."""
    loop = h.loop
    receive = h.receive
    it = iter(reads)
    call_soon = loop.call_soon

    def feed() -> None:
        data = next(it, None)
        if data is not None:
            receive(data)
            call_soon(feed)

    def run() -> None:
        call_soon(feed)
        loop.run_until_complete(done)

    return timed_ns(profile, run)


def tornado_confirm(
    n: int, a: argparse.Namespace, profile: cProfile.Profile | None = None
) -> float:
    from tornado_client import future_window

    h, ch = _open_channel(TornadoRPC())
    h._reply(ch.confirm_delivery(), h.frames.confirm_select_ok(1))
    publish = ch.basic_publish
    h.socket.kept = []
    reads = _ack_reads(n, a)

    async def start() -> Any:
        return future_window(lambda: publish("", QUEUE, BODY_64), n, WINDOW)

    done = h.loop.run_until_complete(start())
    elapsed = _tornado_feed(h, reads, done, profile)
    _check_publishes(h.socket.kept, n)
    h.loop.close()
    return elapsed / n


def tornado_publish(
    n: int, a: argparse.Namespace, profile: cProfile.Profile | None = None
) -> float:
    h, ch = _open_channel(TornadoRPC())
    h.socket.kept = []
    done = h.loop.create_task(
        publish_in_batches(ch.basic_publish, asyncio.sleep, QUEUE, n, a.batch)
    )
    elapsed = timed_ns(profile, lambda: h.loop.run_until_complete(done))
    _check_publishes(h.socket.kept, n)
    h.loop.close()
    return elapsed / n


def tornado_consume(
    n: int, a: argparse.Namespace, profile: cProfile.Profile | None = None
) -> float:
    h, ch = _open_channel(TornadoRPC())
    h._reply(ch.basic_qos(prefetch_count=PREFETCH), h.frames.qos_ok(1))
    consumer = h._reply(ch.basic_consume(QUEUE, consumer_tag=TAG), h.frames.consume_ok(1, TAG))
    h.socket.kept = []
    task = h.loop.create_task(_consume_loop(consumer.get, n))
    h.loop.run_until_complete(asyncio.sleep(0))
    elapsed = _tornado_feed(h, _delivery_reads(n, a), task, profile)
    _check_acks(h.socket.kept, n)
    h.loop.close()
    return elapsed / n


def _check_acks(kept: list[bytes], want: int) -> None:
    _checked(f"acks {want}", kept, _parse_acks, want)


def _parse_acks(kept: list[bytes], want: int) -> None:
    tags = []
    for data in kept:
        for frame in parse_client_frames(data):
            method = frame[2]
            if not isinstance(method, spec.BasicAck):
                raise RuntimeError(f"a write that is not an ack: {frame!r}")
            tags.append(method.delivery_tag)
    if tags != list(range(1, want + 1)):
        raise RuntimeError(f"acks {tags[:5]}... ({len(tags)}), expected 1..{want}")


# -- Twisted ------------------------------------------------------------------------------------


def _twisted_feed(h: Any, reads: list[bytes], profile: cProfile.Profile | None) -> int:
    """Feed ``reads``, running the reactor's due calls (the scheduled flush) after each."""
    receive = h.receive
    advance = h.clock.advance

    def run() -> None:
        for data in reads:
            receive(data)
            advance(0)

    return timed_ns(profile, run)


def twisted_confirm(
    n: int, a: argparse.Namespace, profile: cProfile.Profile | None = None
) -> float:
    from twisted_client import _confirm_window

    h, ch = _open_channel(TwistedRPC())
    h._reply(ch.confirm_delivery(), h.frames.confirm_select_ok(1))
    h.transport.socket.kept = []
    done = _confirm_window(ch.basic_publish, QUEUE, BODY_64, n, WINDOW)
    h.clock.advance(0)
    elapsed = _twisted_feed(h, _ack_reads(n, a), profile)
    h._result(done)
    _check_publishes(h.transport.socket.kept, n)
    return elapsed / n


def twisted_publish(
    n: int, a: argparse.Namespace, profile: cProfile.Profile | None = None
) -> float:
    from twisted.internet.defer import ensureDeferred
    from twisted_client import _sleep

    h, ch = _open_channel(TwistedRPC())
    h.transport.socket.kept = []
    clock = h.clock

    def run() -> None:
        # The live loop's sleep(0), on the harness' Clock: the reactor turn that flushes.
        sleep = functools.partial(_sleep, clock)
        done = ensureDeferred(publish_in_batches(ch.basic_publish, sleep, QUEUE, n, a.batch))
        while not done.called:
            clock.advance(0)
        h._result(done)

    elapsed = timed_ns(profile, run)
    _check_publishes(h.transport.socket.kept, n)
    return elapsed / n


def twisted_consume(
    n: int, a: argparse.Namespace, profile: cProfile.Profile | None = None
) -> float:
    from twisted.internet.defer import ensureDeferred

    h, ch = _open_channel(TwistedRPC())
    h._reply(ch.basic_qos(prefetch_count=PREFETCH), h.frames.qos_ok(1))
    consumer = h._reply(ch.basic_consume(QUEUE, consumer_tag=TAG), h.frames.consume_ok(1, TAG))
    h.transport.socket.kept = []
    done = ensureDeferred(_consume_loop(consumer.get, n))
    elapsed = _twisted_feed(h, _delivery_reads(n, a), profile)
    h._result(done)
    _check_acks(h.transport.socket.kept, n)
    return elapsed / n


RUNNERS: dict[tuple[str, str], Callable[..., float]] = {
    ("twisted", "publish"): twisted_publish,
    ("tornado", "publish"): tornado_publish,
    ("twisted", "confirm"): twisted_confirm,
    ("twisted", "consume"): twisted_consume,
    ("tornado", "confirm"): tornado_confirm,
    ("tornado", "consume"): tornado_consume,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--messages", type=int, default=50_000, help="messages per run")
    p.add_argument("--repeats", type=int, default=5, help="runs; the median is reported")
    p.add_argument("--adapter", choices=["twisted", "tornado", "both"], default="both")
    p.add_argument("--only", default="publish,confirm,consume", help="scenarios, comma-separated")
    p.add_argument("--batch", type=int, default=1000, help="publishes per loop turn (publish)")
    p.add_argument("--per-read", type=int, default=20, help="deliveries per read (consume)")
    p.add_argument("--acks-per-read", type=int, default=4, help="ack frames per read (confirm)")
    p.add_argument("--ack-cover", type=int, default=12, help="publishes a multiple ack settles")
    p.add_argument("--profile", action="store_true", help="print a cProfile of one run")
    p.add_argument("--sort", default="tottime", help="cProfile sort key (with --profile)")
    p.add_argument("--lines", type=int, default=35, help="cProfile rows (with --profile)")
    a = p.parse_args(argv)
    core = "C accelerator" if _accel.speedups is not None else "pure Python"
    adapters = ["twisted", "tornado"] if a.adapter == "both" else [a.adapter]
    for scenario in a.only.split(","):
        for adapter in adapters:
            run = RUNNERS[(adapter, scenario)]
            if a.profile:
                prof = cProfile.Profile()
                run(a.messages, a, prof)
                print_profile(
                    prof, a.sort, a.lines, f"{adapter} {scenario}, {core}, {a.messages} messages"
                )
                continue
            runs = [run(a.messages, a) for _ in range(a.repeats)]
            print(
                f"{adapter:8} {scenario:8} ({core}): median {statistics.median(runs):.0f} "
                f"ns/msg (min {min(runs):.0f}, max {max(runs):.0f}; {a.repeats}x{a.messages})",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
