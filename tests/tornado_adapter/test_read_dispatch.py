"""One read, one loop turn: what settling a read's futures runs, and when (no broker).

A coroutine waiting on ``consumer.get()`` resumes inside the read that brought
its message, when the loop had nothing else queued, so that what it sends (an
RPC's next request, a consumer's acks) leaves in the read's one write; anything
queued before the read keeps its place ahead of it.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from txamqp091 import BasicProperties, ConnectionParameters
from txamqp091.core import spec
from txamqp091.core.testing import ServerFrames, parse_client_methods
from txamqp091.tornado import AMQPProtocol, Channel, Consumer
from txamqp091.tornado import runtime as runtime_module


@pytest.fixture(autouse=True, params=["wake-in-read", "loop-handle"])
def wake_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test both ways: a read resumes its task directly (FutureRuntime.try_resolve),
    or through the loop's Handle, as on a loop whose futures hide their callbacks."""
    if request.param == "loop-handle":
        monkeypatch.setattr(runtime_module, "_callbacks_visible", lambda loop: False)
    return str(request.param)


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


frames = ServerFrames()


async def consuming() -> tuple[AMQPProtocol, RecordingTransport, Channel, Consumer]:
    """A protocol on a recording transport, channel 1 open, consumer ``c1`` on it."""
    protocol = AMQPProtocol(ConnectionParameters(heartbeat=0))
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(frames.handshake(heartbeat=0))
    conn = await protocol.ready
    opened = conn.channel()
    protocol.data_received(frames.channel_open_ok(1))
    ch = await opened
    subscribed = ch.basic_consume("q", auto_ack=True, consumer_tag="c1")
    protocol.data_received(frames.consume_ok(1, "c1"))
    consumer = await subscribed
    await asyncio.sleep(0)  # the scheduled flushes
    transport.writes.clear()
    return protocol, transport, ch, consumer


def request(tag: int) -> bytes:
    return frames.deliver(1, "c1", tag, b"ping", BasicProperties(correlation_id=str(tag)))


async def answer(ch: Channel, consumer: Consumer, order: list[str]) -> None:
    message = await consumer.get()
    order.append("resumed")
    ch.basic_publish("", "replies", b"pong", BasicProperties(correlation_id="1"))
    order.append("published")
    assert message.properties.correlation_id == "1"


def published(writes: list[bytes]) -> list[tuple[int, spec.Method]]:
    return parse_client_methods(b"".join(writes))


@pytest.mark.asyncio
async def test_a_coroutine_on_get_resumes_in_the_read_and_its_publish_leaves_in_its_write() -> None:
    protocol, transport, ch, consumer = await consuming()
    order: list[str] = []
    task = asyncio.ensure_future(answer(ch, consumer, order))
    await asyncio.sleep(0)  # the task waits on get()
    loop = asyncio.get_running_loop()
    seen: asyncio.Future[tuple[list[str], int]] = loop.create_future()

    def read() -> None:  # as the transport calls it: a plain callback, no task running
        protocol.data_received(request(1))
        seen.set_result((list(order), len(transport.writes)))

    loop.call_soon(read)
    after_read, writes = await seen
    assert after_read == ["resumed", "published"]
    assert writes == 1  # written by the read itself, no loop turn in between
    assert published(transport.writes) == [
        (1, spec.BasicPublish(exchange="", routing_key="replies"))
    ]
    await task


@pytest.mark.asyncio
async def test_callbacks_queued_before_the_read_still_run_first() -> None:
    protocol, transport, ch, consumer = await consuming()
    order: list[str] = []
    task = asyncio.ensure_future(answer(ch, consumer, order))
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    seen: asyncio.Future[list[str]] = loop.create_future()

    def read() -> None:
        loop.call_soon(order.append, "queued before")
        protocol.data_received(request(1))
        seen.set_result(list(order))

    loop.call_soon(read)
    assert await seen == []  # the loop's order is kept: nothing ran inside the read
    await task
    await asyncio.sleep(0)  # the flush the publish scheduled
    assert order == ["queued before", "resumed", "published"]
    assert published(transport.writes) == [
        (1, spec.BasicPublish(exchange="", routing_key="replies"))
    ]


@pytest.mark.asyncio
async def test_bytes_fed_from_a_running_task_resume_the_getter_on_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    protocol, transport, ch, consumer = await consuming()
    order: list[str] = []
    task = asyncio.ensure_future(answer(ch, consumer, order))
    await asyncio.sleep(0)
    protocol.data_received(request(1))  # from this test's task: no other task may step now
    assert order == []
    await task
    assert order == ["resumed", "published"]
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


