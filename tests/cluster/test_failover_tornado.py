"""Tornado/asyncio ``AMQPClient`` on a three-node cluster while nodes die: the asyncio twin of
``test_failover_twisted.py``, round for round (see there for what a round does).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from tests.cluster.conftest import kills
from tests.cluster.nodes import Cluster
from tests.integration.faults import BrokerNode
from txamqp091 import BasicProperties
from txamqp091.exceptions import NackError
from txamqp091.message import Message
from txamqp091.tornado import AMQPClient, RecoveringChannel, connect

pytestmark = [pytest.mark.asyncio, pytest.mark.cluster]

COUNT = 5000
WINDOW = 50
RATE = 500
PERSISTENT = BasicProperties(delivery_mode=2)
QUORUM = {"x-queue-type": "quorum", "x-queue-leader-locator": "client-local"}

T = TypeVar("T")


def unique(kind: str) -> str:
    return f"txamqp091-cluster-{kind}-{uuid.uuid4().hex[:10]}"


async def within(seconds: float, awaitable: Awaitable[T], what: str) -> T:
    """Await ``awaitable`` for at most ``seconds`` (a test must never hang)."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except asyncio.TimeoutError:
        raise AssertionError(f"{what} did not finish within {seconds} s") from None


async def eventually(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true within {timeout} s")
        await asyncio.sleep(0.02)


class Publisher:
    """Confirmed publishes of ``b"<id>"``, at most ``WINDOW`` unconfirmed; nacks sent again."""

    def __init__(self, client: AMQPClient, channel: RecoveringChannel, queue: str) -> None:
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
        self._room = asyncio.Event()

    def _send(self, i: int, attempt: int) -> None:
        future = self.channel.basic_publish("", self.queue, b"%d" % i, properties=PERSISTENT)
        future.add_done_callback(lambda f: self._settled(f, i, attempt))

    def _settled(self, future: asyncio.Future[Any], i: int, attempt: int) -> None:
        error = future.exception() if not future.cancelled() else asyncio.CancelledError()
        if error is None:
            self.confirmed.add(i)
            self.times.append((time.monotonic(), self.client.connections, i))
        elif isinstance(error, NackError) and attempt < 30:
            self.nacks += 1
            loop = asyncio.get_running_loop()
            loop.call_later(min(0.05 * 2**attempt, 2.0), self._send, i, attempt + 1)
            return
        else:
            self.failed.append((i, error))
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
                await asyncio.sleep(10 / RATE)
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
    conn = await within(30, connect(node.url()), "connect to declare")
    try:
        ch = await within(10, conn.channel(), "channel")
        await within(30, ch.queue_declare(queue, durable=True, arguments=QUORUM), "declare")
    finally:
        await within(15, conn.close(), "close")


async def delete_queue(cluster: Cluster, queue: str) -> None:
    for node in cluster.up():
        try:
            conn = await within(20, connect(node.url()), "cleanup connect")
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
    ("connection") or the queue's leader ("leader"), or put the connection's node in
    maintenance mode ("drain"); the node comes back while the publishing goes on."""
    first, _, leader = cluster.nodes
    queue = unique("q")
    name = unique("conn")
    await declare_quorum(leader, queue)
    assert await asyncio.to_thread(cluster.quorum_leader, queue) is leader
    client = AMQPClient(
        cluster.urls(f"connection_name={name}&heartbeat=5&stack_timeout=5", first=first),
        retry_policy=lambda attempt: 0.2,
        publish_timeout=120,
    )
    await within(30, client.start(), "start")
    try:
        publishing = await within(30, client.channel(), "channel")
        await within(30, publishing.confirm_delivery(), "confirm_delivery")
        consuming = await within(30, client.channel(), "channel")
        await within(30, consuming.basic_qos(prefetch_count=100), "basic_qos")
        collector = Collector()
        await within(30, consuming.basic_consume(queue, collector.on_message), "consume")
        assert await asyncio.to_thread(cluster.connection_node, name) is first

        publisher = Publisher(client, publishing, queue)
        restarted: list[bool] = []

        def ids() -> Iterator[int]:
            i = 0
            while i < COUNT or not restarted:
                yield i
                i += 1

        run = asyncio.ensure_future(publisher.run(ids()))
        await eventually(lambda: len(publisher.confirmed) >= COUNT // 5, 60, "first confirms")
        if victim_role == "drain":
            killed_at = time.monotonic()
            try:
                await within(90, asyncio.to_thread(cluster.drain, first), "drain")
            finally:  # never leave a node in maintenance mode for the next test
                await within(90, asyncio.to_thread(cluster.revive, first), "revive")
        else:
            victim = first if victim_role == "connection" else leader
            killed_at = await asyncio.to_thread(cluster.kill, victim)
            await within(90, asyncio.to_thread(cluster.start, victim), "restart the killed node")
        restarted.append(True)
        await within(180, run, "publishing")
        assert publisher.failed == [], publisher.failed[:5]
        if victim_role != "leader":
            # The first confirmed publish on another node (connection 2 onwards).
            gap = publisher.first_confirm_on_later_connection(1)
            holder = await asyncio.to_thread(cluster.connection_node, name)
            assert holder is not None
            assert holder is not first or client.connections > 2, "moved to another node"
        else:
            gap = publisher.first_confirm_issued_after(killed_at)
            assert client.connections == 1, "the client's node stayed up: no reconnect"
        assert gap is not None
        confirmed = publisher.confirmed
        await eventually(lambda: confirmed <= collector.seen.keys(), 120, "all consumed")
        return {
            "confirmed": len(confirmed),
            "kill_to_confirm": gap - killed_at,
            "duplicates": collector.duplicates,
            "nacks": publisher.nacks,
            "connections": client.connections,
        }
    finally:
        await within(30, client.stop(), "stop")
        await delete_queue(cluster, queue)


async def failover(cluster: Cluster, victim_role: str) -> None:
    rounds = [await failover_round(cluster, victim_role) for _ in range(kills())]
    gaps = [r["kill_to_confirm"] for r in rounds]
    print(
        f"\ntornado, {victim_role}: {len(rounds)} faults, fault -> first confirm "
        f"median {statistics.median(gaps):.2f} s (each {', '.join(f'{g:.2f}' for g in gaps)}), "
        f"duplicates per kill {[r['duplicates'] for r in rounds]}, "
        f"nacks {[r['nacks'] for r in rounds]}, confirmed {[r['confirmed'] for r in rounds]}, "
        f"connections {[r['connections'] for r in rounds]}"
    )


async def test_kill_the_connections_node_loses_no_confirmed_message(cluster: Cluster) -> None:
    await failover(cluster, "connection")


async def test_a_node_in_maintenance_mode_loses_no_confirmed_message(cluster: Cluster) -> None:
    await failover(cluster, "drain")


async def test_kill_the_quorum_leader_publishing_and_consuming_go_on(cluster: Cluster) -> None:
    await failover(cluster, "leader")
