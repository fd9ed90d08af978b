"""The C ``basic_publish`` (``_speedups.c``: ``tx_basic_publish``, then
``client_publish``) against the Python method it takes the common case of: the same
sequence of publishes and state changes on two connections to the fake broker, one
through each, gives the same waiters, the same bytes written when, the same flush
bookkeeping and the same state after."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.client.support import Wire
from txamqp091.client import channel_base
from txamqp091.client.channel import ChannelLogic
from txamqp091.client.connection import PURE_FLUSH, ConnectionLogic
from txamqp091.core import _accel, spec
from txamqp091.core.frames import HEARTBEAT_FRAME
from txamqp091.params import ConnectionParameters
from txamqp091.testing import FakeBroker

requires_c = pytest.mark.skipif(_accel.speedups is None, reason="the C accelerator is not built")


class OtherProperties(spec.BasicProperties):
    """Not exactly BasicProperties: validated in full, encoded by Python."""


properties = st.one_of(
    st.none(),
    st.builds(spec.BasicProperties, correlation_id=st.text(max_size=5)),
    st.builds(
        spec.BasicProperties,
        reply_to=st.sampled_from(["amq.rabbitmq.reply-to", "r" * 70]),
        correlation_id=st.text(max_size=3),
        delivery_mode=st.sampled_from([None, 1, 2]),
    ),
    st.builds(spec.BasicProperties, priority=st.sampled_from([None, 3])),
    st.builds(OtherProperties, content_type=st.just("a")),
    st.just("not properties"),
)

publishes = st.tuples(
    st.just("publish"),
    st.sampled_from(["", "amq.direct", "missing", "x" * 64, 5]),
    st.sampled_from(["q", "", "r" * 64, "nowhere", None]),
    st.one_of(
        st.binary(max_size=40),
        st.binary(max_size=40).map(bytearray),
        st.text(max_size=5),
        st.just(b"b" * 300),
        st.just(memoryview(b"mv")),
        st.just(3),
    ),
    properties,
    st.sampled_from([False, True, 0, None]),
)

steps = st.one_of(
    publishes,
    publishes,
    st.tuples(
        st.sampled_from(
            [
                "confirm",
                "flush",
                "flow_off",
                "flow_on",
                "block",
                "unblock",
                "pause",
                "resume",
                "send_first",
                "receiving",
                "not_receiving",
                "threshold",
                "huge_threshold",
                "float_threshold",
                "heartbeat_frame",
                "other_frame",
                "flush_now",
                "end",
                "close",
            ]
        )
    ),
)


def _error(error: BaseException | None) -> Any:
    return None if error is None else (type(error), str(error))


def _value(value: Any) -> Any:
    """A waiter's value, comparable across the two runs (a close's value is the
    exception that closed the channel)."""
    return _error(value) if isinstance(value, BaseException) else value


def _run(publish: Any, params: ConnectionParameters, script: list[tuple[Any, ...]]) -> Any:
    wire = Wire(FakeBroker(), params)
    wire.result(wire.client._opened)
    ch: ChannelLogic[Any] = wire.result(wire.client.channel())
    wire.result(ch.queue_declare("q"))
    conn = wire.client
    runtime = wire.runtime
    waiters: list[Any] = []
    seen: list[Any] = []
    for step in script:
        kind = step[0]
        if kind == "publish":
            try:
                waiters.append(publish(ch, *step[1:]))
                seen.append("waiter")
            except Exception as exc:  # the Python method's validation errors
                seen.append(_error(exc))
        elif kind == "confirm":
            waiters.append(ch.confirm_delivery())
        elif kind == "flush":
            conn._receiving = False
            wire.flush()
        elif kind == "flow_off":
            ch._on_flow(False)
        elif kind == "flow_on":
            ch._on_flow(True)
        elif kind == "block":
            conn._core.is_blocked = True
        elif kind == "unblock":
            conn._core.is_blocked = False
            conn._release_held()
        elif kind == "pause":
            conn.pause_writing()
        elif kind == "resume":
            conn.resume_writing()
        elif kind == "send_first":
            conn._send_first = True
        elif kind == "receiving":
            conn._receiving = True
        elif kind == "not_receiving":
            conn._receiving = False
        elif kind == "threshold":
            conn.flush_threshold = 200
        elif kind == "huge_threshold":  # beyond C's long long: Python's arithmetic
            conn.flush_threshold = 2**70
        elif kind == "float_threshold":  # not an int: Python's comparison
            conn.flush_threshold = 250.5
        elif kind == "heartbeat_frame":  # alone in a write, it is not traffic
            conn._core._out.append(HEARTBEAT_FRAME)
        elif kind == "other_frame":
            conn._core._out.append(b"\x01frame")
        elif kind == "flush_now":
            conn._flush()
        elif kind == "end":  # what the connection writes after it ended is dropped
            conn._ended = True
        else:
            waiters.append(ch.close())
        seen.append(
            (
                bytes(runtime.written),
                len(runtime.soon),
                conn._unflushed,
                conn._flush_scheduled,
                conn._send_first,
                [(w.done, _value(w.value), _error(w.error)) for w in waiters],
                sorted(ch._unconfirmed),
                len(ch._flow_held),
                len(conn._held),
                len(conn._core._out),
                None if conn._core._heartbeat is None else conn._core._heartbeat._sent,
            )
        )
    conn._receiving = False
    wire.flush()
    seen.append([(w.done, type(w.value), _error(w.error)) for w in waiters])
    return seen


@requires_c
@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([0, 2]),
    st.sampled_from([100, 128 * 1024 * 1024]),
    st.lists(steps, max_size=14),
)
def test_the_c_basic_publish_does_what_the_python_method_does(
    max_unconfirmed: int, max_message_size: int, script: list[tuple[Any, ...]]
) -> None:
    params = ConnectionParameters(
        max_unconfirmed=max_unconfirmed, max_message_size=max_message_size
    )
    accelerated = _run(channel_base.ChannelBase.basic_publish, params, script)
    pure = _run(channel_base.PURE_BASIC_PUBLISH, params, script)
    assert accelerated == pure


@requires_c
@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([0, 30]),
    st.sampled_from([0, 2]),
    st.lists(steps, max_size=14),
)
def test_the_c_flush_does_what_the_python_flush_does(
    heartbeat: int, max_unconfirmed: int, script: list[tuple[Any, ...]]
) -> None:
    """ConnectionLogic._flush (C: every write, the send-first publish's included)
    against the Python one, over the same scripts, with and without heartbeats."""
    params = ConnectionParameters(heartbeat=heartbeat, max_unconfirmed=max_unconfirmed)
    accelerated = _run(channel_base.ChannelBase.basic_publish, params, script)
    c_flush = ConnectionLogic.__dict__["_flush"]
    assert c_flush is not PURE_FLUSH
    type.__setattr__(ConnectionLogic, "_flush", PURE_FLUSH)
    try:
        pure = _run(channel_base.ChannelBase.basic_publish, params, script)
    finally:
        type.__setattr__(ConnectionLogic, "_flush", c_flush)
    assert accelerated == pure


@requires_c
def test_a_core_with_a_data_to_send_of_its_own_is_asked_by_the_c_flush() -> None:
    wire = Wire(FakeBroker())
    wire.result(wire.client._opened)
    conn = wire.client
    asked: list[bool] = []

    class Core(type(conn._core)):  # type: ignore[misc]
        def data_to_send(self) -> bytes:
            asked.append(True)
            return b"own"

    conn._core.__class__ = Core
    before = len(wire.runtime.written)
    conn._flush()
    assert asked == [True] and bytes(wire.runtime.written[before:]) == b"own"


@requires_c
def test_a_data_to_send_set_on_the_core_instance_is_asked_by_the_c_flush() -> None:
    wire = Wire(FakeBroker())
    wire.result(wire.client._opened)
    conn = wire.client
    conn._core._out.append(b"queued")
    conn._core.data_to_send = lambda: b"own"  # type: ignore[method-assign]
    before = len(wire.runtime.written)
    conn._flush()
    assert bytes(wire.runtime.written[before:]) == b"own"


@requires_c
def test_the_c_basic_publish_is_installed_and_keeps_the_methods_signature() -> None:
    """A C method of the class: its parameters after ``self`` are the Python method's,
    with the same kinds and defaults (its text signature has no annotations), and its
    doc is the Python one's."""
    import inspect

    method = channel_base.ChannelBase.basic_publish
    assert method is not channel_base.PURE_BASIC_PUBLISH
    assert type(method).__name__ == "method_descriptor"

    def parameters(fn: Any) -> list[tuple[str, Any, Any]]:
        params = list(inspect.signature(fn).parameters.values())[1:]
        return [(p.name, p.kind, p.default) for p in params]

    assert parameters(method) == parameters(channel_base.PURE_BASIC_PUBLISH)
    assert method.__doc__ == channel_base.PURE_BASIC_PUBLISH.__doc__


#: How a caller may pass basic_publish's arguments, and ways it may not: what the C
#: method binds itself and what it leaves to the Python method, which raises.
CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    (("", "q", b"b"), {}),
    (("", "q", b"b", None), {}),
    (("", "q", b"b", spec.BasicProperties(correlation_id="1"), False), {}),
    ((), {"exchange": "", "routing_key": "q", "body": b"b"}),
    (("",), {"routing_key": "q", "body": b"b", "mandatory": False}),
    (("", "q"), {"body": b"b", "properties": spec.BasicProperties(reply_to="r")}),
    (("", "q", b"b"), {"mandatory": True}),
    (("", "q", b"b"), {"mandatory": 0}),
    ((), {"body": b"b", "routing_key": "q", "exchange": "", "properties": None}),
    (("", "q", "text"), {}),
    (("", "q"), {}),
    (("",), {"body": b"b"}),
    (("", "q", b"b"), {"exchange": ""}),
    (("", "q", b"b"), {"body": b"c"}),
    (("", "q", b"b"), {"routing": "q"}),
    (("", "q", b"b", None, False, "extra"), {}),
    ((), {}),
    (("", "q", b"b"), {"Body": b"b"}),
    # Names made at run time, not the interned ones the compiler gives a call's keywords.
    ((), {"".join(["ex", "change"]): "", "".join(["routing", "_key"]): "q", "body": b"b"}),
    (("", "q"), {"".join(["bo", "dy"]): b"b", "".join(["proper", "ties"]): None}),
]