@pytest.mark.asyncio
async def test_a_consumer_loop_takes_a_reads_deliveries_and_acks_them_in_one_write() -> None:
    protocol = AMQPProtocol(ConnectionParameters(heartbeat=0))
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(frames.handshake(heartbeat=0))
    conn = await protocol.ready
    opened = conn.channel()
    protocol.data_received(frames.channel_open_ok(1))
    ch = await opened
    subscribed = ch.basic_consume("q", consumer_tag="c1")
    protocol.data_received(frames.consume_ok(1, "c1"))
    consumer = await subscribed
    await asyncio.sleep(0)
    transport.writes.clear()
    tags: list[int] = []

    async def consume() -> None:
        while len(tags) < 3:
            message: Any = await consumer.get()
            tags.append(message.delivery_tag)
            message.ack()

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    seen: asyncio.Future[int] = loop.create_future()

    def read() -> None:
        protocol.data_received(b"".join(frames.deliver(1, "c1", t, b"m") for t in (1, 2, 3)))
        seen.set_result(len(transport.writes))

    loop.call_soon(read)
    assert await seen == 1
    await task
    assert tags == [1, 2, 3]
    assert published(transport.writes) == [(1, spec.BasicAck(delivery_tag=t)) for t in (1, 2, 3)]


class SizedTransport(RecordingTransport):
    """As asyncio's socket transport: each read is recv(self.max_size)."""

    max_size = 256 * 1024


