"""Valid broker byte streams, mutated at random, fed to the sans-IO core in pieces.

The fuzzer's unit is a *stream*: everything a broker sends on one connection,
from Connection.Start on. :func:`valid_stream` builds a well-formed one from a
seed (handshake, Channel.Open-Ok, Confirm.Select-Ok, then a random mix of
deliveries with properties and nested headers, multi-frame bodies, returns,
acks and nacks, heartbeats, blocked/unblocked, flow, cancel and close).
:func:`mutate` damages it (bit flips, interesting bytes and 32-bit lengths,
inserted, deleted, duplicated and spliced ranges, truncation), and
:func:`run_stream` feeds the result to a fresh client
:class:`~txamqp091.core.connection.Connection` split at the given points,
acting like a client would (opening channel 1, selecting confirms, publishing)
when the events say so.

Two properties are checked on every call to ``receive_data``:

- it never raises: malformed input must end as a ``ConnectionClosed`` event;
- the bytes it keeps buffered (an incomplete frame) never exceed
  ``frame_max + 8``: a frame header is judged before its payload is awaited.

:func:`run_stream` returns the *outcome class* of the stream: ``"open"``,
``"closed:<ErrorType>:<reply code>"``, or ``"RAISED:<ExceptionType>"`` (a bug).
"""

from __future__ import annotations

import datetime
import decimal
import random
import struct
from collections.abc import Sequence
from typing import Any

from txamqp091.core import spec
from txamqp091.core.connection import Connection
from txamqp091.core.events import ChannelOpened, ConnectionClosed, ConnectionOpened, Event
from txamqp091.core.frames import FRAME_OVERHEAD
from txamqp091.core.testing import ServerFrames, StaticCredentials
from txamqp091.exceptions import AMQPError, ConnectionClosedByBroker
from txamqp091.types import Float32, Int8, Int64, UInt16

__all__ = [
    "BufferBoundError",
    "corpus",
    "mutate",
    "run_stream",
    "split_points",
    "valid_stream",
]

#: Frames of at most this size, so that multi-frame bodies are common.
FRAME_MAX = 4096
#: Publishes made once confirms are on, so that acks for tags 1..5 are valid.
PUBLISHES = 5
CTAG = "fuzz-ctag"

_F = ServerFrames(frame_max=FRAME_MAX)
_INTERESTING_8 = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0xCE, 0x08, 0x03, 0x02)
_INTERESTING_32 = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


class BufferBoundError(AssertionError):
    """The core kept more than ``frame_max + 8`` bytes of an incomplete frame."""


# -- valid streams ------------------------------------------------------------------------


def _headers(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for i in range(rng.randint(0, 4)):
        kind = rng.randrange(11)
        key = f"k{i}"
        if kind == 0:
            table[key] = "text-é" * rng.randint(0, 3)
        elif kind == 1:
            table[key] = rng.randint(-(2**40), 2**40)
        elif kind == 2:
            table[key] = rng.random()
        elif kind == 3:
            table[key] = bool(rng.getrandbits(1))
        elif kind == 4:
            table[key] = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 6)))
        elif kind == 5:
            table[key] = decimal.Decimal(rng.randint(-999, 999)).scaleb(-2)
        elif kind == 6:
            table[key] = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
        elif kind == 7 and depth < 3:
            table[key] = _headers(rng, depth + 1)
        elif kind == 8 and depth < 3:
            table[key] = [1, "a", None, _headers(rng, depth + 1)]
        elif kind == 9:
            table[key] = rng.choice((Int8(-3), UInt16(9), Int64(5), Float32(0.5)))
        else:
            table[key] = None
    return table


def _properties(rng: random.Random) -> spec.BasicProperties | None:
    if rng.random() < 0.3:
        return None
    return spec.BasicProperties(
        content_type=rng.choice((None, "application/json", "text/plain")),
        headers=_headers(rng) if rng.random() < 0.6 else None,
        delivery_mode=rng.choice((None, 1, 2)),
        priority=rng.choice((None, 0, 9)),
        correlation_id=rng.choice((None, "c-1")),
        message_id=rng.choice((None, "m-1")),
        timestamp=rng.choice((None, 1_620_000_000)),
    )


