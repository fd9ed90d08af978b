"""Codec micro-benchmark: txamqp091's sans-IO core against pika 1.4.4's own codec.

No broker and no sockets: both libraries run their real encode/decode code on
the same bytes, in one process, side by side, so the ratio is meaningful even
on a noisy machine.

(a) Publishing one message: Basic.Publish + content header + a 64-byte body.

    a1/a2 "publish": the full per-message path of each library's publish call,
      transport write stubbed out.

      * pika: a real ``pika.channel.Channel`` (state forced to OPEN) whose
        connection is a stub that borrows pika's own ``Connection._send_method``,
        ``_send_message`` and ``_output_marshaled_frames``; the transport write
        (``_adapter_emit_data``) appends to a deque that is cleared every 100
        messages. So ``basic_publish`` runs exactly as in pika 1.4.4: build
        ``Basic.Publish``, marshal the method, header and body frames (three
        ``bytes``; pika 1.4.4 does no ``b"".join`` of them) and hand each to the
        transport.
      * txamqp091: ``core.Channel.publish(...)`` on an open core connection, with
        ``Connection.data_to_send()`` every 100 publishes (one transport write
        per event-loop turn, as the adapters do).

    a3/a4 "encode only": the frame codec alone.

      * pika: ``frame.Method(ch, spec.Basic.Publish(ex, rk)).marshal()``,
        ``frame.Header(ch, len(body), props).marshal()``,
        ``frame.Body(ch, body).marshal()``.
      * txamqp091: ``core.frames.encode_content(ch, method_payload, body, props,
        frame_max)`` with the Basic.Publish payload cached (as ``publish`` does).

    a1/a3 use typical properties (content_type, delivery_mode, message_id and a
    two-entry headers table); a2/a4 none (pika: an empty ``BasicProperties()``,
    which is what its ``basic_publish`` substitutes for ``None``).

(b) Decoding a stream of Basic.Deliver messages (same properties, 64-byte
    bodies) into complete messages.

    b1 * pika: a stub connection borrowing pika's own ``Connection._on_data_available``,
        ``_read_frame`` and ``_trim_frame_buffer`` (``frame.decode_frame`` on the
        buffer, then ``buffer = buffer[consumed:]`` after every frame, as 1.4.4
        does), whose ``_process_frame`` hands channel frames to a
        ``channel.ContentFrameAssembler``, which yields (method, header, body).
        Fed in 4 KiB chunks: pika's transport reads ``_MAX_RECV_BYTES`` = 4096
        per ``recv``. pika's callback-manager lookup per method frame and its
        ``Channel._on_deliver`` dispatch are NOT included, so the pika figure is a
        lower bound of what pika really spends.
       * txamqp091: ``Connection.receive_data(chunk, now)`` on a core connection
        opened by a scripted handshake (heartbeat 60 s negotiated, channel 1 open,
        a consumer), fed in 64 KiB chunks; every message becomes a ``Delivery``.
    b2/b3 the same with the other side's chunk size (pika 64 KiB, txamqp091 4 KiB),
        to show how much chunking matters to each.

Run ``python benchmarks/codec.py --help`` for options; see benchmarks/README.rst.
"""

from __future__ import annotations

import argparse
import collections
import gc
import itertools
import json
import platform
import statistics
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import pika  # noqa: E402
import pika.channel  # noqa: E402
import pika.connection  # noqa: E402
import pika.frame  # noqa: E402
import pika.spec  # noqa: E402
from pika.adapters.utils.io_services_utils import _AsyncTransportBase  # noqa: E402

from txamqp091.core import frames, spec  # noqa: E402
from txamqp091.core.connection import Connection  # noqa: E402
from txamqp091.core.events import (  # noqa: E402
    ChannelOpened,
    ConnectionOpened,
    Delivery,
    MethodReply,
)

CHANNEL = 1
FRAME_MAX = 131072  # RabbitMQ's default, and pika's and txamqp091's
EXCHANGE = "bench"
ROUTING_KEY = "bench.key"
BODY = bytes(range(64))
CONSUMER_TAG = "amq.ctag-Hx3b9yq0VZ7mZ8bHc2Qw1A"
MESSAGE_ID = "5f0c2a1e-9b7d-4c1e-8a53-2d6f1b7e9c40"
HEADERS = {"x-retry": 1, "source": "bench"}
FLUSH_EVERY = 100  # publishes per transport write (one event-loop turn)
PIKA_RECV = _AsyncTransportBase._MAX_RECV_BYTES  # 4096 in pika 1.4.4
BIG_RECV = 64 * 1024

