"""A read resumes the task waiting on the future it settles without a loop Handle
(FutureRuntime.try_resolve / dispatch_read), in the order the loop would have run it,
and hands it back to the loop whenever it cannot run it itself (no broker)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.tornado_adapter.test_read_dispatch import consuming, frames, request
from txamqp091.tornado import AMQPProtocol
from txamqp091.tornado import runtime as runtime_module


class CountingLoopCalls:
    """Counts ``loop.call_soon`` (what a settled future calls per done callback)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.count = 0
        self.original = loop.call_soon

    def __enter__(self) -> CountingLoopCalls:
        original = self.original

        def call_soon(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return original(*args, **kwargs)

        self.loop.call_soon = call_soon  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        del self.loop.call_soon


@pytest.mark.asyncio
async def test_the_task_waiting_on_a_reads_delivery_resumes_without_a_loop_handle() -> None:
    protocol, transport, ch, consumer = await consuming()
    assert protocol._can_wake
    loop = asyncio.get_running_loop()
    got: list[Any] = []

    async def rpc() -> None:
        got.append(await consumer.get())

    task = asyncio.ensure_future(rpc())
    await asyncio.sleep(0)
    seen: asyncio.Future[tuple[int, int]] = loop.create_future()

    def read() -> None:
        with CountingLoopCalls(loop) as calls:
            protocol.data_received(request(1))
        seen.set_result((calls.count, len(got)))

    loop.call_soon(read)
    assert await seen == (0, 1)  # resumed inside the read, nothing scheduled
    await task
    assert got[0].delivery_tag == 1


@pytest.mark.asyncio
async def test_a_getter_with_other_done_callbacks_still_goes_through_the_loop() -> None:
    protocol, transport, ch, consumer = await consuming()
    loop = asyncio.get_running_loop()
    order: list[str] = []

    async def rpc() -> None:
        waiter = consumer.get()
        waiter.add_done_callback(lambda _: order.append("callback"))
        await waiter
        order.append("resumed")

    task = asyncio.ensure_future(rpc())
    await asyncio.sleep(0)
    seen: asyncio.Future[int] = loop.create_future()

    def read() -> None:
        with CountingLoopCalls(loop) as calls:
            protocol.data_received(request(1))
        seen.set_result(calls.count)

    loop.call_soon(read)
    assert await seen == 2  # both callbacks as the loop's Handles, run in the read
    await task
    assert order == ["callback", "resumed"]


@pytest.mark.asyncio
async def test_a_failing_done_callback_is_reported_to_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    protocol, transport, ch, consumer = await consuming()
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        waiter = consumer.get()

        def boom(_: object) -> None:
            raise RuntimeError("boom")

        waiter.add_done_callback(boom)  # its only callback: taken off and run by the read
        seen: asyncio.Future[None] = loop.create_future()

        def read() -> None:
            protocol.data_received(request(1))
            seen.set_result(None)

        loop.call_soon(read)
        await seen
    finally:
        loop.set_exception_handler(None)
    assert [type(c["exception"]) for c in reported] == [RuntimeError]
    assert "boom" in reported[0]["message"] and reported[0]["future"] is waiter
    assert waiter.result().delivery_tag == 1


@pytest.mark.asyncio
async def test_a_dispatch_that_raises_hands_the_wake_up_back_to_the_loop() -> None:
    protocol = AMQPProtocol(frames_params())
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = protocol.create_waiter()
    order: list[str] = []

    async def waiting() -> None:
        order.append(await future)

    task = asyncio.ensure_future(waiting())
    await asyncio.sleep(0)
    failed: asyncio.Future[BaseException] = loop.create_future()

    def dispatch(events: list[Any]) -> None:
        assert protocol.try_resolve(future, "value")
        raise ValueError("dispatch failed")

    def read() -> None:
        try:
            protocol.dispatch_read(dispatch, [])
        except ValueError as exc:
            failed.set_result(exc)

    loop.call_soon(read)
    assert str(await failed) == "dispatch failed"
    await asyncio.wait_for(task, 5)
    assert order == ["value"]


def frames_params() -> Any:
    from txamqp091 import ConnectionParameters

    return ConnectionParameters(heartbeat=0)


def test_a_callback_that_stops_the_loop_leaves_the_wake_up_first_in_line() -> None:
    loop = asyncio.new_event_loop()
    try:
        protocol, transport, ch, consumer = loop.run_until_complete(consuming())
        order: list[str] = []

        def stopper(message: Any) -> None:
            loop.call_soon(order.append, "queued by the callback")
            loop.stop()

        subscribed = ch.basic_consume("q2", on_message_callback=stopper, consumer_tag="c2")
        protocol.data_received(frames.consume_ok(1, "c2"))
        loop.run_until_complete(subscribed)

        async def rpc() -> None:
            await consumer.get()
            order.append("resumed")

        task = loop.create_task(rpc())
        loop.run_until_complete(asyncio.sleep(0))
        read = request(1) + frames.deliver(1, "c2", 2, b"stop")
        loop.call_soon(protocol.data_received, read)
        loop.run_forever()  # until the callback's stop
        assert order == []
        loop.run_until_complete(task)
        loop.run_until_complete(asyncio.sleep(0))
        assert order == ["resumed", "queued by the callback"]
    finally:
        loop.close()


def test_loops_whose_futures_hide_their_callbacks_keep_the_loop_handle() -> None:
    class Hidden(asyncio.Future):  # type: ignore[type-arg]
        @property
        def _callbacks(self) -> Any:
            raise AttributeError("_callbacks")

    class Loop(asyncio.SelectorEventLoop):
        def create_future(self) -> asyncio.Future[Any]:
            return Hidden(loop=self)

    loop, plain = Loop(), asyncio.new_event_loop()
    try:
        assert not runtime_module._callbacks_visible(loop)
        assert runtime_module._callbacks_visible(plain)
    finally:
        loop.close()
        plain.close()


@pytest.mark.asyncio
async def test_the_current_task_lookup_agrees_with_asyncio() -> None:
    loop = asyncio.get_running_loop()
    lookup = runtime_module._task_lookup()
    seen: asyncio.Future[object] = loop.create_future()
    loop.call_soon(lambda: seen.set_result(lookup(loop)))
    assert await seen is None  # a plain callback: no task
    assert lookup(loop) is asyncio.current_task()


def test_the_current_task_lookup_falls_back_to_asyncio_s_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def python_current_task(loop: Any = None) -> Any:
        return None

    monkeypatch.setattr(asyncio, "current_task", python_current_task)
    monkeypatch.setattr(asyncio.tasks, "_current_tasks", None)  # not the dict it knows
    assert runtime_module._task_lookup() is python_current_task
