"""``AMQPClientService`` on a three-node cluster while nodes die: no confirmed message lost.

Each round declares a quorum queue whose leader is the third node, starts a
service given every node (the first one first), publishes with confirms
(window 50) while a recovering consumer on the same service consumes, and
hard-kills (SIGKILL) either the node holding the client's connection or the
queue's leader, then boots it again while the publishing goes on. Every
confirmed id must be consumed; duplicates are counted, not failed.

Publishes the broker nacks (a quorum queue without a leader, during an
election) are published again by the test with a backoff: a nack means the
broker does not have the message, and ``NackError`` is the client telling so.

The figures (``-s``): time from the kill to the first confirm after it, and
duplicates per kill. ``TXAMQP091_CLUSTER_KILLS=5`` gives the median of five.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from tests.cluster.conftest import kills
from tests.cluster.nodes import Cluster
from tests.integration.faults import BrokerNode
from txamqp091 import BasicProperties
from txamqp091.exceptions import NackError
from txamqp091.message import Message
from txamqp091.twisted import AMQPClientService, RecoveringChannel, connect

pytestmark = pytest.mark.cluster

#: Confirmed publishes per round at least; the window of unconfirmed ones; publishes per
#: second at most (so that the killed node's restart happens while they go on).
COUNT = 5000
WINDOW = 50
RATE = 500
PERSISTENT = BasicProperties(delivery_mode=2)
QUORUM = {"x-queue-type": "quorum", "x-queue-leader-locator": "client-local"}

T = TypeVar("T")


def unique(kind: str) -> str:
    return f"txamqp091-cluster-{kind}-{uuid.uuid4().hex[:10]}"


def sleep(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)  # type: ignore[arg-type]


async def within(seconds: float, awaitable: Awaitable[T], what: str) -> T:
    """Await ``awaitable`` for at most ``seconds`` (a test must never hang)."""
    d: Deferred[T] = defer.ensureDeferred(_wrap(awaitable))
    d.addTimeout(seconds, reactor)  # type: ignore[arg-type]
    try:
        return await d
    except defer.TimeoutError:
        raise AssertionError(f"{what} did not finish within {seconds} s") from None


async def _wrap(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def eventually(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true within {timeout} s")
        await sleep(0.02)


class Publisher:
    """Confirmed publishes of ``b"<id>"``, at most ``window`` unconfirmed; nacks sent again."""

    def __init__(self, service: AMQPClientService, channel: RecoveringChannel, queue: str) -> None:
        self.service = service
        self.channel = channel
        self.queue = queue
        self.window = WINDOW
        self.confirmed: set[int] = set()
        #: (monotonic time, connection number, id) of each confirm, in order.
        self.times: list[tuple[float, int, int]] = []
        #: Monotonic time each id was first handed to the channel.
        self.issued: dict[int, float] = {}
        self.failed: list[tuple[int, BaseException]] = []
        self.nacks = 0
        self.inflight = 0
        self._room: Deferred[None] | None = None

    def _send(self, i: int, attempt: int) -> None:
        d = self.channel.basic_publish("", self.queue, b"%d" % i, properties=PERSISTENT)
        d.addCallbacks(self._acked, self._refused, (i,), None, (i, attempt))

    def _acked(self, _: Any, i: int) -> None:
        self.confirmed.add(i)
        self.times.append((time.monotonic(), self.service.connections, i))
        self._release()

    def _refused(self, failure: Failure, i: int, attempt: int) -> None:
        if failure.check(NackError) and attempt < 30:
            self.nacks += 1
            reactor.callLater(min(0.05 * 2**attempt, 2.0), self._send, i, attempt + 1)  # type: ignore[attr-defined]
            return
        self.failed.append((i, failure.value))
        self._release()

    def _release(self) -> None:
        self.inflight -= 1
        room, self._room = self._room, None
        if room is not None:
            room.callback(None)

    async def _wait_room(self) -> None:
        self._room = Deferred()
        await self._room

    async def run(self, ids: Iterator[int]) -> None:
        for i in ids:
            while self.inflight >= self.window:
                await self._wait_room()
            if i % 10 == 0:
                await sleep(10 / RATE)
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


async def declare_quorum(node: BrokerNode, queue: str) -> None:
    """Declare ``queue`` through ``node``, so that ``node`` leads it (client-local)."""
    conn = await within(30, connect(reactor, node.url()), "connect to declare")
    try:
        ch = await within(10, conn.channel(), "channel")
        await within(30, ch.queue_declare(queue, durable=True, arguments=QUORUM), "declare")
    finally:
        await within(15, conn.close(), "close")


async def delete_queue(cluster: Cluster, queue: str) -> None:
    for node in cluster.up():
        try:
            conn = await within(20, connect(reactor, node.url()), "cleanup connect")
        except Exception:
            continue
        try:
            ch = await within(10, conn.channel(), "cleanup channel")
            await within(30, ch.queue_delete(queue), "queue_delete")
        finally:
            await within(15, conn.close(), "cleanup close")
        return


async def failover_round(cluster: Cluster, victim_role: str) -> dict[str, Any]:
    """One fault during confirmed publishing: kill the node holding the connection
    ("connection") or the queue's leader ("leader"), or ``stop_app`` the connection's
    node ("stop_app"); the node is started again while the publishing goes on."""
    first, _, leader = cluster.nodes
    queue = unique("q")
    name = unique("conn")
    await declare_quorum(leader, queue)
    assert await deferToThread(cluster.quorum_leader, queue) is leader
    service = AMQPClientService(
        reactor,
        cluster.urls(f"connection_name={name}&heartbeat=5&stack_timeout=5", first=first),
        retry_policy=lambda attempt: 0.2,
        publish_timeout=120,
    )
    service.startService()
    try:
        publishing = await within(30, service.channel(), "channel")
        await within(30, publishing.confirm_delivery(), "confirm_delivery")
        consuming = await within(30, service.channel(), "channel")
        await within(30, consuming.basic_qos(prefetch_count=100), "basic_qos")
        collector = Collector()
        await within(30, consuming.basic_consume(queue, collector.on_message), "consume")
        assert await deferToThread(cluster.connection_node, name) is first

        publisher = Publisher(service, publishing, queue)
        restarted: list[bool] = []

        def ids() -> Iterator[int]:
            i = 0
            while i < COUNT or not restarted:
                yield i
                i += 1

        run = defer.ensureDeferred(publisher.run(ids()))
        await eventually(lambda: len(publisher.confirmed) >= COUNT // 5, 60, "first confirms")
        if victim_role == "stop_app":
            killed_at = time.monotonic()
            await within(90, deferToThread(cluster.stop_app, first), "stop_app")
            await within(90, deferToThread(cluster.start_app, first), "start_app")
        else:
            victim = first if victim_role == "connection" else leader
            killed_at = await deferToThread(cluster.kill, victim)
            await within(90, deferToThread(cluster.start, victim), "restart the killed node")
        restarted.append(True)
        await within(180, run, "publishing")
        assert publisher.failed == [], publisher.failed[:5]
        if victim_role != "leader":
            # The first confirmed publish on another node (connection 2 onwards).
            gap = publisher.first_confirm_on_later_connection(1)
            holder = await deferToThread(cluster.connection_node, name)
            assert holder is not None
            assert holder is not first or service.connections > 2, "moved to another node"
        else:
            gap = publisher.first_confirm_issued_after(killed_at)
            assert service.connections == 1, "the client's node stayed up: no reconnect"
        assert gap is not None
        confirmed = publisher.confirmed
        await within(
            120,
            eventually(lambda: confirmed <= collector.seen.keys(), 120, "all consumed"),
            "consume everything",
        )
        return {
            "confirmed": len(confirmed),
            "kill_to_confirm": gap - killed_at,
            "duplicates": collector.duplicates,
            "nacks": publisher.nacks,
            "connections": service.connections,
        }
    finally:
        await within(30, service.stopService(), "stopService")
        await delete_queue(cluster, queue)


async def failover(cluster: Cluster, victim_role: str) -> None:
    rounds = [await failover_round(cluster, victim_role) for _ in range(kills())]
    gaps = [r["kill_to_confirm"] for r in rounds]
    print(
        f"\ntwisted, {victim_role}: {len(rounds)} faults, fault -> first confirm "
        f"median {statistics.median(gaps):.2f} s (each {', '.join(f'{g:.2f}' for g in gaps)}), "
        f"duplicates per kill {[r['duplicates'] for r in rounds]}, "
        f"nacks {[r['nacks'] for r in rounds]}, confirmed {[r['confirmed'] for r in rounds]}, "
        f"connections {[r['connections'] for r in rounds]}"
    )


@pytest_twisted.ensureDeferred
async def test_kill_the_connections_node_loses_no_confirmed_message(cluster: Cluster) -> None:
    await failover(cluster, "connection")


@pytest_twisted.ensureDeferred
async def test_stop_app_on_the_connections_node_loses_no_confirmed_message(
    cluster: Cluster,
) -> None:
    await failover(cluster, "stop_app")


@pytest_twisted.ensureDeferred
async def test_kill_the_quorum_leader_publishing_and_consuming_go_on(cluster: Cluster) -> None:
    await failover(cluster, "leader")