_frame_head = struct.Struct(">BHI").pack

#: The timer of the measured loops: wall time by default; ``--cpu-time`` switches
#: to this process's CPU time, steadier on a shared machine.
clock = time.perf_counter


def tx_props() -> spec.BasicProperties:
    return spec.BasicProperties(
        content_type="application/json",
        delivery_mode=2,
        message_id=MESSAGE_ID,
        headers=dict(HEADERS),
    )


def pika_props() -> pika.spec.BasicProperties:
    return pika.spec.BasicProperties(
        content_type="application/json",
        delivery_mode=2,
        message_id=MESSAGE_ID,
        headers=dict(HEADERS),
    )


# -- txamqp091 side: a core connection opened by a scripted broker -----------------


class _Credentials:
    mechanism = "PLAIN"

    def response_for(self, mechanisms: bytes) -> bytes:
        return b"\x00guest\x00guest"


def server_frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    return _frame_head(frame_type, channel, len(payload)) + payload + b"\xce"


def server_method(channel: int, method: spec.Method) -> bytes:
    return server_frame(spec.FRAME_METHOD, channel, method.encode())


def open_core_connection() -> tuple[Connection, Any]:
    """A core Connection, handshake done by a scripted broker, channel 1 open and consuming."""
    conn = Connection(credentials=_Credentials(), client_properties={"product": "bench"})
    now = time.monotonic()
    assert conn.data_to_send() == spec.PROTOCOL_HEADER
    start = spec.ConnectionStart(
        server_properties={
            "product": "RabbitMQ",
            "version": "3.13.7",
            "capabilities": {"publisher_confirms": True, "consumer_cancel_notify": True},
        },
        mechanisms=b"AMQPLAIN PLAIN",
        locales=b"en_US",
    )
    handshake = (
        server_method(0, start)
        + server_method(0, spec.ConnectionTune(channel_max=2047, frame_max=FRAME_MAX, heartbeat=60))
        + server_method(0, spec.ConnectionOpenOk())
    )
    events = conn.receive_data(handshake, now)
    assert any(isinstance(e, ConnectionOpened) for e in events), events
    assert conn.frame_max == FRAME_MAX and conn.heartbeat == 60
    conn.data_to_send()  # Start-Ok, Tune-Ok, Open
    channel = conn.open_channel()
    assert channel.channel_id == CHANNEL
    conn.data_to_send()
    events = conn.receive_data(server_method(CHANNEL, spec.ChannelOpenOk()), now)
    assert any(isinstance(e, ChannelOpened) for e in events), events
    channel.send_method(spec.BasicConsume(queue="bench", consumer_tag=CONSUMER_TAG))
    conn.data_to_send()
    events = conn.receive_data(
        server_method(CHANNEL, spec.BasicConsumeOk(consumer_tag=CONSUMER_TAG)), now
    )
    assert any(isinstance(e, MethodReply) for e in events), events
    return conn, channel


def deliver_stream(count: int) -> bytes:
    """``count`` Basic.Deliver messages (method, header and body frames) on channel 1."""
    props = tx_props().encode()
    header = server_frame(spec.FRAME_HEADER, CHANNEL, struct.pack(">HHQ", 60, 0, len(BODY)) + props)
    body = server_frame(spec.FRAME_BODY, CHANNEL, BODY)
    parts: list[bytes] = []
    for tag in range(1, count + 1):
        deliver = spec.BasicDeliver(
            consumer_tag=CONSUMER_TAG,
            delivery_tag=tag,
            redelivered=False,
            exchange=EXCHANGE,
            routing_key=ROUTING_KEY,
        )
        parts += (server_method(CHANNEL, deliver), header, body)
    return b"".join(parts)


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# -- pika side: pika's own code, with the socket stubbed out ------------------------

_PikaConnection = pika.connection.Connection


