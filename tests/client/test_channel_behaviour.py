"""Channel behaviour that must be the same on both adapters: Channel.Flow from the
broker, ``async def`` message callbacks, ``run_in_thread``."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
import pytest_asyncio

from tests.client.wires import WIRES, TwistedWire
from txamqp091.core import spec
from txamqp091.exceptions import ChannelClosedByBroker
from txamqp091.message import Message

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture(params=WIRES, ids=lambda w: w.name)
async def wire(request: pytest.FixtureRequest) -> TwistedWire:
    wire: TwistedWire = request.param()
    return wire


async def test_flow_stopped_by_the_broker_holds_publishes_until_it_resumes(
    wire: TwistedWire,
) -> None:
    conn = await wire.open()
    ch = await wire.channel(conn)
    await wire.feed(wire.frames.flow(1, active=False))
    methods = await wire.methods()
    assert [type(m) for m in methods] == [spec.ChannelFlowOk]
    held = [ch.basic_publish("", "q", b"m%d" % i) for i in range(3)]
    assert await wire.published() == []
    assert not any(wire.done(d) for d in held)

    await wire.feed(wire.frames.flow(1, active=True))
    assert await wire.published() == [b"m0", b"m1", b"m2"]
    assert [await wire.result(d) for d in held] == [None, None, None]
    # Publishing goes straight out again.
    ch.basic_publish("", "q", b"after")
    assert await wire.published() == [b"after"]


async def test_publishes_held_by_flow_fail_when_the_channel_closes(wire: TwistedWire) -> None:
    conn = await wire.open()
    ch = await wire.channel(conn)
    await wire.feed(wire.frames.flow(1, active=False))
    held = ch.basic_publish("", "q", b"never")
    await wire.feed(wire.frames.channel_close(1, 406, "PRECONDITION_FAILED - test"))
    with pytest.raises(ChannelClosedByBroker):
        await wire.result(held)
    assert await wire.published() == []


async def consume(wire: TwistedWire, ch: Any, callback: Any, **kwargs: Any) -> Any:
    d = ch.basic_consume("q", on_message_callback=callback, consumer_tag="c", **kwargs)
    await wire.raw()
    await wire.feed(wire.frames.consume_ok(1, "c"))
    return await wire.result(d)


async def acks(wire: TwistedWire) -> list[tuple[str, int]]:
    return [
        (type(m).__name__, m.delivery_tag)
        for m in await wire.methods()
        if isinstance(m, (spec.BasicAck, spec.BasicNack))
    ]


async def test_an_async_def_callback_runs_to_its_end(wire: TwistedWire) -> None:
    conn = await wire.open()
    ch = await wire.channel(conn)
    seen: list[bytes] = []

    async def handle(message: Message) -> None:
        await asyncio.sleep(0) if wire.name == "asyncio" else None
        seen.append(message.body)
        message.ack()

    await consume(wire, ch, handle)
    await wire.feed(wire.frames.deliver(1, "c", 7, b"hello"))
    assert seen == [b"hello"]
    assert await acks(wire) == [("BasicAck", 7)]


async def test_a_failing_callback_is_logged_with_the_delivery_tag_and_consuming_goes_on(
    wire: TwistedWire, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await wire.open()
    ch = await wire.channel(conn)
    seen: list[int] = []

    async def handle(message: Message) -> None:
        seen.append(message.delivery_tag)
        if message.delivery_tag == 1:
            raise RuntimeError("boom")

    logged: list[str] = []
    if wire.name == "twisted":
        from twisted.logger import globalLogPublisher

        def observe(event: dict[str, Any]) -> None:
            from twisted.logger import formatEvent

            logged.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
    await consume(wire, ch, handle)
    with caplog.at_level(logging.ERROR):
        await wire.feed(wire.frames.deliver(1, "c", 1, b"a"))
        await wire.feed(wire.frames.deliver(1, "c", 2, b"b"))
    if wire.name == "twisted":
        globalLogPublisher.removeObserver(observe)
    else:
        logged = [r.getMessage() for r in caplog.records]
    assert seen == [1, 2]
    assert any("delivery 1" in line and "failed" in line for line in logged), logged


async def test_run_in_thread_acks_on_return_and_requeues_on_error(wire: TwistedWire) -> None:
    conn = await wire.open()
    ch = await wire.channel(conn)
    threads: list[int] = []

    def handle(message: Message) -> None:
        threads.append(threading.get_ident())
        if message.body == b"bad":
            raise ValueError("bad")

    if wire.name == "twisted":
        # The Clock stands in for the reactor: run the "thread pool" call inline.
        from twisted.internet.defer import maybeDeferred

        runtime: Any = ch._runtime
        runtime.run_blocking = lambda fn, *args: maybeDeferred(fn, *args)
    await consume(wire, ch, handle, run_in_thread=True)
    await wire.feed(wire.frames.deliver(1, "c", 1, b"good"))
    await wire.feed(wire.frames.deliver(1, "c", 2, b"bad"))
    for _ in range(100):
        if len(threads) == 2:
            break
        await asyncio.sleep(0.01)
    await wire.settle()
    assert await acks(wire) == [("BasicAck", 1), ("BasicNack", 2)]
    if wire.name == "asyncio":
        assert threading.get_ident() not in threads


async def test_run_in_thread_needs_a_callback(wire: TwistedWire) -> None:
    conn = await wire.open()
    ch = await wire.channel(conn)
    with pytest.raises(ValueError, match="run_in_thread"):
        await wire.result(ch.basic_consume("q", run_in_thread=True))