@requires_c
@pytest.mark.parametrize("args, kwargs", CALLS)
def test_the_c_basic_publish_binds_its_arguments_as_the_python_method(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """By position, by name or both, defaults left out, and what Python refuses (a
    missing, repeated or unknown argument, one too many): the same waiters, bytes and
    errors from the C method as from the Python one."""

    def run(publish: Any) -> Any:
        wire = Wire(FakeBroker())
        wire.result(wire.client._opened)
        ch: ChannelLogic[Any] = wire.result(wire.client.channel())
        wire.result(ch.queue_declare("q"))
        before = len(wire.runtime.written)
        try:
            waiter = publish(ch, *args, **kwargs)
        except TypeError as exc:
            return ("raised", str(exc))
        wire.flush()
        return (waiter.done, waiter.value, bytes(wire.runtime.written[before:]))

    accelerated = run(channel_base.ChannelBase.basic_publish)
    assert accelerated == run(channel_base.PURE_BASIC_PUBLISH)
    if kwargs.keys() - {"exchange", "routing_key", "body", "properties", "mandatory"}:
        assert accelerated[0] == "raised"


@requires_c
@pytest.mark.parametrize(
    "args, kwargs", [c for c in CALLS if c[1] and "extra" not in c[0]][:1] + CALLS[-2:]
)
def test_the_c_basic_publish_binds_names_without_the_python_method(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Arguments given by name, the compiler's interned names and names made at run time
    alike, are bound in C: the publish runs no Python frame of ``basic_publish``."""
    import sys
    from types import FrameType

    wire = Wire(FakeBroker())
    wire.result(wire.client._opened)
    ch: ChannelLogic[Any] = wire.result(wire.client.channel())
    wire.result(ch.queue_declare("q"))
    ran: list[str] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_filename.endswith("channel_base.py"):
            ran.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        ch.basic_publish(*args, **kwargs)
    finally:
        sys.setprofile(None)
    assert ran == []


@requires_c
def test_what_the_core_publish_raises_fails_the_waiter() -> None:
    """What the core publish raises fails the waiter the C path returns, as the Python
    method's ``except Exception`` does (the core is not the C-accelerated class here)."""
    wire = Wire(FakeBroker())
    wire.result(wire.client._opened)
    ch: ChannelLogic[Any] = wire.result(wire.client.channel())

    class Boom(Exception):
        pass

    class Core:
        def __init__(self, real: Any) -> None:
            self.real = real

        def publish(self, *args: Any) -> int:
            raise Boom("no")

    ch._core = Core(ch._core)  # type: ignore[assignment]
    waiter = channel_base.ChannelBase.basic_publish(ch, "", "q", b"x")
    assert waiter.done and isinstance(waiter.error, Boom)


def test_the_connections_read_per_publish_are_slots_and_instances_keep_a_dict() -> None:
    """What the C publishes read on the client and core connections are slots (read at
    fixed offsets), and the adapters' connections keep an instance __dict__ for the
    rest (ConnectionLogic is one base of theirs among others)."""
    from txamqp091.client.connection import ConnectionLogic
    from txamqp091.core.connection import Connection as CoreConnection
    from txamqp091.tornado import Connection as TornadoConnection
    from txamqp091.twisted import Connection as TwistedConnection

    for name in _accel.CLIENT_CONNECTION_SLOTS:
        assert type(ConnectionLogic.__dict__[name]).__name__ == "member_descriptor"
    for name in _accel.CONNECTION_LAYOUT_SLOTS:
        assert type(CoreConnection.__dict__[name]).__name__ == "member_descriptor"
    wire = Wire(FakeBroker())
    wire.result(wire.client._opened)
    conns: tuple[Any, ...] = (wire.client, wire.client._core)
    for conn in conns:
        conn.something_else = 1
        assert vars(conn)["something_else"] == 1
    for cls in (TornadoConnection, TwistedConnection):
        assert cls.__dictoffset__ != 0 and issubclass(cls, ConnectionLogic)


@requires_c
def test_a_core_connection_of_another_class_is_read_by_name() -> None:
    """A channel whose connection's core is not a core Connection (no slots to read):
    the C publish reads ``is_blocked`` by name, and a blocked one holds the publish as
    the Python method does."""
    results = []
    for publish in (channel_base.ChannelBase.basic_publish, channel_base.PURE_BASIC_PUBLISH):
        wire = Wire(FakeBroker())
        wire.result(wire.client._opened)
        ch: ChannelLogic[Any] = wire.result(wire.client.channel())
        conn = wire.client
        real = conn._core

        class Core:
            is_blocked = True

            def __init__(self, real: Any) -> None:
                self.real = real

            def __getattr__(self, name: str) -> Any:
                return getattr(self.real, name)

        conn._core = Core(real)  # type: ignore[assignment]
        waiter = publish(ch, "", "q", b"x")
        results.append((waiter.done, len(conn._held)))
        conn._core = real
    assert results[0] == results[1] == (False, 1)
