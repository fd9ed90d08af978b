"""``Message.ack`` on both adapters, in C (core/_speedups_ack.h) and in Python.

With the accelerator, ``Message.ack`` is a C method that writes the ack itself when it
goes straight into the core's output, and calls the Python ``Message.ack``
(``PURE_MESSAGE_ACK``, the reference) for everything else. Every test here runs on
both implementations and both adapters and asserts what reaches the wire, so the two
cannot differ unnoticed; ``python_frames`` shows which one did the work.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest
import pytest_asyncio
from twisted.python import threadable

from tests.client.wires import WIRES, TwistedWire
from txamqp091 import Message
from txamqp091.core import _accel, spec

pytestmark = pytest.mark.asyncio

IMPLEMENTATIONS = ["python"] + (["c"] if _accel.speedups is not None else [])


@pytest.fixture(params=IMPLEMENTATIONS)
def ack_impl(request: pytest.FixtureRequest) -> Iterator[str]:
    """Message.ack as the accelerator installed it ("c"), or the Python reference."""
    installed = Message.__dict__["ack"]
    if request.param == "python":
        assert _accel.PURE_MESSAGE_ACK is not None
        type.__setattr__(Message, "ack", _accel.PURE_MESSAGE_ACK)
    else:
        assert installed is not _accel.PURE_MESSAGE_ACK, "the C ack is not installed"
    try:
        yield request.param
    finally:
        type.__setattr__(Message, "ack", installed)


@pytest_asyncio.fixture(params=WIRES, ids=lambda w: w.name)
async def wire(request: pytest.FixtureRequest) -> TwistedWire:
    wire: TwistedWire = request.param()
    return wire


async def consumer_with(wire: TwistedWire, tags: list[int]) -> tuple[Any, Any, list[Message]]:
    """An open connection's channel 1, a consumer on it, and ``tags`` delivered to it."""
    conn = await wire.open()
    ch = await wire.channel(conn)
    d = ch.basic_consume("q", consumer_tag="ctag")
    await wire.raw()
    await wire.feed(wire.frames.consume_ok(1, "ctag"))
    consumer = await wire.result(d)
    await wire.feed(b"".join(wire.frames.deliver(1, "ctag", t, b"m%d" % t) for t in tags))
    messages = [await wire.result(consumer.get()) for _ in tags]
    return conn, ch, messages


def acks(methods: list[spec.Method]) -> list[tuple[int, bool]]:
    assert all(isinstance(m, spec.BasicAck) for m in methods), methods
    return [(m.delivery_tag, m.multiple) for m in methods]  # type: ignore[attr-defined]