class PikaOutboundStub:
    """Runs pika.connection.Connection's own outbound methods; the transport is a deque."""

    _send_method = _PikaConnection._send_method
    _send_message = _PikaConnection._send_message
    _send_frame = _PikaConnection._send_frame
    _output_marshaled_frames = _PikaConnection._output_marshaled_frames

    def __init__(self) -> None:
        self.callbacks = None  # read by pika.channel.Channel.__init__
        self.is_closed = False
        self._body_max_length = FRAME_MAX - pika.spec.FRAME_HEADER_SIZE - pika.spec.FRAME_END_SIZE
        self.bytes_sent = 0
        self.frames_sent = 0
        self.tx: collections.deque[bytes] = collections.deque()

    def _adapter_emit_data(self, data: bytes) -> None:
        self.tx.append(data)  # what the transport's write() buffers


def open_pika_channel() -> tuple[pika.channel.Channel, PikaOutboundStub]:
    stub = PikaOutboundStub()
    channel = pika.channel.Channel(stub, CHANNEL, None)
    channel._state = pika.channel.Channel.OPEN
    return channel, stub


class PikaInboundStub:
    """Runs pika.connection.Connection's own inbound loop; frames go to a content assembler.

    ``_on_data_available``, ``_read_frame`` (``frame.decode_frame``) and
    ``_trim_frame_buffer`` are pika's. ``_process_frame`` keeps what pika's does
    for content frames (frame count, channel routing) but skips the callback
    manager lookup and the channel's consumer dispatch.
    """

    _on_data_available = _PikaConnection._on_data_available
    _read_frame = _PikaConnection._read_frame
    _trim_frame_buffer = _PikaConnection._trim_frame_buffer

    def __init__(self) -> None:
        self._frame_buffer = b""
        self.bytes_received = 0
        self.frames_received = 0
        self.assemblers = {CHANNEL: pika.channel.ContentFrameAssembler()}
        self.messages: list[Any] = []
        self.keep = False
        self.count = 0

    def _process_frame(self, frame_value: Any) -> None:
        if frame_value.frame_type < 0:
            return
        self.frames_received += 1
        if frame_value.channel_number > 0:
            message = self.assemblers[frame_value.channel_number].process(frame_value)
            if message:
                self.count += 1
                if self.keep:
                    self.messages.append(message)


# -- the measured loops: each returns seconds for ``n`` messages --------------------


