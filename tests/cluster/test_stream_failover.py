"""A recovering stream consumer across a kill of its connection's node, on both adapters.

The stream is declared through the third node (its leader there); the client
starts on the first, consumes from ``first`` with a prefetch of ``PREFETCH``, and
the first node is killed midway. After the reconnect the consumer must resume
after the last offset it delivered: no gap, and at most the in-flight window
(the prefetch) read again. Re-subscribing from the original offset would read
everything again.
"""

from __future__ import annotations

import uuid
from collections import Counter, deque
from typing import Any

import pytest
import pytest_twisted

from tests.cluster.drivers import LOOPS, Loop
from tests.cluster.nodes import Cluster
from txamqp091.message import Message

pytestmark = pytest.mark.cluster

COUNT = 400
PREFETCH = 10
#: Seconds between two acks: 400 offsets take about 4 s to read.
ACK_EVERY = 0.01
STREAM = {"x-queue-type": "stream", "x-queue-leader-locator": "client-local"}


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


async def publish_stream(loop: Loop, cluster: Cluster, queue: str) -> None:
    """Declare the stream through the third node (its leader there) and fill it."""
    conn = await loop.within(30, loop.connect(cluster.nodes[2].url()), "connect")
    try:
        ch = await loop.within(10, conn.channel(), "channel")
        await loop.within(30, ch.queue_declare(queue, durable=True, arguments=STREAM), "declare")
        await loop.within(10, ch.confirm_delivery(), "confirm")
        publishes = [ch.basic_publish("", queue, b"%d" % i) for i in range(COUNT)]
        for published in publishes:
            await loop.within(60, published, "publish")
    finally:
        await loop.within(15, conn.close(), "close")


async def resume_round(loop: Loop, cluster: Cluster) -> dict[str, Any]:
    first = cluster.nodes[0]
    queue, name = unique("stream"), unique("conn")
    await publish_stream(loop, cluster, queue)
    client = loop.client(cluster.urls(url_query(name), first=first), retry_policy=lambda a: 0.2)
    await loop.within(30, client.start(), "start")
    reader = Reader()
    ticking = [True]

    async def tick() -> None:
        while ticking:
            reader.ack_one()
            await loop.sleep(ACK_EVERY)

    try:
        ch = await loop.within(30, client.channel(), "channel")
        await loop.within(30, ch.basic_qos(prefetch_count=PREFETCH), "qos")
        consume = ch.basic_consume(queue, reader.on_message, arguments={"x-stream-offset": "first"})
        await loop.within(30, consume, "consume")
        ticker = loop.spawn(tick())
        try:
            await loop.eventually(lambda: len(reader.offsets) >= COUNT // 4, 30, "deliveries")
            await loop.to_thread(cluster.kill, first)
            await loop.eventually(reader.done, 60, "all read")
            await loop.sleep(0.5)
        finally:
            ticking.clear()
            await ticker
        figures = reader.check(killed=True)
        assert client.connections >= 2
        return figures
    finally:
        await loop.within(30, client.stop(), "stop")
        await loop.to_thread(cluster.start, first)
        await loop.to_thread(cluster.ctl, "delete_queue", queue)


@pytest.mark.parametrize("adapter", ["twisted", "tornado"])
@pytest_twisted.ensureDeferred
async def test_a_stream_consumer_resumes_after_its_last_offset(
    cluster: Cluster, adapter: str
) -> None:
    figures = await LOOPS[adapter]().run(lambda loop: resume_round(loop, cluster))
    print(f"\n{adapter} stream resume: {figures}")