class python_frames:
    """The names of the Python functions of message.py and client/channel.py that ran
    inside the block (the C ack runs none of them on its fast path)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def _profile(self, frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_filename.endswith(
            ("message.py", "client/channel.py")
        ):
            self.names.append(frame.f_code.co_name)

    def __enter__(self) -> python_frames:
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(None)


async def test_an_ack_is_written_at_the_end_of_the_loop_turn(
    wire: TwistedWire, ack_impl: str
) -> None:
    _, _, (first, second) = await consumer_with(wire, [1, 2])
    with python_frames() as ran:
        first.ack()
        second.ack()
    assert ran.names == ([] if ack_impl == "c" else ["ack", "_ack", "ack", "_ack"])
    assert acks(await wire.methods()) == [(1, False), (2, False)]


@pytest.mark.parametrize(
    "call", [lambda m: m.ack(True), lambda m: m.ack(multiple=True), lambda m: m.ack(1)]
)
async def test_multiple_in_any_spelling_acks_everything_up_to_the_tag(
    wire: TwistedWire, ack_impl: str, call: Any
) -> None:
    _, _, messages = await consumer_with(wire, [1, 2, 3])
    call(messages[2])
    assert acks(await wire.methods()) == [(3, True)]


async def test_acks_made_while_a_read_is_dispatched_leave_in_its_write(
    wire: TwistedWire, ack_impl: str
) -> None:
    conn = await wire.open()
    ch = await wire.channel(conn)
    d = ch.basic_consume("q", on_message_callback=lambda m: m.ack(), consumer_tag="ctag")
    await wire.raw()
    await wire.feed(wire.frames.consume_ok(1, "ctag"))
    await wire.result(d)
    await wire.feed(b"".join(wire.frames.deliver(1, "ctag", t, b"m") for t in (1, 2, 3)))
    assert acks(await wire.methods()) == [(1, False), (2, False), (3, False)]


async def test_an_ack_on_a_closed_channel_is_dropped(wire: TwistedWire, ack_impl: str) -> None:
    _, ch, (message,) = await consumer_with(wire, [1])
    await wire.feed(wire.frames.method(1, spec.ChannelClose(406, "PRECONDITION_FAILED", 60, 80)))
    await wire.raw()  # the Channel.Close-Ok
    message.ack()
    assert await wire.methods() == []
    assert not ch.is_open


async def test_an_ack_while_the_channel_closes_is_dropped(wire: TwistedWire, ack_impl: str) -> None:
    _, ch, (message,) = await consumer_with(wire, [1])
    ch.close()
    assert [type(m) for m in await wire.methods()] == [spec.ChannelClose]
    message.ack()
    assert await wire.methods() == []


async def test_an_ack_of_an_earlier_channel_incarnation_is_dropped(
    wire: TwistedWire, ack_impl: str
) -> None:
    conn, ch, (message,) = await consumer_with(wire, [1])
    d = conn.channel()
    await wire.raw()
    await wire.feed(wire.frames.channel_open_ok(2))
    other = await wire.result(d)
    # What a message of a channel that was reopened since holds: another core channel.
    message._core_channel = other._core
    message.ack()
    assert await wire.methods() == []


async def test_an_unbound_message_raises_the_same_error(ack_impl: str) -> None:
    message = Message(1, "", 7, False, "", "q", spec.BasicProperties(), b"")
    with pytest.raises(RuntimeError, match="not bound to a channel"):
        message.ack()


async def test_an_ack_from_another_thread_goes_through_the_loop(
    wire: TwistedWire, ack_impl: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, (message,) = await consumer_with(wire, [1])
    handed: list[Any] = []
    if wire.name == "twisted":
        # The reactor's I/O thread is another one; callFromThread queues for it.
        monkeypatch.setattr(threadable, "ioThread", threading.get_ident() + 1)
        wire.clock.callFromThread = handed.append  # type: ignore[attr-defined]
        message.ack()
        assert await wire.methods() == []
        monkeypatch.setattr(threadable, "ioThread", threading.get_ident())
        (fn,) = handed
        fn()
    else:
        other = threading.Thread(target=message.ack)
        other.start()
        other.join()
    assert acks(await wire.methods()) == [(1, False)]


async def test_an_ack_in_the_registered_io_thread_is_written_at_once(
    wire: TwistedWire, ack_impl: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if wire.name != "twisted":
        pytest.skip("Twisted's threadable.ioThread")
    monkeypatch.setattr(threadable, "ioThread", threading.get_ident())
    _, _, (message,) = await consumer_with(wire, [1])
    with python_frames() as ran:
        message.ack()
    assert ran.names == ([] if ack_impl == "c" else ["ack", "_ack"])
    assert acks(await wire.methods()) == [(1, False)]


async def test_a_channel_ack_replaced_on_the_instance_is_called(
    wire: TwistedWire, ack_impl: str
) -> None:
    _, ch, (message,) = await consumer_with(wire, [1])
    seen: list[Any] = []
    ch._ack = lambda m, multiple: seen.append((m.delivery_tag, multiple))
    message.ack()
    assert seen == [(1, False)]
    assert await wire.methods() == []


async def test_a_runtime_whose_in_loop_thread_differs_is_asked(
    wire: TwistedWire, ack_impl: str
) -> None:
    _, ch, (message,) = await consumer_with(wire, [1])
    asked: list[bool] = []
    handed: list[Any] = []
    runtime = ch._runtime

    def in_loop_thread() -> bool:
        asked.append(True)
        return False

    runtime.in_loop_thread = in_loop_thread
    runtime.call_from_thread = handed.append
    try:
        message.ack()
    finally:
        del runtime.in_loop_thread, runtime.call_from_thread
    assert asked and len(handed) == 1
    assert await wire.methods() == []
    handed[0]()
    assert acks(await wire.methods()) == [(1, False)]


async def test_an_ack_after_the_connection_closed_is_dropped(
    wire: TwistedWire, ack_impl: str
) -> None:
    conn, _, (message,) = await consumer_with(wire, [1])
    await wire.feed(wire.frames.method(0, spec.ConnectionClose(320, "CONNECTION_FORCED", 0, 0)))
    await wire.raw()
    message.ack()
    assert await wire.methods() == []
    assert not conn.is_open


async def test_the_pure_channel_ack_put_on_the_instance_is_called_as_it_is(
    wire: TwistedWire, ack_impl: str
) -> None:
    # An instance attribute is not bound: called with (message, multiple) only, the
    # function misses an argument, as Python's attribute lookup has it.
    _, ch, (message,) = await consumer_with(wire, [1])
    ch._ack = type(ch)._ack
    with pytest.raises(TypeError):
        message.ack()
    assert await wire.methods() == []


async def test_a_runtime_class_with_its_own_in_loop_thread_is_asked(
    wire: TwistedWire, ack_impl: str
) -> None:
    _, ch, (message,) = await consumer_with(wire, [1])
    runtime = ch._runtime
    asked: list[bool] = []
    handed: list[Any] = []

    class ElsewhereRuntime(type(runtime)):  # type: ignore[misc]
        def in_loop_thread(self) -> bool:
            asked.append(True)
            return False

        def call_from_thread(self, fn: Any) -> None:
            handed.append(fn)

    original = type(runtime)
    runtime.__class__ = ElsewhereRuntime
    try:
        message.ack()
    finally:
        runtime.__class__ = original
    assert asked and len(handed) == 1
    assert await wire.methods() == []
    handed[0]()
    assert acks(await wire.methods()) == [(1, False)]
