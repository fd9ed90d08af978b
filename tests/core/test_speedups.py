"""The C accelerator (``txamqp091/core/_speedups.c``) against the pure-Python reference.

Both implementations are reachable in one process: ``codec.pure_decode_table``,
``codec.pure_encode_table`` and ``_accel.PURE_PROPERTIES_*`` are the Python code
whatever is installed, and the parser's pure ``take_delivery`` is used when
``channel._c_take_delivery`` is None. Every test feeds both the same input and
wants the same value, or the same exception type and message.

The rest of ``tests/core`` runs on whichever path is active; ``scripts/test``
runs it once with the extension (``TXAMQP091_REQUIRE_EXTENSIONS=1``) and once
without (``TXAMQP091_NO_EXTENSIONS=1``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from txamqp091 import types
from txamqp091.core import _accel, codec, frames, spec
from txamqp091.core import channel as channel_module
from txamqp091.core import connection as connection_module
from txamqp091.core.events import Delivery, Event, PublishAcked
from txamqp091.core.testing import ServerFrames, open_connection

C = _accel.speedups
requires_c = pytest.mark.skipif(C is None, reason="the C accelerator is not built or disabled")
F = ServerFrames()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """A comparable result: the value with the types inside it, or the exception."""
    try:
        return "ok", typed(fn(*args))
    except Exception as exc:
        return "raised", (type(exc).__name__, str(exc))


def typed(value: Any) -> Any:
    if isinstance(value, dict):
        return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [typed(v) for v in value])
    if isinstance(value, spec.BasicProperties):
        return ("props", [typed(getattr(value, f)) for f in value.FIELDS])
    if isinstance(value, float) and value != value:
        return (type(value).__name__, "nan")
    return (type(value).__name__, repr(value))


# -- strategies ----------------------------------------------------------------------

text = st.text(max_size=20)
keys = st.text(max_size=12)
scalars = st.one_of(
    text,
    st.binary(max_size=20),
    st.booleans(),
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-(2**70), max_value=2**70),  # some do not fit: ValueError
    st.floats(allow_nan=False),
    st.builds(types.Int8, st.integers(-128, 127)),
    st.builds(types.UInt32, st.integers(0, 2**32 - 1)),
    st.builds(types.Int64, st.integers(-(2**31), 2**31 - 1)),
    st.builds(types.LongStr, st.binary(max_size=8)),
    st.decimals(places=2, min_value=-1000, max_value=1000),
    st.datetimes(min_value=datetime.datetime(1970, 1, 2), timezones=st.just(datetime.timezone.utc)),
    st.text(max_size=3).map(lambda s: s + "\ud800"),  # cannot be UTF-8 encoded
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(keys, inner, max_size=4),
    ),
    max_leaves=12,
)
tables = st.one_of(st.none(), st.dictionaries(keys, values, max_size=6))
well_formed_tables = st.dictionaries(
    keys,
    st.recursive(
        st.one_of(
            text, st.booleans(), st.none(), st.integers(-(2**63), 2**63 - 1), st.binary(max_size=9)
        ),
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner)),
        max_leaves=10,
    ),
    max_size=6,
)


def props_strategy(table: st.SearchStrategy[Any]) -> st.SearchStrategy[spec.BasicProperties]:
    short = st.one_of(st.none(), st.text(max_size=12), st.text(min_size=86, max_size=90))
    octet = st.one_of(st.none(), st.integers(0, 255), st.integers(-2, 300), st.booleans())
    return st.builds(
        spec.BasicProperties,
        content_type=short,
        content_encoding=short,
        headers=st.one_of(st.none(), table),
        delivery_mode=octet,
        priority=octet,
        correlation_id=short,
        reply_to=short,
        expiration=short,
        message_id=short,
        timestamp=st.one_of(st.none(), st.integers(0, 2**64 - 1), st.integers(-5, 2**65)),
        type=short,
        user_id=short,
        app_id=short,
        cluster_id=short,
    )


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    """``data`` with some bytes replaced and maybe truncated: mostly malformed input."""
    raw = bytearray(data)
    for at, byte in edits:
        if raw:
            raw[at % len(raw)] = byte
    return bytes(raw[: len(raw) - cut if cut < len(raw) else len(raw)])


edits = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3)


# -- field tables --------------------------------------------------------------------


@requires_c
@settings(max_examples=200)
@given(tables)
def test_encode_table_matches_python(table: Any) -> None:
    assert outcome(codec.encode_table, table) == outcome(codec.pure_encode_table, table)


@requires_c
@settings(max_examples=300)
@given(well_formed_tables, edits, st.integers(0, 3), st.binary(max_size=3))
def test_decode_table_matches_python_on_good_and_bad_bytes(
    table: Any, changes: list[tuple[int, int]], cut: int, prefix: bytes
) -> None:
    wire = codec.pure_encode_table(table)
    for data in (wire, mutate(wire, changes, cut)):
        buf = prefix + data + b"\xce"
        for b in (buf, bytearray(buf)):
            assert outcome(codec.decode_table, b, len(prefix)) == outcome(
                codec.pure_decode_table, b, len(prefix)
            )


@requires_c
@settings(max_examples=150)
@given(tables)
def test_decode_table_of_every_type_matches_python(table: Any) -> None:
    try:
        wire = codec.pure_encode_table(table)
    except ValueError:
        return
    assert outcome(codec.decode_table, wire, 0) == outcome(codec.pure_decode_table, wire, 0)


@requires_c
@given(st.binary(max_size=40), st.integers(0, 4))
def test_decode_table_on_random_bytes_matches_python(data: bytes, offset: int) -> None:
    assert outcome(codec.decode_table, data, offset) == outcome(
        codec.pure_decode_table, data, offset
    )


@requires_c
@pytest.mark.parametrize("levels", [80, 150])
def test_deep_nesting_falls_back_to_python(levels: int) -> None:
    # Beyond 64 levels the C decoder hands over to Python, which refuses more than
    # codec.MAX_NESTING_DEPTH: both paths must agree either way.
    table: dict[str, Any] = {"leaf": 1}
    for level in range(levels):
        table = {"t": table} if level % 2 else {"a": [table]}
    wire = codec.encode_table(table)
    assert wire == codec.pure_encode_table(table)
    assert outcome(codec.decode_table, wire, 0) == outcome(codec.pure_decode_table, wire, 0)


# -- properties ----------------------------------------------------------------------


def pure_decode(buf: Any, offset: int, end: int) -> spec.BasicProperties:
    decoded: spec.BasicProperties = _accel.PURE_PROPERTIES_DECODE.__func__(
        spec.BasicProperties, buf, offset, end
    )
    return decoded


@requires_c
@settings(max_examples=400)
@given(props_strategy(tables))
def test_properties_encode_matches_python(props: spec.BasicProperties) -> None:
    assert outcome(props.encode) == outcome(_accel.PURE_PROPERTIES_ENCODE, props)


@requires_c
@settings(max_examples=400)
@given(props_strategy(well_formed_tables), edits, st.integers(0, 3), st.binary(max_size=2))
def test_properties_decode_matches_python(
    props: spec.BasicProperties, changes: list[tuple[int, int]], cut: int, prefix: bytes
) -> None:
    try:
        wire = _accel.PURE_PROPERTIES_ENCODE(props)
    except (ValueError, OverflowError, Exception):
        return
    for data in (wire, mutate(wire, changes, cut)):
        buf = prefix + data + b"\xce\x00"
        for b in (buf, bytearray(buf)):
            args = (b, len(prefix), len(prefix) + len(data))
            assert outcome(spec.BasicProperties.decode, *args) == outcome(pure_decode, *args)


@requires_c
def test_the_c_methods_are_installed() -> None:
    assert type(spec.BasicProperties.__dict__["encode"]).__name__ == "method_descriptor"
    assert codec.decode_table is not codec.pure_decode_table
    assert channel_module._c_take_delivery is not None
    assert frames.encode_message is not frames.pure_encode_message
    assert frames.encode_content is not frames.pure_encode_content
    assert channel_module.Channel.publish is not _accel.PURE_CHANNEL_PUBLISH


@requires_c
def test_a_subclass_decodes_to_itself() -> None:
    class Mine(spec.BasicProperties):
        pass

    wire = spec.BasicProperties(content_type="a/b", priority=3).encode()
    decoded = Mine.decode(wire, 0, len(wire))
    assert type(decoded) is Mine and decoded.content_type == "a/b" and decoded.priority == 3


class Shouting(spec.BasicProperties):
    """A subclass whose ``content_type`` is a property: decoding sets it through it."""

    @property
    def content_type(self) -> str | None:  # type: ignore[override]
        return self.__dict__.get("_ct")

    @content_type.setter
    def content_type(self, value: str | None) -> None:
        self.__dict__["_ct"] = None if value is None else value.upper()


@requires_c
def test_decoding_sets_fields_as_the_python_decode_does() -> None:
    wire = spec.BasicProperties(content_type="a/b", correlation_id="1").encode()
    decoded = Shouting.decode(wire, 0, len(wire))
    pure = _accel.PURE_PROPERTIES_DECODE.__func__(Shouting, wire, 0, len(wire))
    assert decoded.content_type == pure.content_type == "A/B"
    assert vars(decoded) == vars(pure) == {"_ct": "A/B", "correlation_id": "1"}
    plain = spec.BasicProperties.decode(wire, 0, len(wire))
    assert list(vars(plain).items()) == list(vars(pure_decode(wire, 0, len(wire))).items())


# -- whole deliveries through the parser ------------------------------------------------


@contextlib.contextmanager
def whole_delivery_decoders(use_c: bool) -> Iterator[None]:
    """The C decoders of whole deliveries (per frame and per read) and of runs of
    publisher acks as they are, or off (``use_c`` False: the frame-by-frame path) for
    the duration."""
    saved = channel_module._c_take_delivery
    saved_read = connection_module._c_take_read
    saved_run = connection_module._c_take_deliveries
    saved_acks = connection_module._c_take_acks
    if not use_c:
        channel_module._c_take_delivery = None
        connection_module._c_take_read = None
        connection_module._c_take_deliveries = None
        connection_module._c_take_acks = None
    try:
        yield
    finally:
        channel_module._c_take_delivery = saved
        connection_module._c_take_read = saved_read
        connection_module._c_take_deliveries = saved_run
        connection_module._c_take_acks = saved_acks


def events_of(stream: bytes, chunk: int, use_c: bool) -> tuple[list[Any], bytes]:
    with whole_delivery_decoders(use_c):
        conn = open_connection(server_frame_max=4096)
        conn.open_channel()
        conn.receive_data(F.channel_open_ok(1), 0.0)
        conn.data_to_send()
        events: list[Event] = []
        for at in range(0, len(stream), chunk):
            events += conn.receive_data(stream[at : at + chunk], 0.0)
        return [describe(e) for e in events], conn.data_to_send()


def describe(event: Event) -> Any:
    slots = [s for cls in type(event).__mro__ for s in getattr(cls, "__slots__", ())]
    return (type(event).__name__, [(s, typed(getattr(event, s, None))) for s in sorted(slots)])


messages = st.lists(
    st.tuples(
        st.text(max_size=5),
        st.integers(1, 2**64 - 1),
        st.booleans(),
        st.text(max_size=5),
        st.binary(max_size=5000),
        props_strategy(well_formed_tables),
    ),
    min_size=1,
    max_size=4,
)


@requires_c
@settings(max_examples=200, deadline=None)
@given(messages, edits, st.sampled_from([1 << 20, 7, 4096]))
def test_deliveries_decode_alike_on_both_paths(
    msgs: list[Any], changes: list[tuple[int, int]], chunk: int
) -> None:
    parts = []
    for ctag, dtag, redelivered, rkey, body, props in msgs:
        try:
            _accel.PURE_PROPERTIES_ENCODE(props)
        except Exception:
            props = spec.BasicProperties()
        parts.append(F.deliver(1, ctag, dtag, body, props, "ex", rkey, redelivered, frame_max=4096))
    stream = b"".join(parts)
    for data in (stream, mutate(stream, changes, 0)):
        assert events_of(data, chunk, True) == events_of(data, chunk, False)


def events_of_channels(stream: bytes, use_c: bool, max_size: int) -> tuple[list[Any], bytes, str]:
    """events_of with channels 1 and 2 open and a ``max_message_size``, the stream in one read."""
    with whole_delivery_decoders(use_c):
        conn = open_connection(server_frame_max=4096, max_message_size=max_size)
        for channel_id in (1, 2):
            conn.open_channel()
            conn.receive_data(F.channel_open_ok(channel_id), 0.0)
        conn.data_to_send()
        events = [describe(e) for e in conn.receive_data(stream, 0.0)]
        return events, conn.data_to_send(), conn.state.value


@requires_c
@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([1, 2]),
            st.integers(1, 2**64 - 1),
            st.binary(max_size=300),
            st.sampled_from(["delivery", "heartbeat", "ack", "header-first", "two-bodies"]),
        ),
        min_size=1,
        max_size=8,
    ),
    edits,
    st.sampled_from([1 << 27, 100]),
)
def test_runs_of_deliveries_decode_alike_on_both_paths(
    items: list[tuple[int, int, bytes, str]], changes: list[tuple[int, int]], max_size: int
) -> None:
    """take_deliveries (the whole deliveries that follow one another on a channel, in one
    C call) against the frame loop, with deliveries on two channels and other frames
    between and inside the runs: the same events, bytes sent back and state."""
    parts = []
    for channel_id, dtag, body, kind in items:
        one = F.deliver(channel_id, "c", dtag, body, spec.BasicProperties(), "ex", "rk",
                        frame_max=4096)  # fmt: skip
        if kind == "heartbeat":
            one += F.heartbeat()
        elif kind == "ack":
            one += F.ack(channel_id, dtag)
        elif kind == "header-first":  # a Deliver whose content comes in the next read
            one = F.method(channel_id, spec.BasicDeliver(consumer_tag="c", delivery_tag=dtag))
        elif kind == "two-bodies" and len(body) > 1:
            one = F.method(channel_id, spec.BasicDeliver(consumer_tag="c", delivery_tag=dtag))
            one += F.header(channel_id, len(body), spec.BasicProperties())
            one += F.body(channel_id, body[:1]) + F.body(channel_id, body[1:])
        parts.append(one)
    stream = b"".join(parts)
    for data in (stream, mutate(stream, changes, 0)):
        assert events_of_channels(data, True, max_size) == events_of_channels(data, False, max_size)


@requires_c
def test_the_decoder_reuses_a_repeated_name_and_decodes_a_changed_one() -> None:
    """The C decoder keeps the last consumer tag, exchange and routing key it decoded and
    hands the same str out again for the same octets: names that change at the same
    length, non-ASCII ones, and a delivery whose name is not UTF-8 (the frame loop's
    error) between equal ones decode as the pure path decodes them."""
    names = [
        ("c1", "ex", "rk"),
        ("c1", "ex", "rk"),
        ("c2", "ey", "rl"),
        ("c2", "ey", "rl"),
        ("é", "", "ü"),
        ("c1", "ex", "rk"),
    ]
    stream = b"".join(
        F.deliver(1, ctag, n, b"body", spec.BasicProperties(), exchange, rkey, frame_max=4096)
        for n, (ctag, exchange, rkey) in enumerate(names, 1)
    )
    with whole_delivery_decoders(True):
        conn = open_connection(server_frame_max=4096)
        conn.open_channel()
        conn.receive_data(F.channel_open_ok(1), 0.0)
        c_events = conn.receive_data(stream, 0.0)
    got = [(e.consumer_tag, e.exchange, e.routing_key) for e in c_events]  # type: ignore[attr-defined]
    assert got == names
    assert c_events[0].consumer_tag is c_events[1].consumer_tag  # type: ignore[attr-defined]
    assert c_events[2].routing_key is c_events[3].routing_key  # type: ignore[attr-defined]
    for chunk in (1 << 20, 7):
        assert events_of(stream, chunk, True) == events_of(stream, chunk, False)
    bad = F.deliver(1, "c1", 9, b"x", spec.BasicProperties(), "ex", "rk", frame_max=4096)
    bad = bad.replace(b"\x02c1", b"\x02\xff\xfe", 1)  # a consumer tag that is not UTF-8
    assert bad != F.deliver(1, "c1", 9, b"x", spec.BasicProperties(), "ex", "rk", frame_max=4096)
    data = stream + bad + stream
    assert events_of(data, 1 << 20, True) == events_of(data, 1 << 20, False)


@requires_c
def test_take_deliveries_takes_the_run_of_whole_deliveries_on_its_channel() -> None:
    def one(channel_id: int, tag: int, body: bytes = b"xy") -> bytes:
        return F.deliver(channel_id, "c", tag, body, spec.BasicProperties(), "ex", "rk")

    def take(data: bytes, limit: int = 4096) -> tuple[int | None, list[int]]:
        events: list[Any] = []
        end = data.index(b"\xce")
        pos = C.take_deliveries(data, 11, end, 1, limit, Delivery, events)
        return pos, [e.delivery_tag for e in events]

    run = one(1, 1) + one(1, 2) + one(1, 3)
    assert take(run) == (len(run), [1, 2, 3])
    assert take(run + F.heartbeat()) == (len(run), [1, 2, 3])  # stops at another frame
    assert take(run + one(2, 4)) == (len(run), [1, 2, 3])  # and at another channel
    assert take(run + one(1, 4)[:-1]) == (len(run), [1, 2, 3])  # and at a partial one
    assert take(run + one(1, 4, b"z" * 50), limit=40) == (len(run), [1, 2, 3])  # over the limit
    assert take(one(1, 1)[:-1]) == (None, [])  # the first not whole: nothing taken
    with pytest.raises(TypeError):
        C.take_deliveries(run, 11, run.index(b"\xce"), 1, 4096, Delivery, ())


# -- runs of publisher acks through the parser ---------------------------------------------


def ack_events_of(stream: bytes, use_c: bool, chunk: int) -> tuple[list[Any], bytes, str]:
    """The events, the bytes sent back and the connection's state after ``stream``, with
    channel 1 in confirm mode and 20 publishes sent on it, channel 2 in confirm mode
    with 3, and channel 3 not in confirm mode."""
    with whole_delivery_decoders(use_c):
        conn = open_connection(server_frame_max=4096)
        for channel_id, publishes in ((1, 20), (2, 3), (3, 0)):
            channel = conn.open_channel()
            conn.receive_data(F.channel_open_ok(channel_id), 0.0)
            if publishes:
                channel.send_method(spec.ConfirmSelect())
                conn.receive_data(F.confirm_select_ok(channel_id), 0.0)
            for _ in range(publishes):
                channel.publish("", "q", b"m")
        conn.data_to_send()
        events: list[Event] = []
        for at in range(0, len(stream), chunk):
            events += conn.receive_data(stream[at : at + chunk], 0.0)
        return [describe(e) for e in events], conn.data_to_send(), conn.state.value


@requires_c
@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([1, 1, 1, 2, 3]),
            st.sampled_from([0, 1, 2, 3, 4, 5, 12, 19, 20, 21, 2**64 - 1]),
            st.booleans(),
            st.sampled_from(["ack", "ack", "ack", "nack", "heartbeat", "delivery"]),
        ),
        min_size=1,
        max_size=12,
    ),
    edits,
    st.sampled_from([1 << 20, 21, 5]),
)
def test_runs_of_acks_parse_alike_on_both_paths(
    items: list[tuple[int, int, bool, str]], changes: list[tuple[int, int]], chunk: int
) -> None:
    """take_acks (the acks that follow one another on a channel, in one C call) against
    the frame loop: acks on three channels (one not in confirm mode), of tags sent and
    never sent, with and without ``multiple``, between other frames, mutated, and read
    in pieces: the same events, bytes sent back (a Connection.Close with its reply code)
    and state."""
    parts = []
    for channel_id, tag, multiple, kind in items:
        if kind == "ack":
            parts.append(F.ack(channel_id, tag, multiple))
        elif kind == "nack":
            parts.append(F.nack(channel_id, tag, multiple))
        elif kind == "heartbeat":
            parts.append(F.heartbeat())
        else:
            parts.append(F.deliver(channel_id, "c", tag or 1, b"x", spec.BasicProperties()))
    stream = b"".join(parts)
    for data in (stream, mutate(stream, changes, 0)):
        assert ack_events_of(data, True, chunk) == ack_events_of(data, False, chunk)


@requires_c
def test_take_acks_takes_the_run_of_acks_on_its_channel() -> None:
    def take(data: bytes, next_seq: int = 10, cls: Any = PublishAcked) -> tuple[Any, list[Any]]:
        events: list[Any] = []
        pos = C.take_acks(data, 11, 20, 1, next_seq, 4096, cls, events)
        return pos, [(type(e), e.channel_id, e.delivery_tag, e.multiple) for e in events]

    run = F.ack(1, 1) + F.ack(1, 3, True) + F.ack(1, 4)
    taken = [(PublishAcked, 1, 1, False), (PublishAcked, 1, 3, True), (PublishAcked, 1, 4, False)]
    assert take(run) == (len(run), taken)
    assert take(run + F.heartbeat()) == (len(run), taken)  # stops at another frame
    assert take(run + F.ack(2, 5)) == (len(run), taken)  # and at another channel
    assert take(run + F.nack(1, 5)) == (len(run), taken)  # and at another method
    assert take(run + F.ack(1, 5)[:-1]) == (len(run), taken)  # and at a partial one
    assert take(run + F.ack(1, 10)) == (len(run), taken)  # and at a tag never sent
    assert take(run + F.ack(1, 0)) == (len(run), taken)  # and at 0 without multiple
    assert take(run + F.ack(1, 0, True))[0] == len(run) + 21  # 0 with multiple: all
    assert take(run, next_seq=0) == (None, [])  # not in confirm mode: the loop's error
    assert take(F.ack(1, 10) + run, next_seq=10) == (None, [])  # the first never sent
    assert take(run, next_seq=2**70) == (None, [])  # a number it does not compare
    bad_end = run[:20] + b"\x00" + run[21:]
    assert take(bad_end) == (len(run), taken)  # the first frame's end octet: the caller's...
    bad_end = run[:41] + b"\x00" + run[42:]
    assert take(bad_end) == (21, taken[:1])  # ...the next ones' are its own to check

    class Louder(PublishAcked):
        __slots__ = ()

    assert take(run, cls=Louder) == (len(run), [(Louder,) + t[1:] for t in taken])
    with pytest.raises(TypeError):
        C.take_acks(run, 11, 20, 1, 10, 4096, PublishAcked, ())


@requires_c
def test_take_acks_calls_publish_acked_once_its_init_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """take_acks stores PublishAcked's slots itself only while its __init__ is the one it
    was installed with: a replaced one runs."""
    original = PublishAcked.__init__
    calls: list[int] = []

    def counting_init(self: PublishAcked, channel_id: int, tag: int, multiple: bool) -> None:
        calls.append(tag)
        original(self, channel_id, tag, multiple)

    run = F.ack(1, 1) + F.ack(1, 2, True)
    events: list[Any] = []
    C.take_acks(run, 11, 20, 1, 5, 4096, PublishAcked, events)
    assert calls == []
    monkeypatch.setattr(PublishAcked, "__init__", counting_init)
    C.take_acks(run, 11, 20, 1, 5, 4096, PublishAcked, events)
    assert calls == [1, 2]
    assert [(e.delivery_tag, e.multiple) for e in events] == [(1, False), (2, True)] * 2


class OtherProperties(spec.BasicProperties):
    """A subclass: its own encode is what both paths must call."""

    def encode(self) -> bytes:
        return b"\x10\x00\x02"  # delivery_mode=2, whatever the fields say


publish_bodies = st.one_of(
    st.binary(max_size=300),
    st.integers(0, 3).map(lambda k: b"b" * (4096 - 8 + k - 1)),  # around one frame's room
    st.integers(1, 3).map(lambda k: b"c" * (300 * k)),
)


@requires_c
@settings(max_examples=400, deadline=None)
@given(
    st.integers(-1, 65536),
    st.binary(max_size=40),
    st.one_of(publish_bodies, publish_bodies.map(bytearray), publish_bodies.map(memoryview)),
    st.one_of(
        st.none(),
        props_strategy(tables),
        st.builds(OtherProperties, content_type=st.just("a")),
    ),
    st.one_of(st.sampled_from([4096, 131072, 21, 22, 23, 40, 8, 0, -1, 2**32 + 9]), st.integers()),
)
def test_publish_frames_encode_alike_on_both_paths(
    channel_id: int, payload: bytes, body: Any, props: Any, frame_max: int
) -> None:
    """Basic.Publish's frames (C: one allocation) against the Python reference: the same
    bytes, or the same exception, whatever the body type, properties or frame_max."""
    if frame_max > 2**40:
        frame_max = 2**40  # a body is never split into more chunks than it has bytes
    head = frames.method_frame_head(1, payload)
    assert outcome(frames.encode_message, head, channel_id, body, props, frame_max) == outcome(
        frames.pure_encode_message, head, channel_id, body, props, frame_max
    )
    assert outcome(frames.encode_content, channel_id, payload, body, props, frame_max) == outcome(
        frames.pure_encode_content, channel_id, payload, body, props, frame_max
    )


@requires_c
def test_publish_frames_split_a_large_body_alike() -> None:
    head = frames.method_frame_head(7, frames.encode_publish_method("ex", "rk", True, False))
    props = spec.BasicProperties(content_type="text/plain", delivery_mode=2)
    for size in (0, 1, 4087, 4088, 4089, 3 * 4088, 3 * 4088 + 1, 1 << 20):
        body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        wire = frames.encode_message(head, 7, body, props, 4096)
        assert wire == frames.pure_encode_message(head, 7, body, props, 4096)
        assert len(wire) == len(head) + 1 + 7 + 12 + len(props.encode()) + 1 + (
            8 * -(-size // 4088) + size
        )


# A step of the channel-publish comparison: a publish (its arguments, positional or as
# keywords) or something that changes what the next publish meets.
publish_steps = st.one_of(
    st.tuples(
        st.just("publish"),
        st.sampled_from(["", "ex", "amq.direct"]),
        st.sampled_from(["", "q", "rk" * 20]),
        st.one_of(st.binary(max_size=40), st.binary(max_size=40).map(bytearray)),
        st.one_of(
            st.none(),
            st.builds(spec.BasicProperties, correlation_id=st.text(max_size=5)),
            st.builds(OtherProperties, content_type=st.just("a")),
        ),
        st.one_of(st.booleans(), st.sampled_from([0, 1, None])),
        st.booleans(),
        st.sampled_from(["positional", "keywords", "three"]),
    ),
    st.tuples(
        st.sampled_from(
            ["confirm", "declare", "declare_ok", "close", "frame_max", "connection_close"]
        )
    ),
)


def _publish_step(publish: Callable[..., Any], ch: Any, step: tuple[Any, ...]) -> Any:
    _, exchange, routing_key, body, props, mandatory, immediate, how = step
    if how == "three":
        return outcome(publish, ch, exchange, routing_key, body)
    if how == "keywords":
        return outcome(
            lambda: publish(
                ch,
                exchange,
                routing_key=routing_key,
                body=body,
                properties=props,
                mandatory=mandatory,
                immediate=immediate,
            )
        )
    return outcome(publish, ch, exchange, routing_key, body, props, mandatory, immediate)


def open_core_channel() -> tuple[Any, Any]:
    """A core connection with one open channel, nothing left to send."""
    conn = open_connection()
    ch = conn.open_channel()
    conn.receive_data(F.channel_open_ok(ch.channel_id), 0.0)
    conn.data_to_send()
    return conn, ch


def channel_step(conn: Any, ch: Any, kind: str) -> Any:
    """The steps the C-against-Python method tests share: a request put in flight, its
    reply, the channel's close, and (anything else) the connection's."""
    if kind == "declare":
        return outcome(ch.send_method, spec.QueueDeclare(queue="q"))
    if kind == "declare_ok":
        data = F.method(ch.channel_id, spec.QueueDeclareOk("q", 0, 0))
        return ("events", len(conn.receive_data(data, 0.0)))
    if kind == "close":
        return outcome(ch.close)
    return outcome(conn.close)


@requires_c
@settings(max_examples=300, deadline=None)
@given(st.lists(publish_steps, max_size=12))
def test_channel_publish_does_what_the_python_method_does(steps: list[tuple[Any, ...]]) -> None:
    """The C Channel.publish against the Python method, on two connections fed the same
    steps (states, a request in flight, confirm mode, the cache, keywords, odd types):
    the same results or exceptions, the same bytes queued, the same state after."""
    sides = []
    for publish in (channel_module.Channel.publish, _accel.PURE_CHANNEL_PUBLISH):
        conn, ch = open_core_channel()
        results = []
        for step in steps:
            kind = step[0]
            if kind == "publish":
                results.append(_publish_step(publish, ch, step))
            elif kind == "confirm":
                results.append(outcome(ch.send_method, spec.ConfirmSelect()))
            elif kind == "frame_max":
                conn.frame_max = 4096
            else:
                results.append(channel_step(conn, ch, kind))
        sides.append((results, conn.data_to_send(), ch.next_publish_seq, ch.state, len(ch._queue)))
    assert sides[0] == sides[1]


@requires_c
def test_the_c_publish_remembers_a_head_per_channel() -> None:
    """The C publish remembers the last method head it found in a channel's cache for the
    same exchange and routing key objects: two channels publishing to the same names in
    turn (each turn ending and the next starting with the same publish), with a cleared
    cache, mandatory and an equal but other string between, queue what the Python
    method queues, each frame on its own channel."""
    exchange, routing_key = "ex", "rk" * 3
    turn = [(exchange, False), (exchange, False), (exchange, True), ("", False), (exchange, False)]
    sides = []
    for publish in (channel_module.Channel.publish, _accel.PURE_CHANNEL_PUBLISH):
        conn = open_connection()
        channels = [conn.open_channel(), conn.open_channel()]
        for ch in channels:
            conn.receive_data(F.channel_open_ok(ch.channel_id), 0.0)
        conn.data_to_send()
        for i in range(6):
            ch = channels[i % 2]
            if i == 4:
                ch._publish_cache.clear()
            for j, (name, mandatory) in enumerate(turn):
                name = name or "".join(["e", "x"])  # equal to exchange, another object
                publish(ch, name, routing_key, b"%d.%d" % (i, j), None, mandatory)
        sides.append(conn.data_to_send())
    assert sides[0] == sides[1]
    expected = b"".join(
        frames.encode_content(
            1 + i % 2,
            frames.encode_publish_method(exchange, routing_key, mandatory, False),
            b"%d.%d" % (i, j),
            None,
            131072,
        )
        for i in range(6)
        for j, (_, mandatory) in enumerate(turn)
    )
    assert sides[0] == expected


ack_steps = st.one_of(
    st.tuples(
        st.just("ack"),
        st.one_of(
            st.integers(min_value=0, max_value=2**64 - 1),
            st.sampled_from([-1, 2**64, 2**70, 1.0, "7", None, True]),
        ),
        st.sampled_from([None, False, True, 0, 1, 2, "yes"]),
    ),
    st.tuples(st.sampled_from(["declare", "declare_ok", "close", "close_connection"])),
)


@requires_c
@settings(max_examples=300, deadline=None)
@given(st.lists(ack_steps, max_size=10))
def test_channel_send_ack_does_what_the_python_method_does(steps: list[tuple[Any, ...]]) -> None:
    """The C Channel.send_ack against the Python method, on two connections fed the same
    steps (a request in flight, the channel or the connection closing, tags out of range
    or of other types, a multiple that is not a bool): the same results or exceptions,
    the same bytes queued, the same state after."""
    sides = []
    for send_ack in (channel_module.Channel.send_ack, _accel.PURE_CHANNEL_SEND_ACK):
        conn, ch = open_core_channel()
        results = []
        for step in steps:
            kind = step[0]
            if kind == "ack":
                _, tag, multiple = step
                if multiple is None:
                    results.append(outcome(send_ack, ch, tag))
                else:
                    results.append(outcome(send_ack, ch, tag, multiple))
            else:
                results.append(channel_step(conn, ch, kind))
        sides.append((results, conn.data_to_send(), ch.state, len(ch._queue)))
    assert sides[0] == sides[1]


@requires_c
def test_the_c_send_ack_writes_the_acks_frame() -> None:
    conn, ch = open_core_channel()
    assert channel_module.Channel.send_ack is not _accel.PURE_CHANNEL_SEND_ACK
    assert ch.send_ack(2**64 - 1, True) and ch.send_ack(5)
    expected = frames.encode_method_frame(
        ch.channel_id, spec.BasicAck(delivery_tag=2**64 - 1, multiple=True)
    ) + frames.encode_method_frame(ch.channel_id, spec.BasicAck(delivery_tag=5, multiple=False))
    assert conn.data_to_send() == expected


# -- the switches --------------------------------------------------------------------


def probe(env: dict[str, str]) -> str:
    code = (
        "from txamqp091.core import _accel, spec; "
        "print(_accel.speedups is not None, type(spec.BasicProperties.__dict__['decode']).__name__)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return run.stdout.strip()


def test_no_extensions_forces_pure_python() -> None:
    env = {"TXAMQP091_NO_EXTENSIONS": "1", "TXAMQP091_REQUIRE_EXTENSIONS": ""}
    assert probe(env) == "False classmethod"


@requires_c
def test_the_extension_is_used_by_default() -> None:
    assert probe({"TXAMQP091_NO_EXTENSIONS": ""}) == "True classmethod_descriptor"


def test_require_extensions_fails_when_the_extension_is_missing(tmp_path: Any) -> None:
    # A copy of the package without the built module: importing it must fail loudly.
    import shutil

    import txamqp091

    src = os.path.dirname(txamqp091.__file__)
    shutil.copytree(src, tmp_path / "txamqp091", ignore=shutil.ignore_patterns("*.so", "*.pyd"))
    code = "import txamqp091.core.spec"
    env = {**os.environ, "TXAMQP091_REQUIRE_EXTENSIONS": "1", "TXAMQP091_NO_EXTENSIONS": ""}
    env["PYTHONPATH"] = str(tmp_path)
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode != 0
    assert "TXAMQP091_REQUIRE_EXTENSIONS" in run.stderr
    env["TXAMQP091_REQUIRE_EXTENSIONS"] = ""
    subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, check=True)


# -- plain_properties: basic_publish's fast accept ------------------------------------


def _plain_by_rule(props: Any) -> bool:
    """What plain_properties promises, written out: exactly BasicProperties, no
    headers/priority/timestamp, short str fields of at most 63 characters, a delivery
    mode of int 1 or 2."""
    if type(props) is not spec.BasicProperties:
        return False
    for name in props.FIELDS:
        v = getattr(props, name)
        if v is None:
            continue
        if name == "delivery_mode":
            if type(v) is not int or v not in (1, 2):
                return False
        elif name in ("headers", "priority", "timestamp"):
            return False
        elif type(v) is not str or len(v) > 63:
            return False
    return True


_loose = st.one_of(
    st.none(),
    st.text(max_size=70),
    st.text(alphabet="\u00e9\U0001f600", min_size=60, max_size=66),  # multi-byte UTF-8
    st.binary(max_size=4),
    st.integers(-3, 300),
    st.booleans(),
)


@requires_c
@settings(max_examples=500)
@given(
    st.fixed_dictionaries(
        {},
        optional={name: _loose for name in spec.BasicProperties.FIELDS},
    )
)
def test_plain_properties_only_says_plain_when_validation_accepts(fields: dict[str, Any]) -> None:
    from txamqp091 import validation

    props = spec.BasicProperties()
    for name, value in fields.items():
        setattr(props, name, value)
    plain = C.plain_properties(props)
    assert plain == _plain_by_rule(props)
    if plain:
        validation.properties(props)  # never raises for what the fast accept lets through


@requires_c
def test_plain_properties_edge_cases() -> None:
    B = spec.BasicProperties
    assert C.plain_properties(B(reply_to="amq.gen-x", correlation_id="42"))
    assert C.plain_properties(B())
    assert C.plain_properties(B(delivery_mode=2, content_type="x" * 63))
    assert not C.plain_properties(B(content_type="x" * 64))
    assert not C.plain_properties(B(delivery_mode=True))
    assert not C.plain_properties(B(priority=0))
    assert not C.plain_properties(B(headers={}))
    assert not C.plain_properties(B(timestamp=0))
    assert not C.plain_properties(None)
    assert not C.plain_properties(object())

    class Sub(B):
        pass

    assert not C.plain_properties(Sub())
    props = B()
    setattr(props, "".join(["reply", "_to"]), "x" * 100)  # a key that is not interned
    assert not C.plain_properties(props)
    props = B(correlation_id="1")
    props.note = "x" * 300  # type: ignore[attr-defined]  # not a field: not validated
    assert C.plain_properties(props)
    assert _accel.plain_properties is C.plain_properties


@requires_c
def test_plain_properties_reads_a_field_the_class_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    """A field an instance does not store reads as the class's own: changed on the class
    (to a value validation refuses), the fast accept must leave it to validation."""
    from txamqp091 import validation

    props = spec.BasicProperties(reply_to="q")
    assert C.plain_properties(props)
    monkeypatch.setattr(spec.BasicProperties, "priority", 999)
    assert not C.plain_properties(props)
    with pytest.raises(ValueError, match="priority"):
        validation.properties(props)


def test_plain_properties_without_the_accelerator_is_never_plain() -> None:
    assert not _accel._never_plain(spec.BasicProperties())


# -- a read that is one whole delivery (take_read) ------------------------------------

#: What the connection has seen before the read: nothing more than an open channel 1,
#: a Deliver whose content has not come yet, a Deliver and its header whose body has
#: not come yet, a close it asked for, a small max_message_size, channel 1 never opened.
READ_SETUPS = ["open", "expect-header", "expect-body", "closing", "small-max", "unopened"]


def one_read(setup: str, data: bytes, use_c: bool) -> tuple[list[Any], bytes, str]:
    with whole_delivery_decoders(use_c):
        max_size = 20 if setup == "small-max" else 128 * 1024 * 1024
        conn = open_connection(server_frame_max=4096, max_message_size=max_size)
        if setup != "unopened":
            conn.open_channel()
            conn.receive_data(F.channel_open_ok(1), 0.0)
        if setup in ("expect-header", "expect-body"):
            conn.receive_data(F.method(1, spec.BasicDeliver(consumer_tag="c", delivery_tag=1)), 0.0)
        if setup == "expect-body":
            conn.receive_data(F.header(1, 5), 0.0)
        if setup == "closing":
            conn.close()
        conn.data_to_send()
        events = [describe(e) for e in conn.receive_data(data, 0.0)]
        return events, conn.data_to_send(), conn.state.value


@requires_c
@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(READ_SETUPS),
    st.integers(1, 3),
    st.text(max_size=5),
    st.integers(1, 2**64 - 1),
    st.binary(max_size=5000),
    props_strategy(well_formed_tables),
    edits,
    st.integers(0, 3),
    st.binary(max_size=9),
)
def test_a_read_of_one_delivery_decodes_alike_on_both_paths(
    setup: str,
    channel_id: int,
    ctag: str,
    dtag: int,
    body: bytes,
    props: spec.BasicProperties,
    changes: list[tuple[int, int]],
    cut: int,
    tail: bytes,
) -> None:
    """take_read (one C call for a read that is exactly one delivery) against the frame
    loop: the same events, the same bytes sent back (a Close for a bad frame), the
    same state, for good, mutated, cut short and extended reads, whatever the channel
    and connection are doing."""
    try:
        _accel.PURE_PROPERTIES_ENCODE(props)
    except Exception:
        props = spec.BasicProperties()
    data = F.deliver(channel_id, ctag, dtag, body, props, "ex", "rk", frame_max=4096)
    for read in (data, mutate(data, changes, cut), data + tail, data[: len(data) - 1 - cut]):
        assert one_read(setup, read, True) == one_read(setup, read, False)


@requires_c
def test_take_read_takes_exactly_one_whole_delivery() -> None:
    one = F.deliver(1, "c", 7, b"body", spec.BasicProperties(correlation_id="1"))
    channel_id, message = C.take_read(one, 4096, 1 << 27, Delivery)
    assert channel_id == 1 and message.body == b"body" and message.delivery_tag == 7
    assert message.properties.correlation_id == "1" and message.channel_id == 1
    empty = F.deliver(2, "c", 1, b"")
    assert C.take_read(empty, 4096, 1 << 27, Delivery)[1].body == b""
    assert C.take_read(one + F.heartbeat(), 4096, 1 << 27, Delivery) is None  # more follows
    assert C.take_read(one[:-1], 4096, 1 << 27, Delivery) is None  # cut short
    assert C.take_read(one, 4096, 3, Delivery) is None  # body over max_message_size
    assert C.take_read(one, 20, 1 << 27, Delivery) is None  # a frame over frame_max
    assert C.take_read(bytearray(one), 4096, 1 << 27, Delivery) is None  # bytes only
    two_bodies = F.deliver(1, "c", 7, b"x" * 100, frame_max=60)
    assert C.take_read(two_bodies, 4096, 1 << 27, Delivery) is None
    on_zero = F.frame(1, 0, one[7 : 7 + int.from_bytes(one[3:7], "big")])
    assert C.take_read(on_zero + one[one.index(b"\xce") + 1 :], 4096, 1 << 27, Delivery) is None
    assert C.take_read(F.method(1, spec.BasicAck(delivery_tag=1)), 4096, 1 << 27, Delivery) is None


@requires_c
def test_take_read_refuses_a_backlog_without_decoding_its_first_delivery() -> None:
    """A read of several deliveries (a consumer's backlog) is the frame loop's, which
    decodes each once: take_read tells it from the frame sizes, before building any."""
    built: list[int] = []

    class Counted(Delivery):  # not registered: take_read calls it for each delivery
        def __init__(self, *args: Any) -> None:
            built.append(1)
            Delivery.__init__(self, *args)

    one = F.deliver(1, "c", 7, b"body", spec.BasicProperties(correlation_id="1"))
    empty = F.deliver(1, "c", 8, b"")
    for backlog in (one + one, one + empty, empty + one, empty + empty, one + F.heartbeat()):
        assert C.take_read(backlog, 4096, 1 << 27, Counted) is None
    assert built == []
    assert C.take_read(one, 4096, 1 << 27, Counted)[1].delivery_tag == 7
    assert C.take_read(empty, 4096, 1 << 27, Counted)[1].delivery_tag == 8
    assert built == [1, 1]


# -- deliveries built by the decoder (register_delivery_class) -------------------------


@dataclasses.dataclass(slots=True, eq=False)
class WithPostInit(Delivery):
    seen: list[str] | None = None

    def __post_init__(self) -> None:
        self.seen = ["post_init"]


@dataclasses.dataclass(slots=True, eq=False)
class WithFactory(Delivery):
    seen: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(eq=False)
class WithDict(Delivery):
    note: str = "n"


@dataclasses.dataclass(slots=True, eq=False)
class OwnInit(Delivery):
    note: str = "n"

    def __init__(self, *args: Any) -> None:
        Delivery.__init__(self, *args)
        self.note = "own"


@dataclasses.dataclass(slots=True, eq=False)
class WithInitVar(Delivery):
    extra: dataclasses.InitVar[int] = 0


@dataclasses.dataclass(slots=True, eq=False)
class WithKeywordOnly(Delivery):
    note: str = dataclasses.field(default="n", kw_only=True)


@dataclasses.dataclass(slots=True, eq=False)
class WithDefaults(Delivery):
    note: str = "n"
    count: int | None = None


@requires_c
def test_which_delivery_classes_the_decoder_builds_itself() -> None:
    from txamqp091.message import Message, ReturnedMessage

    for cls in (Delivery, Message, ReturnedMessage, WithDefaults):
        assert _accel.register_delivery_class(cls), cls
    for cls in (WithPostInit, WithFactory, WithDict, OwnInit, WithInitVar, WithKeywordOnly, int):
        assert not _accel.register_delivery_class(cls), cls


@requires_c
@pytest.mark.parametrize(
    "name",
    [
        "Delivery",
        "Message",
        "ReturnedMessage",
        "WithDefaults",
        "WithPostInit",
        "WithFactory",
        "WithDict",
        "OwnInit",
    ],
)
def test_a_delivery_built_by_the_decoder_is_what_its_class_makes(name: str) -> None:
    """Registered or not, the instance take_read returns is the one ``cls(*fields)``
    makes: same type, same value in every slot (the defaults included)."""
    from txamqp091 import message

    cls = getattr(message, name, None) or globals().get(name) or Delivery
    _accel.register_delivery_class(cls)
    props = spec.BasicProperties(correlation_id="7", headers={"a": 1})
    data = F.deliver(3, "ctag", 2**63, b"body", props, "ex", "rk", redelivered=True)
    channel_id, built = C.take_read(data, 4096, 1 << 27, cls)
    called = cls(3, "ctag", 2**63, True, "ex", "rk", props, b"body")
    assert channel_id == 3 and type(built) is type(called)
    assert describe(built) == describe(called)
    if cls is WithPostInit:
        assert built.seen == ["post_init"]
    if cls is WithFactory:
        assert built.seen == [] and built.seen is not C.take_read(data, 4096, 1 << 27, cls)[1].seen


@requires_c
@pytest.mark.parametrize("decoded", [False, True])
def test_the_c_encoder_sees_fields_as_attribute_lookup_does(
    decoded: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The C encoder reads an exact BasicProperties' instance dict, and the class's own
    None for a field the instance does not set (constructed or decoded, an instance
    stores only the fields it carries): a class attribute that is not None (changed by
    someone) must still be what it encodes, and once restored, no longer."""
    props = spec.BasicProperties(correlation_id="1", reply_to="r")
    if decoded:
        wire = props.encode()
        props = spec.BasicProperties.decode(wire, 0, len(wire))
    assert props.encode() == _accel.PURE_PROPERTIES_ENCODE(props)
    before = props.encode()
    with monkeypatch.context() as patched:
        patched.setattr(spec.BasicProperties, "app_id", "from-the-class")
        assert props.app_id == "from-the-class"
        assert props.encode() == _accel.PURE_PROPERTIES_ENCODE(props) != before
    assert props.encode() == _accel.PURE_PROPERTIES_ENCODE(props) == before


@requires_c
def test_the_c_encoder_reads_every_way_a_field_is_stored() -> None:
    """The encoder's one pass over the instance dict (the fields it holds, by their
    interned names) against the attribute lookups of the pure encode, for a dict that
    pass cannot read alone: an attribute that is not a field, a field stored under a
    name built at run time, a field set back to None, one deleted."""
    P = spec.BasicProperties

    def same(props: spec.BasicProperties) -> None:
        assert outcome(props.encode) == outcome(_accel.PURE_PROPERTIES_ENCODE, props)

    props = P(correlation_id="1", reply_to="r", delivery_mode=2)
    same(props)
    props.something_else = "not a field"  # type: ignore[attr-defined]
    same(props)
    props = P(correlation_id="1")
    stored = vars(props)
    stored[1] = "a key that is not a name"  # the dict is no longer split: keys as given
    stored[fresh("app_id")] = "by its value"
    assert [k for k in stored if k == "app_id"][0] is not sys.intern("app_id")
    assert props.app_id == "by its value"
    same(props)
    props = P(correlation_id="1", headers={"a": 1}, timestamp=5)
    props.headers = None
    del props.timestamp
    assert props.encode() == P(correlation_id="1").encode()
    same(props)
    same(P())


# -- construction: BasicProperties(**fields) -------------------------------------------


def pure_construct(cls: type, *args: Any, **kwargs: Any) -> Any:
    """What calling ``cls`` did before the C construction: the Python ``__init__``."""
    obj = object.__new__(cls)
    _accel.PURE_PROPERTIES_INIT(obj, *args, **kwargs)
    return obj


def built(make: Callable[[], Any]) -> tuple[str, Any]:
    """A comparable construction: the instance's ``vars()`` (in order), repr and
    encoding, or the exception."""
    try:
        obj = make()
    except Exception as exc:
        return "raised", (type(exc).__name__, str(exc))
    return "ok", (
        type(obj).__name__,
        [(k, typed(v)) for k, v in vars(obj).items()],
        repr(obj),
        outcome(obj.encode),
    )


def fresh(name: str) -> str:
    """``name`` as a string that is not the interned one (a name built at run time)."""
    return "".join(list(name))


_FIELDS = spec.BasicProperties.FIELDS
_field_values = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.integers(-3, 2**64),
    st.booleans(),
    tables,
    st.builds(object),
)
_keywords = st.dictionaries(
    st.one_of(
        st.sampled_from(_FIELDS),
        st.sampled_from(_FIELDS).map(fresh),
        st.sampled_from(["self", "bogus", "Reply_to", ""]),
    ),
    _field_values,
    max_size=7,
)


