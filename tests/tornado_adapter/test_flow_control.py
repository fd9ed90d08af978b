"""Backpressure both ways, heartbeats, and use from Tornado's own test machinery."""

from __future__ import annotations

import asyncio
import socket

import pytest
from tornado import testing as tornado_testing
from tornado.testing import gen_test

from tests.tornado_adapter.support import AMQP_URL, Names, eventually
from txamqp091.tornado import Channel, Connection, connect

pytestmark = pytest.mark.broker


@pytest.mark.asyncio
async def test_publishes_wait_while_the_transport_pushes_back(ch: Channel, names: Names) -> None:
    conn: Connection = ch._conn  # type: ignore[assignment]
    queue = names.queue()
    await ch.queue_declare(queue)
    body = b"x" * (1024 * 1024)
    paused: list[bool] = []
    original = conn.pause_writing

    def pause_writing() -> None:
        paused.append(True)
        original()

    conn.pause_writing = pause_writing  # type: ignore[method-assign]
    # A small kernel send buffer, so the transport's own buffer fills whatever the broker's pace.
    transport = conn._runtime.transport  # type: ignore[attr-defined]
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 262144)
    transport.set_write_buffer_limits(high=16384)
    futures = []
    for _ in range(8):
        futures.append(ch.basic_publish("", queue, body))
        await asyncio.sleep(0)  # a loop turn: the publish is written (or held)
    assert paused, "the transport never pushed back"
    assert not all(f.done() for f in futures)  # some wait behind the full buffer
    assert await asyncio.gather(*futures) == [None] * 8
    await eventually(lambda: not conn._write_paused)  # the buffer drained
    for _ in range(100):
        ok = await ch.queue_declare(queue, passive=True)
        if ok.message_count == 8:
            break
        await asyncio.sleep(0.02)
    assert ok.message_count == 8


@pytest.mark.asyncio
async def test_a_consumer_that_falls_behind_pauses_reading(conn: Connection, names: Names) -> None:
    conn.max_buffered, conn.resume_buffered = 20, 10
    protocol = conn._runtime
    ch = await conn.channel()
    queue = names.queue()
    await ch.queue_declare(queue)
    await ch.confirm_delivery()
    count, pad = 300, b"." * 4000  # 1.2 MB: several socket reads (asyncio reads 256 KiB at most)
    await asyncio.gather(*(ch.basic_publish("", queue, b"%d" % i + pad) for i in range(count)))
    consumer = await ch.basic_consume(queue)
    await eventually(lambda: protocol._reading_paused)  # type: ignore[attr-defined]
    await asyncio.sleep(0.1)
    buffered = len(consumer._buffer)
    # Bounded: what one read brought in, at most; the rest waits in the socket or the broker.
    assert 20 <= buffered < count, buffered
    bodies = []
    for _ in range(count):
        message = await consumer.get(timeout=5)
        assert message is not None
        bodies.append(message.body)
        message.ack()
    assert bodies == [b"%d" % i + pad for i in range(count)]
    assert not protocol._reading_paused  # type: ignore[attr-defined]
    assert await consumer.cancel() == 0


@pytest.mark.asyncio
async def test_heartbeats_keep_an_idle_connection_open() -> None:
    conn = await connect(f"{AMQP_URL}?heartbeat=1")
    try:
        assert conn.negotiated.heartbeat == 1
        await asyncio.sleep(2.5)  # longer than two heartbeat intervals with no traffic
        assert conn.is_open
        ch = await conn.channel()
        assert (await ch.queue_declare("", exclusive=True)).queue
    finally:
        await conn.close()


class TornadoCoroutineTest(tornado_testing.AsyncTestCase):
    """The same API from Tornado's IOLoop and ``gen_test``, no pytest-asyncio involved."""

    def runTest(self) -> None:
        """Never run (the class has test methods). pytest 8.2+ builds a TestCase with
        ``methodName="runTest"`` while collecting, and Tornado before 6.4.1 looks that
        method up in ``__init__``: without it the module fails to collect on Tornado
        6.2, the oldest the package supports (CI's oldest-versions step)."""

    @gen_test(timeout=10)
    async def test_publish_and_consume_from_a_tornado_coroutine(self) -> None:
        conn = await connect(AMQP_URL)
        try:
            ch = await conn.channel()
            ok = await ch.queue_declare("", exclusive=True)
            await ch.confirm_delivery()
            await ch.basic_publish("", ok.queue, b"from tornado")
            async for message in await ch.basic_consume(ok.queue):
                assert message.body == b"from tornado"
                message.ack()
                break
        finally:
            await conn.close()