@pytest.mark.asyncio
async def test_reads_stay_under_the_mmap_threshold_unless_the_last_one_was_full() -> None:
    from txamqp091.tornado.protocol import LARGE_READ_SIZE, READ_SIZE

    protocol = AMQPProtocol(ConnectionParameters(heartbeat=0))
    transport = SizedTransport()
    protocol.connection_made(transport)
    assert transport.max_size == READ_SIZE
    protocol.data_received(frames.handshake(heartbeat=0))
    await protocol.ready
    assert transport.max_size == READ_SIZE
    protocol.data_received(frames.heartbeat() * (READ_SIZE // 8))  # a full read
    assert transport.max_size == LARGE_READ_SIZE
    protocol.data_received(frames.heartbeat())
    assert transport.max_size == READ_SIZE
    assert protocol.connection.is_open


@pytest.mark.asyncio
async def test_a_transport_without_a_read_size_is_left_alone() -> None:
    protocol = AMQPProtocol(ConnectionParameters(heartbeat=0))
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(frames.handshake(heartbeat=0))
    await protocol.ready
    assert not hasattr(transport, "max_size")


@pytest.mark.asyncio
async def test_a_lone_delivery_s_first_publish_leaves_before_its_coroutine_waits_again() -> None:
    protocol, transport, ch, consumer = await consuming()
    written_at_publish: list[int] = []

    async def answer(rounds: int) -> None:
        for _ in range(rounds):
            message = await consumer.get()
            ch.basic_publish("", "replies", message.body)
            written_at_publish.append(len(transport.writes))
            ch.basic_publish("", "audit", message.body)  # waits for the read's end
            written_at_publish.append(len(transport.writes))

    loop = asyncio.get_running_loop()
    for frames_in_read, rounds in ((request(1), 1), (request(2) + request(3), 2)):
        transport.writes.clear()
        written_at_publish.clear()
        task = asyncio.ensure_future(answer(rounds))
        await asyncio.sleep(0)
        seen: asyncio.Future[None] = loop.create_future()

        def read(data: bytes = frames_in_read, done: asyncio.Future[None] = seen) -> None:
            protocol.data_received(data)
            done.set_result(None)

        loop.call_soon(read)
        await seen
        await task
        if rounds == 1:  # the first publish at once, the second with the read's flush
            assert written_at_publish == [1, 1] and len(transport.writes) == 2
        else:  # two deliveries in the read: one write at its end
            assert written_at_publish == [0, 0, 0, 0] and len(transport.writes) == 1
        keys = [m.routing_key for _, m in published(transport.writes)]  # type: ignore[attr-defined]
        assert keys == ["replies", "audit"] * rounds


@pytest.mark.asyncio
async def test_a_read_of_acks_leaves_the_publishes_callbacks_to_the_loop() -> None:
    # A confirm pipeline refills its window from these callbacks; left to the loop's
    # next turn, several reads' acks share one write (see FutureRuntime.dispatch_read).
    protocol, transport, ch, _ = await consuming()
    selected = ch.confirm_delivery()
    protocol.data_received(frames.confirm_select_ok(1))
    await selected
    confirmed = ch.basic_publish("", "q", b"m")
    ran: list[str] = []
    confirmed.add_done_callback(lambda _: ran.append("callback"))
    loop = asyncio.get_running_loop()
    seen: asyncio.Future[list[str]] = loop.create_future()

    def read() -> None:
        protocol.data_received(frames.ack(1, 1))
        seen.set_result(list(ran))

    loop.call_soon(read)
    assert await seen == []
    await asyncio.sleep(0)
    assert ran == ["callback"]


async def confirming() -> tuple[AMQPProtocol, RecordingTransport, Channel]:
    protocol, transport, ch, _ = await consuming()
    selected = ch.confirm_delivery()
    protocol.data_received(frames.confirm_select_ok(1))
    await selected
    await asyncio.sleep(0)
    transport.writes.clear()
    return protocol, transport, ch


@pytest.mark.asyncio
async def test_what_the_confirmed_publishes_callbacks_publish_leaves_at_the_end_of_their_turn(
    wake_path: str,
) -> None:
    # A confirm window refilled from the confirms' callbacks: where the runtime runs them
    # from one Handle, their publishes are written as that Handle ends (no flush Handle,
    # no turn of its own); the loop's way writes them one turn later. The same bytes.
    protocol, transport, ch = await confirming()
    loop = asyncio.get_running_loop()
    first = [ch.basic_publish("", "q", b"m%d" % i) for i in range(3)]
    await asyncio.sleep(0)
    assert [m.routing_key for _, m in published(transport.writes)] == ["q"] * 3  # type: ignore[attr-defined]
    transport.writes.clear()
    seen: list[Any] = []

    def refill(_: Any) -> None:
        ch.basic_publish("", "next", b"n")

    for f in first:
        f.add_done_callback(refill)

    def read() -> None:
        protocol.data_received(frames.ack(1, 3, multiple=True))
        # Queued after the callbacks' Handle: runs in their turn, right after them.
        loop.call_soon(lambda: seen.append(list(transport.writes)))

    loop.call_soon(read)
    await asyncio.gather(*first)
    for _ in range(3):
        await asyncio.sleep(0)
    assert [m.routing_key for _, m in published(transport.writes)] == ["next"] * 3  # type: ignore[attr-defined]
    if wake_path == "wake-in-read":
        # Written in the callbacks' own turn, in one write.
        assert len(seen[0]) == 1
        assert transport.writes == seen[0]
    else:
        assert seen == [[]]  # the loop's way: a flush Handle on the next turn


@pytest.mark.asyncio
async def test_a_confirmed_publishes_callback_that_raises_still_gets_the_others_written() -> None:
    protocol, transport, ch = await confirming()
    loop = asyncio.get_running_loop()
    errors: list[str] = []
    loop.set_exception_handler(lambda _, ctx: errors.append(str(ctx["exception"])))
    try:
        futures = [ch.basic_publish("", "q", b"m") for _ in range(2)]
        await asyncio.sleep(0)
        transport.writes.clear()

        def refill_then_raise(_: Any) -> None:
            ch.basic_publish("", "next", b"n")
            raise RuntimeError("boom")

        for f in futures:
            f.add_done_callback(refill_then_raise)
        loop.call_soon(protocol.data_received, frames.ack(1, 2, multiple=True))
        await asyncio.gather(*futures)
        for _ in range(3):
            await asyncio.sleep(0)
        assert errors == ["boom", "boom"]
        assert [m.routing_key for _, m in published(transport.writes)] == ["next"] * 2  # type: ignore[attr-defined]
        assert protocol.connection._receiving is False
    finally:
        loop.set_exception_handler(None)


@pytest.mark.asyncio
async def test_callbacks_run_inside_a_read_leave_their_writes_to_the_read() -> None:
    # _run_calls run while a read dispatches (its queued Handles run inline): the read
    # writes at its end, and its _receiving stays as it was.
    protocol, transport, ch = await confirming()
    conn = protocol.connection
    order: list[str] = []

    def publish(_: Any) -> None:
        ch.basic_publish("", "next", b"n")
        order.append("published")

    conn._receiving = True
    try:
        protocol._run_calls([(publish, contextvars.copy_context(), None)])
        assert order == ["published"]
        assert transport.writes == []
        assert conn._receiving is True
    finally:
        conn._receiving = False
    conn._flush()
    assert [m.routing_key for _, m in published(transport.writes)] == ["next"]  # type: ignore[attr-defined]