@settings(max_examples=400)
@given(st.lists(_field_values, max_size=2).map(tuple), _keywords)
def test_construction_matches_the_python_init(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """The class called (C: its vectorcall, or type.__call__: its tp_init) against the
    Python ``__init__``: the same fields in the same order, repr and bytes, or the same
    TypeError. Runs without the accelerator too, where all three are Python's."""
    B = spec.BasicProperties
    want = built(lambda: pure_construct(B, *args, **kwargs))
    assert built(lambda: B(*args, **kwargs)) == want
    assert built(lambda: type.__call__(B, *args, **kwargs)) == want
    if want[0] == "ok":
        assert B(*args, **kwargs) == pure_construct(B, *args, **kwargs)


@settings(max_examples=100)
@given(st.dictionaries(st.sampled_from(_FIELDS), st.one_of(st.none(), st.text(max_size=5))))
def test_subclasses_construct_as_before(kwargs: dict[str, Any]) -> None:
    """A subclass, with or without its own ``__init__`` (calling ``super().__init__``),
    runs the Python ``__init__`` as it always did."""

    class Plain(spec.BasicProperties):
        pass

    class Own(spec.BasicProperties):
        def __init__(self, extra: int = 0, **fields: Any) -> None:
            self.extra = extra
            super().__init__(**fields)

    assert Plain.__init__ is _accel.PURE_PROPERTIES_INIT
    assert built(lambda: Plain(**kwargs)) == built(lambda: pure_construct(Plain, **kwargs))
    own = Own(7, **kwargs)
    assert vars(own) == {"extra": 7, **vars(pure_construct(Own, **kwargs))}
    assert built(lambda: Plain(1)) == built(lambda: pure_construct(Plain, 1))
    assert built(lambda: Own(bogus=1)) == (
        "raised",
        ("TypeError", "BasicProperties.__init__() got an unexpected keyword argument 'bogus'"),
    )


def python_init_frames(make: Callable[[], Any]) -> int:
    """How many times ``make()`` enters the Python ``__init__``."""
    code = _accel.PURE_PROPERTIES_INIT.__code__
    calls = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event == "call" and frame.f_code is code:
            calls += 1

    sys.setprofile(profile)
    try:
        make()
    finally:
        sys.setprofile(None)
    return calls


def test_the_python_init_stays_the_class_s_own() -> None:
    B = spec.BasicProperties
    assert B.__dict__["__init__"] is _accel.PURE_PROPERTIES_INIT
    assert not _accel.install_init(type("Other", (), {}))  # not the installed class: refused
    props = B(reply_to="q", correlation_id="1", app_id=None)
    # The C path and the Python one leave the same instance dict: the fields given a
    # value other than None, in FIELDS order.
    assert list(vars(props)) == ["correlation_id", "reply_to"]
    assert vars(props) == vars(pure_construct(B, reply_to="q", correlation_id="1", app_id=None))
    assert props.app_id is None and props.headers is None


@requires_c
def test_construction_runs_no_python_frame_unless_it_must() -> None:
    B = spec.BasicProperties
    assert python_init_frames(lambda: B(reply_to="q", correlation_id="1")) == 0
    assert python_init_frames(lambda: type.__call__(B, reply_to="q")) == 0
    assert python_init_frames(lambda: B()) == 0
    assert python_init_frames(lambda: B(**{fresh("reply_to"): "q"})) == 1  # not interned
    with pytest.raises(TypeError):
        python_init_frames(lambda: B("q"))
    assert python_init_frames(lambda: type("Sub", (B,), {})(reply_to="q")) == 1


@requires_c
def test_assigning_init_or_new_on_the_class_is_honoured() -> None:
    """Assigning ``__init__`` or ``__new__`` on the class makes CPython reset the slots
    the C construction checks: the assigned ones run. In a child process: the class is
    left without its C construction afterwards (until install_init runs again)."""
    code = """if True:
        from txamqp091.core import _accel, spec
        B = spec.BasicProperties
        seen = []
        def init(self, **kw):
            seen.append(kw)
            _accel.PURE_PROPERTIES_INIT(self, **kw)
        B.__init__ = init
        assert B(reply_to="q").reply_to == "q" and seen == [{"reply_to": "q"}]
        B.__init__ = _accel.PURE_PROPERTIES_INIT
        assert B(reply_to="r").reply_to == "r" and len(seen) == 1
        assert _accel.install_init(B)  # put back: C again
        assert vars(B(reply_to="s")) == vars(B(reply_to="s", **{"".join("type"): None}))
        made = []
        def new(cls, **kw):
            made.append(kw)
            return 0 if kw.get("type") == "int" else object.__new__(cls)
        B.__new__ = staticmethod(new)
        assert B(reply_to="t").reply_to == "t" and made == [{"reply_to": "t"}]
        assert B(type="int") == 0  # not a B: no __init__ (type_call's rule)
        print("ok")
    """
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert run.stdout.strip() == "ok", run.stderr
