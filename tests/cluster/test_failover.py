"""The recovering client on a three-node cluster while nodes fail: no confirmed message lost.

One round, written once (:mod:`tests.cluster.drivers`) and run on both adapters:
Twisted's ``AMQPClientService`` and Tornado's ``AMQPClient``. Each round declares a
quorum queue whose leader is the third node, starts the client given every node
(the first one first), publishes with confirms (window 50) while a recovering
consumer on the same client consumes, and then, while the publishing goes on:

``connection``
    hard-kills (SIGKILL) the node holding the client's connection, then boots it again;
``stop_app``
    ``rabbitmqctl stop_app`` on that node (its VM stays in the cluster), then ``start_app``;
``drain``
    puts that node in maintenance mode (``rabbitmq-upgrade drain``: it closes its
    client connections and refuses new ones), then revives it;
``leader``
    hard-kills the queue's leader while the client's own node stays up.

Every confirmed id must be consumed; duplicates are counted, not failed. Publishes
the broker nacks (a quorum queue without a leader, during an election) are published
again by the test with a backoff: a nack means the broker does not have the message.

The figures (``-s``): time from the fault to the first confirm after it, and the
duplicates per fault. ``TXAMQP091_CLUSTER_KILLS=5`` gives the median of five. The
five-thousand-publish count of the issue is kept for the two hard kills; the
stop_app and drain rounds publish 2,000 at least (and always until the node is back),
which keeps the cluster step of ``./scripts/test`` within CI's time.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted

from tests.cluster.conftest import kills
from tests.cluster.drivers import LOOPS, Client, Loop
from tests.cluster.nodes import Cluster
from tests.integration.faults import BrokerNode
from txamqp091 import BasicProperties
from txamqp091.exceptions import NackError
from txamqp091.message import Message

pytestmark = pytest.mark.cluster

#: Confirmed publishes per round at least, by fault; the window of unconfirmed ones;
#: publishes per second at most (so that the node's return happens while they go on).
COUNT = {"connection": 5000, "leader": 5000, "stop_app": 2000, "drain": 2000}
WINDOW = 50
RATE = 1000
PERSISTENT = BasicProperties(delivery_mode=2)
QUORUM = {"x-queue-type": "quorum", "x-queue-leader-locator": "client-local"}


def unique(kind: str) -> str:
    return f"txamqp091-cluster-{kind}-{uuid.uuid4().hex[:10]}"


class Publisher:
    """Confirmed publishes of ``b"<id>"``, at most ``WINDOW`` unconfirmed; nacks sent again."""

    def __init__(self, loop: Loop, client: Client, channel: Any, queue: str) -> None:
        self.loop = loop
        self.client = client
        self.channel = channel
        self.queue = queue
        self.confirmed: set[int] = set()
        #: (monotonic time, connection number, id) of each confirm, in order.
        self.times: list[tuple[float, int, int]] = []
        #: Monotonic time each id was first handed to the channel.
        self.issued: dict[int, float] = {}
        self.failed: list[tuple[int, BaseException]] = []
        self.nacks = 0
        self.inflight = 0
        self._room = loop.event()

    def _send(self, i: int, attempt: int) -> None:
        published = self.channel.basic_publish("", self.queue, b"%d" % i, properties=PERSISTENT)
        self.loop.on_result(
            published, lambda _: self._acked(i), lambda error: self._refused(error, i, attempt)
        )

    def _acked(self, i: int) -> None:
        self.confirmed.add(i)
        self.times.append((time.monotonic(), self.client.connections, i))
        self._release()

    def _refused(self, error: BaseException, i: int, attempt: int) -> None:
        if isinstance(error, NackError) and attempt < 30:
            self.nacks += 1
            self.loop.call_later(min(0.05 * 2**attempt, 2.0), self._send, i, attempt + 1)
            return
        self.failed.append((i, error))
        self._release()

    def _release(self) -> None:
        self.inflight -= 1
        self._room.set()

    async def _wait_room(self) -> None:
        self._room.clear()
        await self._room.wait()

    async def run(self, ids: Iterator[int]) -> None:
        for i in ids:
            while self.inflight >= WINDOW:
                await self._wait_room()
            if i % 10 == 0:
                await self.loop.sleep(10 / RATE)
            self.inflight += 1
            self.issued[i] = time.monotonic()
            self._send(i, 0)
        while self.inflight:
            await self._wait_room()

    def first_confirm_on_later_connection(self, connection: int) -> float | None:
        """When the first confirm came on a connection after ``connection``."""
        return next((t for t, c, _ in self.times if c > connection), None)

    def first_confirm_issued_after(self, moment: float) -> float | None:
        """When the first publish issued after ``moment`` was confirmed."""
        return next((t for t, _, i in self.times if self.issued[i] > moment), None)


class Collector:
    """Acks and counts every delivery of a recovering consumer."""

    def __init__(self) -> None:
        self.seen: Counter[int] = Counter()

    def on_message(self, message: Message) -> None:
        self.seen[int(message.body)] += 1
        message.ack()

    @property
    def duplicates(self) -> int:
        return sum(self.seen.values()) - len(self.seen)


async def declare_quorum(loop: Loop, node: BrokerNode, queue: str) -> None:
    """Declare ``queue`` through ``node``, so that ``node`` leads it (client-local)."""
    conn = await loop.within(30, loop.connect(node.url()), "connect to declare")
    try:
        ch = await loop.within(10, conn.channel(), "channel")
        await loop.within(30, ch.queue_declare(queue, durable=True, arguments=QUORUM), "declare")
    finally:
        await loop.within(15, conn.close(), "close")


async def delete_queue(loop: Loop, cluster: Cluster, queue: str) -> None:
    for node in cluster.up():
        try:
            conn = await loop.within(20, loop.connect(node.url()), "cleanup connect")
        except Exception:
            continue
        try:
            ch = await loop.within(10, conn.channel(), "cleanup channel")
            await loop.within(30, ch.queue_delete(queue), "queue_delete")
        finally:
            await loop.within(15, conn.close(), "cleanup close")
        return


async def fault(loop: Loop, cluster: Cluster, kind: str) -> float:
    """Make the fault, bring the node back; the monotonic time the fault began."""
    first, _, leader = cluster.nodes
    if kind == "stop_app":
        began = time.monotonic()
        try:
            await loop.within(90, loop.to_thread(cluster.stop_app, first), "stop_app")
        finally:
            await loop.within(90, loop.to_thread(cluster.start_app, first), "start_app")
        return began
    if kind == "drain":
        began = time.monotonic()
        try:
            await loop.within(90, loop.to_thread(cluster.drain, first), "drain")
        finally:  # never leave a node in maintenance mode for the next test
            await loop.within(90, loop.to_thread(cluster.revive, first), "revive")
        return began
    victim = first if kind == "connection" else leader
    began = await loop.to_thread(cluster.kill, victim)
    await loop.within(90, loop.to_thread(cluster.start, victim), "restart the killed node")
    return began


async def failover_round(loop: Loop, cluster: Cluster, kind: str) -> dict[str, Any]:
    first, _, leader = cluster.nodes
    queue = unique("q")
    name = unique("conn")
    await declare_quorum(loop, leader, queue)
    assert await loop.to_thread(cluster.quorum_leader, queue) is leader
    client = loop.client(
        cluster.urls(f"connection_name={name}&heartbeat=5&stack_timeout=5", first=first),
        retry_policy=lambda attempt: 0.2,
        publish_timeout=120,
    )
    await loop.within(30, client.start(), "start")
    try:
        publishing = await loop.within(30, client.channel(), "channel")
        await loop.within(30, publishing.confirm_delivery(), "confirm_delivery")
        consuming = await loop.within(30, client.channel(), "channel")
        await loop.within(30, consuming.basic_qos(prefetch_count=100), "basic_qos")
        collector = Collector()
        await loop.within(30, consuming.basic_consume(queue, collector.on_message), "consume")
        assert await loop.to_thread(cluster.connection_node, name) is first

        publisher = Publisher(loop, client, publishing, queue)
        restored: list[bool] = []
        count = COUNT[kind]

        def ids() -> Iterator[int]:
            i = 0
            while i < count or not restored:
                yield i
                i += 1

        run = loop.spawn(publisher.run(ids()))
        await loop.eventually(lambda: len(publisher.confirmed) >= count // 5, 60, "first confirms")
        began = await fault(loop, cluster, kind)
        restored.append(True)
        await loop.within(180, run, "publishing")
        assert publisher.failed == [], publisher.failed[:5]
        if kind != "leader":
            # The first confirmed publish on another node (connection 2 onwards).
            gap = publisher.first_confirm_on_later_connection(1)
            holder = await loop.to_thread(cluster.connection_node, name)
            assert holder is not None
            assert holder is not first or client.connections > 2, "moved to another node"
        else:
            gap = publisher.first_confirm_issued_after(began)
            assert client.connections == 1, "the client's node stayed up: no reconnect"
        assert gap is not None
        confirmed = publisher.confirmed
        await loop.eventually(lambda: confirmed <= collector.seen.keys(), 120, "all consumed")
        return {
            "confirmed": len(confirmed),
            "fault_to_confirm": gap - began,
            "duplicates": collector.duplicates,
            "nacks": publisher.nacks,
            "connections": client.connections,
        }
    finally:
        await loop.within(30, client.stop(), "stop")
        await delete_queue(loop, cluster, queue)


@pytest.mark.parametrize("adapter", ["twisted", "tornado"])
@pytest.mark.parametrize("kind", ["connection", "stop_app", "drain", "leader"])
@pytest_twisted.ensureDeferred
async def test_failover_loses_no_confirmed_message(
    cluster: Cluster, adapter: str, kind: str
) -> None:
    loop = LOOPS[adapter]()

    async def scenario(loop: Loop) -> list[dict[str, Any]]:
        return [await failover_round(loop, cluster, kind) for _ in range(kills())]

    rounds = await loop.run(scenario)
    gaps = [r["fault_to_confirm"] for r in rounds]
    print(
        f"\n{adapter}, {kind}: {len(rounds)} faults, fault -> first confirm "
        f"median {statistics.median(gaps):.2f} s (each {', '.join(f'{g:.2f}' for g in gaps)}), "
        f"duplicates per fault {[r['duplicates'] for r in rounds]}, "
        f"nacks {[r['nacks'] for r in rounds]}, confirmed {[r['confirmed'] for r in rounds]}, "
        f"connections {[r['connections'] for r in rounds]}"
    )