def run_pika_publish(n: int, with_props: bool) -> float:
    channel, stub = open_pika_channel()
    publish = channel.basic_publish
    props = pika_props() if with_props else None
    flush = stub.tx.clear
    turns = itertools.repeat(None, n // FLUSH_EVERY)
    batch = range(FLUSH_EVERY)
    t0 = clock()
    for _ in turns:
        for _ in batch:
            publish(EXCHANGE, ROUTING_KEY, BODY, props)
        flush()
    return clock() - t0


def run_tx_publish(n: int, with_props: bool) -> float:
    conn, channel = open_core_connection()
    publish = channel.publish
    props = tx_props() if with_props else None
    flush = conn.data_to_send
    turns = itertools.repeat(None, n // FLUSH_EVERY)
    batch = range(FLUSH_EVERY)
    t0 = clock()
    for _ in turns:
        for _ in batch:
            publish(EXCHANGE, ROUTING_KEY, BODY, props)
        flush()
    return clock() - t0


def run_pika_encode(n: int, with_props: bool) -> float:
    props = pika_props() if with_props else pika.spec.BasicProperties()
    method_frame = pika.frame.Method
    header_frame = pika.frame.Header
    body_frame = pika.frame.Body
    publish = pika.spec.Basic.Publish
    size = len(BODY)
    t0 = clock()
    for _ in itertools.repeat(None, n):
        method_frame(CHANNEL, publish(exchange=EXCHANGE, routing_key=ROUTING_KEY)).marshal()
        header_frame(CHANNEL, size, props).marshal()
        body_frame(CHANNEL, BODY).marshal()
    return clock() - t0


def run_tx_encode(n: int, with_props: bool) -> float:
    props = tx_props() if with_props else None
    encode = frames.encode_content
    method = frames.encode_publish_method(EXCHANGE, ROUTING_KEY, False, False)
    t0 = clock()
    for _ in itertools.repeat(None, n):
        encode(CHANNEL, method, BODY, props, FRAME_MAX)
    return clock() - t0


def run_pika_decode(chunks: list[bytes], n: int) -> float:
    stub = PikaInboundStub()
    feed = stub._on_data_available
    t0 = clock()
    for chunk in chunks:
        feed(chunk)
    elapsed = clock() - t0
    assert stub.count == n and not stub._frame_buffer, (stub.count, n)
    return elapsed


def run_tx_decode(chunks: list[bytes], n: int, conn: Connection) -> float:
    receive = conn.receive_data
    now = time.monotonic()
    count = 0
    t0 = clock()
    for chunk in chunks:
        count += len(receive(chunk, now))
    elapsed = clock() - t0
    assert count == n, (count, n)
    return elapsed


# -- correctness checks, untimed -------------------------------------------------------


def check_encoders() -> dict[str, bool]:
    """Both sides must put the same bytes on the wire (else the comparison is moot)."""
    same = {}
    for label, with_props in (("typical properties", True), ("no properties", False)):
        channel, stub = open_pika_channel()
        channel.basic_publish(EXCHANGE, ROUTING_KEY, BODY, pika_props() if with_props else None)
        pika_wire = b"".join(stub.tx)
        conn, tx_channel = open_core_connection()
        tx_channel.publish(EXCHANGE, ROUTING_KEY, BODY, tx_props() if with_props else None)
        tx_wire = conn.data_to_send()
        method = frames.encode_publish_method(EXCHANGE, ROUTING_KEY, False, False)
        raw = frames.encode_content(
            CHANNEL, method, BODY, tx_props() if with_props else None, FRAME_MAX
        )
        marshalled = b"".join(
            (
                pika.frame.Method(
                    CHANNEL, pika.spec.Basic.Publish(exchange=EXCHANGE, routing_key=ROUTING_KEY)
                ).marshal(),
                pika.frame.Header(
                    CHANNEL, len(BODY), pika_props() if with_props else pika.spec.BasicProperties()
                ).marshal(),
                pika.frame.Body(CHANNEL, BODY).marshal(),
            )
        )
        assert tx_wire == raw, "Channel.publish and encode_content disagree"
        assert pika_wire == marshalled, "pika basic_publish and frame marshalling disagree"
        same[label] = pika_wire == tx_wire
    return same


def check_decoders(stream: bytes, n: int) -> None:
    stub = PikaInboundStub()
    stub.keep = True
    for chunk in chunked(stream, PIKA_RECV):
        stub._on_data_available(chunk)
    assert len(stub.messages) == n
    method_frame, header_frame, body = stub.messages[-1]
    assert isinstance(method_frame.method, pika.spec.Basic.Deliver)
    assert method_frame.method.delivery_tag == n and body == BODY
    props = header_frame.properties
    assert props.content_type == "application/json" and props.delivery_mode == 2
    assert props.message_id == MESSAGE_ID and props.headers == HEADERS

    conn, _ = open_core_connection()
    events: list[Any] = []
    for chunk in chunked(stream, BIG_RECV):
        events += conn.receive_data(chunk, time.monotonic())
    assert len(events) == n and all(type(e) is Delivery for e in events)
    last = events[-1]
    assert last.delivery_tag == n and last.body == BODY and last.consumer_tag == CONSUMER_TAG
    assert last.routing_key == ROUTING_KEY and last.exchange == EXCHANGE
    p = last.properties
    assert p.content_type == "application/json" and p.delivery_mode == 2
    assert p.message_id == MESSAGE_ID and p.headers == HEADERS


# -- driver ------------------------------------------------------------------------------


def measure_pair(
    pika_fn: Callable[[], float], tx_fn: Callable[[], float], n: int, repeats: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Time both sides, alternating run by run so that machine noise hits both alike."""
    pika_fn()  # warm-up: caches, allocator, first-call costs
    tx_fn()
    pika_runs, tx_runs = [], []
    for _ in range(repeats):
        gc.collect()
        pika_runs.append(pika_fn() / n * 1e6)
        gc.collect()
        tx_runs.append(tx_fn() / n * 1e6)
    return (
        {"median": statistics.median(pika_runs), "min": min(pika_runs), "runs": pika_runs},
        {"median": statistics.median(tx_runs), "min": min(tx_runs), "runs": tx_runs},
    )


def run(messages: int, repeats: int) -> dict[str, Any]:
    """Check both sides, then time every case; the report ``--json`` writes."""
    n = max(FLUSH_EVERY, messages // FLUSH_EVERY * FLUSH_EVERY)
    stream = deliver_stream(n)
    wire_identical = check_encoders()
    check_decoders(stream, n)
    pika_chunks = chunked(stream, PIKA_RECV)
    big_chunks = chunked(stream, BIG_RECV)
    tx_conn, _ = open_core_connection()

    cases: list[tuple[str, str, Callable[[], float], Callable[[], float], str, str]] = [
        (
            "a1",
            "publish, typical props",
            lambda: run_pika_publish(n, True),
            lambda: run_tx_publish(n, True),
            "Channel.basic_publish",
            f"Channel.publish + data_to_send/{FLUSH_EVERY}",
        ),
        (
            "a2",
            "publish, no props",
            lambda: run_pika_publish(n, False),
            lambda: run_tx_publish(n, False),
            "Channel.basic_publish",
            f"Channel.publish + data_to_send/{FLUSH_EVERY}",
        ),
        (
            "a3",
            "encode only, typical props",
            lambda: run_pika_encode(n, True),
            lambda: run_tx_encode(n, True),
            "Method+Header+Body .marshal()",
            "frames.encode_content",
        ),
        (
            "a4",
            "encode only, no props",
            lambda: run_pika_encode(n, False),
            lambda: run_tx_encode(n, False),
            "Method+Header+Body .marshal()",
            "frames.encode_content",
        ),
        (
            "b1",
            "decode deliveries, native recv",
            lambda: run_pika_decode(pika_chunks, n),
            lambda: run_tx_decode(big_chunks, n, tx_conn),
            f"decode_frame+slice+assembler, {PIKA_RECV // 1024} KiB",
            f"receive_data, {BIG_RECV // 1024} KiB",
        ),
        (
            "b2",
            "decode deliveries, 64 KiB recv",
            lambda: run_pika_decode(big_chunks, n),
            lambda: run_tx_decode(big_chunks, n, tx_conn),
            f"decode_frame+slice+assembler, {BIG_RECV // 1024} KiB",
            f"receive_data, {BIG_RECV // 1024} KiB",
        ),
        (
            "b3",
            "decode deliveries, 4 KiB recv",
            lambda: run_pika_decode(pika_chunks, n),
            lambda: run_tx_decode(pika_chunks, n, tx_conn),
            f"decode_frame+slice+assembler, {PIKA_RECV // 1024} KiB",
            f"receive_data, {PIKA_RECV // 1024} KiB",
        ),
    ]
    results = []
    for key, title, pika_fn, tx_fn, pika_what, tx_what in cases:
        pika_res, tx_res = measure_pair(pika_fn, tx_fn, n, repeats)
        results.append(
            {
                "id": key,
                "name": title,
                "pika": {"what": pika_what, **pika_res},
                "txamqp091": {"what": tx_what, **tx_res},
                "ratio_median": pika_res["median"] / tx_res["median"],
                "ratio_min": pika_res["min"] / tx_res["min"],
            }
        )
    return {
        "benchmark": "codec",
        "unit": "microseconds per message",
        "messages": n,
        "repeats": repeats,
        "body_bytes": len(BODY),
        "python": platform.python_implementation() + " " + platform.python_version(),
        "platform": platform.platform(),
        "pika": pika.__version__,
        "clock": "process_time" if clock is time.process_time else "perf_counter",
        "wire_identical": wire_identical,
        "results": results,
    }


def print_table(report: dict[str, Any]) -> None:
    print(
        f"txamqp091 core vs pika {report['pika']} codec: {report['python']}, {report['platform']}"
    )
    print(
        f"{report['repeats']} repeats x {report['messages']:,} messages, "
        f"{report['body_bytes']}-byte bodies, {report['clock']}; "
        "microseconds per message (lower is better)"
    )
    same = ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in report["wire_identical"].items())
    print(f"publish bytes identical on the wire ({same})")
    print()
    header = (
        f"{'':3} {'benchmark':31} {'pika med':>9} {'min':>7}   "
        f"{'txamqp091 med':>13} {'min':>7}   {'pika/tx':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in report["results"]:
        p, t = r["pika"], r["txamqp091"]
        print(
            f"{r['id']:3} {r['name']:31} {p['median']:9.3f} {p['min']:7.3f}   "
            f"{t['median']:13.3f} {t['min']:7.3f}   {r['ratio_median']:6.2f}x"
        )
    print()
    print("what each side runs:")
    for r in report["results"]:
        print(f"  {r['id']}: pika {r['pika']['what']}  |  txamqp091 {r['txamqp091']['what']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000, help="messages per run")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time with process CPU time instead of wall time (steadier on a busy machine)",
    )
    args = parser.parse_args(argv)
    global clock
    clock = time.process_time if args.cpu_time else time.perf_counter
    report = run(args.messages, args.repeats)
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