def _body(rng: random.Random) -> bytes:
    size = rng.choice((0, 1, 5, 64, FRAME_MAX - 8, FRAME_MAX, 3 * FRAME_MAX + 7))
    chunk = rng.randbytes(min(size, 64))
    return (chunk * (size // 64 + 1))[:size]


def valid_stream(seed: int) -> bytes:
    """A well-formed broker stream for a client that opens channel 1 and selects confirms."""
    rng = random.Random(seed)
    parts = [
        _F.start(),
        _F.tune(frame_max=FRAME_MAX, heartbeat=rng.choice((0, 60))),
        _F.open_ok(),
        _F.channel_open_ok(1),
        _F.confirm_select_ok(1),
    ]
    tag = 1
    for _ in range(rng.randint(1, 8)):
        kind = rng.randrange(12)
        if kind <= 3:
            parts.append(
                _F.deliver(
                    1,
                    CTAG,
                    tag,
                    _body(rng),
                    _properties(rng),
                    exchange="ex",
                    routing_key="rk.x",
                    redelivered=bool(kind & 1),
                )
            )
            tag += 1
        elif kind == 4:
            parts.append(_F.ack(1, rng.randint(1, PUBLISHES), multiple=bool(rng.getrandbits(1))))
        elif kind == 5:
            parts.append(_F.nack(1, rng.randint(1, PUBLISHES)))
        elif kind == 6:
            parts.append(_F.heartbeat())
        elif kind == 7:
            parts.append(_F.blocked() + _F.unblocked())
        elif kind == 8:
            parts.append(_F.basic_return(1, _body(rng), _properties(rng)))
        elif kind == 9:
            parts.append(_F.flow(1, active=False) + _F.flow(1, active=True))
        elif kind == 10:
            parts.append(_F.cancel(1, CTAG))
        else:
            parts.append(_F.method(1, spec.BasicCancel(consumer_tag="other", nowait=True)))
    end = rng.randrange(4)
    if end == 0:
        parts.append(_F.channel_close(1))
    elif end == 1:
        parts.append(_F.close())
    return b"".join(parts)


def corpus(size: int = 64, seed: int = 0) -> list[bytes]:
    """``size`` valid streams, the seeds the mutator starts from."""
    return [valid_stream(seed * 100_003 + i) for i in range(size)]


# -- mutation -------------------------------------------------------------------------------


def mutate(data: bytes, rng: random.Random, others: Sequence[bytes] = ()) -> bytes:
    """One to three random damages to ``data``."""
    buf = bytearray(data)
    starts = frame_starts(data)
    for _ in range(rng.randint(1, 3)):
        if not buf:
            buf.extend(rng.randbytes(rng.randint(1, 16)))
            continue
        op = rng.randrange(9)
        if starts and rng.random() < 0.5:
            # Aim at a frame's header and the first bytes of its payload (method ids,
            # short strings, table lengths, property flags), where bodies would dilute it.
            i = min(len(buf) - 1, rng.choice(starts) + rng.randrange(32))
        else:
            i = rng.randrange(len(buf))
        if op == 0:
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[i] = rng.choice(_INTERESTING_8)
        elif op == 2 and i + 4 <= len(buf):
            struct.pack_into(">I", buf, i, rng.choice(_INTERESTING_32))
        elif op == 3:
            buf[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 4:
            del buf[i : i + rng.randint(1, 16)]
        elif op == 5:
            del buf[i:]
        elif op == 6:
            j = min(len(buf), i + rng.randint(1, 64))
            buf[j:j] = buf[i:j]
        elif op == 7 and others:
            other = rng.choice(others)
            j = rng.randrange(len(other)) if other else 0
            buf[i:] = other[j:]
        else:
            # A plausible frame header in the middle of things.
            buf[i:i] = struct.pack(
                ">BHI",
                rng.choice((1, 2, 3, 8, 9, 0)),
                rng.choice((0, 1, 2, 0xFFFF)),
                rng.choice(_INTERESTING_32),
            )
    return bytes(buf)


def frame_starts(data: bytes) -> list[int]:
    """The offsets where the frames of a well-formed stream begin."""
    starts = []
    offset = 0
    while offset + 7 <= len(data):
        starts.append(offset)
        (size,) = struct.unpack_from(">I", data, offset + 3)
        offset += size + FRAME_OVERHEAD
    return starts


def split_points(length: int, rng: random.Random, pieces: int) -> list[int]:
    """``pieces - 1`` sorted cut offsets into a stream of ``length`` bytes."""
    if length < 2 or pieces < 2:
        return []
    return sorted(rng.sample(range(1, length), min(pieces - 1, length - 1)))


# -- running --------------------------------------------------------------------------------


def new_connection() -> Connection:
    return Connection(credentials=StaticCredentials(), frame_max=FRAME_MAX, heartbeat=None)


def _act(conn: Connection, events: list[Event]) -> None:
    """What a client does on these events: open channel 1, then confirms and publishes."""
    for event in events:
        if isinstance(event, ConnectionOpened):
            conn.open_channel()
        elif isinstance(event, ChannelOpened) and event.channel_id == 1:
            channel = conn.channel(1)
            channel.send_method(spec.ConfirmSelect())
            for _ in range(PUBLISHES):
                channel.publish("ex", "rk", b"payload")


#: Frames before the steady state: Start, Tune, Open-Ok, Channel.Open-Ok, Select-Ok.
SETUP_FRAMES = 5


def setup_boundaries(data: bytes) -> list[int]:
    """Where the first :data:`SETUP_FRAMES` frames of ``data`` end, as their headers say.

    The core parses everything it is given before the client can act, and the
    client only opens channel 1 once Open-Ok is parsed: so the setup frames are
    fed one call each (a real broker waits for the client's requests too).
    """
    ends = []
    offset = 0
    for _ in range(SETUP_FRAMES):
        if offset + 7 > len(data):
            break
        (size,) = struct.unpack_from(">I", data, offset + 3)
        offset += size + FRAME_OVERHEAD
        if offset >= len(data):
            break
        ends.append(offset)
    return ends


def run_stream(data: bytes, cuts: Sequence[int] = (), *, reraise: bool = False) -> str:
    """Feed ``data`` cut at ``cuts`` (and after each setup frame); return the outcome
    class. Raises only :class:`BufferBoundError`; an exception out of
    ``receive_data`` is an outcome."""
    conn = new_connection()
    conn.data_to_send()
    start = 0
    now = 0.0
    ends = sorted({*setup_boundaries(data), *cuts, len(data)})
    for end in ends:
        chunk = data[start:end]
        start = end
        now += 0.001
        try:
            events = conn.receive_data(chunk, now)
        except Exception as exc:  # the bug class the fuzzer exists to find
            if reraise:
                raise
            return f"RAISED:{type(exc).__name__}"
        pending = len(conn._buf) - conn._pos
        if pending > conn.frame_max + FRAME_OVERHEAD:
            raise BufferBoundError(
                f"{pending} bytes buffered with frame_max {conn.frame_max}: {data[:64]!r}"
            )
        if events:
            for event in events:
                if isinstance(event, ConnectionClosed):
                    return outcome_of(event)
            try:
                _act(conn, events)
            except AMQPError:
                pass  # the client's own call refused (a channel closed in the same batch)
            except Exception as exc:
                if reraise:
                    raise
                return f"RAISED:{type(exc).__name__}"
            conn.data_to_send()
    return "open"


def outcome_of(event: ConnectionClosed) -> str:
    error = event.error
    if error is None:
        return "closed:normal"
    if isinstance(error, ConnectionClosedByBroker):
        return "closed:ConnectionClosedByBroker"  # a mutated Close: any reply code
    return f"closed:{type(error).__name__}:{event.reply_code}"
