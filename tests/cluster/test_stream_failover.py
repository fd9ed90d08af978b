"""A recovering stream consumer across a kill of its connection's node, on both adapters.

The stream is declared through the third node (its leader there); the client
starts on the first, consumes from ``first`` with a prefetch of ``PREFETCH``, and
the first node is killed midway. After the reconnect the consumer must resume
after the last offset it delivered: no gap, and at most the in-flight window
(the prefetch) read again. Re-subscribing from the original offset would read
everything again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from tests.cluster.nodes import Cluster
from txamqp091 import tornado, twisted
from txamqp091.message import Message

pytestmark = pytest.mark.cluster

COUNT = 400
PREFETCH = 10
#: Seconds between two acks: 400 offsets take about 4 s to read.
ACK_EVERY = 0.01
STREAM = {"x-queue-type": "stream", "x-queue-leader-locator": "client-local"}

T = TypeVar("T")


def unique(kind: str) -> str:
    return f"txamqp091-cluster-{kind}-{uuid.uuid4().hex[:10]}"


class Reader:
    """Records each delivery's stream offset; the test acks them one by one, slowly
    (:meth:`ack_one`), so that the kill lands midway."""

    def __init__(self) -> None:
        self.offsets: list[int] = []
        self.unacked: deque[Message] = deque()

    def on_message(self, message: Message) -> None:
        headers = message.properties.headers or {}
        assert message.stream_offset == headers["x-stream-offset"]
        self.offsets.append(int(headers["x-stream-offset"]))
        self.unacked.append(message)

    def ack_one(self) -> None:
        if self.unacked:
            self.unacked.popleft().ack()

    def done(self) -> bool:
        return set(self.offsets) >= set(range(COUNT))

    def check(self, killed: bool) -> dict[str, Any]:
        seen = Counter(self.offsets)
        assert set(seen) >= set(range(COUNT)), "a gap in the offsets read"
        reread = sum(seen.values()) - len(seen)
        assert reread <= PREFETCH, f"{reread} offsets read again: more than the prefetch"
        return {"reread": reread, "killed": killed}


def url_query(name: str) -> str:
    return f"connection_name={name}&heartbeat=5&stack_timeout=5"


# -- Twisted ------------------------------------------------------------------------------------


async def _tw_within(seconds: float, awaitable: Awaitable[T], what: str) -> T:
    async def wrap() -> T:
        return await awaitable

    d: Deferred[T] = defer.ensureDeferred(wrap())
    d.addTimeout(seconds, reactor)  # type: ignore[arg-type]
    try:
        return await d
    except defer.TimeoutError:
        raise AssertionError(f"{what} did not finish within {seconds} s") from None


async def _tw_eventually(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true within {timeout} s")
        await deferLater(reactor, 0.02, lambda: None)  # type: ignore[arg-type]


@pytest_twisted.ensureDeferred
async def test_twisted_stream_consumer_resumes_after_its_last_offset(cluster: Cluster) -> None:
    first, _, leader = cluster.nodes
    queue, name = unique("stream"), unique("conn")
    conn = await _tw_within(30, twisted.connect(reactor, leader.url()), "connect")
    try:
        ch = await _tw_within(10, conn.channel(), "channel")
        await _tw_within(30, ch.queue_declare(queue, durable=True, arguments=STREAM), "declare")
        await _tw_within(10, ch.confirm_delivery(), "confirm")
        publishes = [ch.basic_publish("", queue, b"%d" % i) for i in range(COUNT)]
        await _tw_within(60, defer.gatherResults(publishes), "publish")
    finally:
        await _tw_within(15, conn.close(), "close")
    service = twisted.AMQPClientService(
        reactor, cluster.urls(url_query(name), first=first), retry_policy=lambda a: 0.2
    )
    service.startService()
    reader = Reader()
    try:
        ch = await _tw_within(30, service.channel(), "channel")
        await _tw_within(30, ch.basic_qos(prefetch_count=PREFETCH), "qos")
        await _tw_within(
            30,
            ch.basic_consume(queue, reader.on_message, arguments={"x-stream-offset": "first"}),
            "consume",
        )
        ticker = task.LoopingCall(reader.ack_one)
        ticker.start(ACK_EVERY)
        try:
            await _tw_eventually(lambda: len(reader.offsets) >= COUNT // 4, 30, "deliveries")
            await deferToThread(cluster.kill, first)
            await _tw_eventually(reader.done, 60, "all read")
            await deferLater(reactor, 0.5, lambda: None)  # type: ignore[arg-type]
        finally:
            ticker.stop()
        figures = reader.check(killed=True)
        assert service.connections >= 2
        print(f"\ntwisted stream resume: {figures}")
    finally:
        await _tw_within(30, service.stopService(), "stopService")
        await deferToThread(cluster.start, first)
        await deferToThread(cluster.ctl, "delete_queue", queue)


# -- Tornado / asyncio ---------------------------------------------------------------------------


async def _aio_eventually(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true within {timeout} s")
        await asyncio.sleep(0.02)


@pytest.mark.asyncio
async def test_tornado_stream_consumer_resumes_after_its_last_offset(cluster: Cluster) -> None:
    first, _, leader = cluster.nodes
    queue, name = unique("stream"), unique("conn")
    conn = await asyncio.wait_for(tornado.connect(leader.url()), 30)
    try:
        ch = await conn.channel()
        await ch.queue_declare(queue, durable=True, arguments=STREAM)
        await ch.confirm_delivery()
        publishes = [ch.basic_publish("", queue, b"%d" % i) for i in range(COUNT)]
        await asyncio.wait_for(asyncio.gather(*publishes), 60)
    finally:
        await conn.close()
    client = tornado.AMQPClient(
        cluster.urls(url_query(name), first=first), retry_policy=lambda a: 0.2
    )
    await asyncio.wait_for(client.start(), 30)
    reader = Reader()
    try:
        ch = await client.channel()
        await ch.basic_qos(prefetch_count=PREFETCH)
        await asyncio.wait_for(
            ch.basic_consume(queue, reader.on_message, arguments={"x-stream-offset": "first"}),
            30,
        )

        async def tick() -> None:
            while True:
                reader.ack_one()
                await asyncio.sleep(ACK_EVERY)

        ticker = asyncio.ensure_future(tick())
        try:
            await _aio_eventually(lambda: len(reader.offsets) >= COUNT // 4, 30, "deliveries")
            await asyncio.to_thread(cluster.kill, first)
            await _aio_eventually(reader.done, 60, "all read")
            await asyncio.sleep(0.5)
        finally:
            ticker.cancel()
        figures = reader.check(killed=True)
        assert client.connections >= 2
        print(f"\ntornado stream resume: {figures}")
    finally:
        await asyncio.wait_for(client.stop(), 30)
        await asyncio.to_thread(cluster.start, first)
        await asyncio.to_thread(cluster.ctl, "delete_queue", queue)
