"""Failover across cluster nodes, the same scenario on both adapters' long-running clients.

Each node is a fake broker (:mod:`txamqp091.testing`): in memory on a ``task.Clock`` for
Twisted's ``AMQPClientService``, served on a loopback port for the Tornado ``AMQPClient``
(its timers on a manual clock). A node can refuse TCP (down), or play a scripted fault
as a cluster node does: ``booting`` (530, its vhost not up yet), ``maintenance`` (320,
being drained) or ``blocked`` (Connection.Blocked during the handshake, under an alarm).
All are ordinary failed attempts: the client backs off, moves on to the next node, never
gives up, and its surviving channel comes back on the node it lands on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.task import Clock
from zope.interface import implementer

from tests.manual_clock import ManualClock
from txamqp091 import ConnectionParameters
from txamqp091.exceptions import (
    AMQPConnectionError,
    ConnectionClosedByBroker,
    ConnectionWrongStateError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
)
from txamqp091.testing import FakeBroker
from txamqp091.testing.asyncio import FakeServer, serve
from txamqp091.testing.twisted import FakeBroker as TwistedFakeBroker
from txamqp091.testing.twisted import FakeEndpoint
from txamqp091.tornado import AMQPClient
from txamqp091.tornado import connect as tornado_connect
from txamqp091.tornado.connect import tcp_endpoint
from txamqp091.tornado.protocol import AMQPProtocol
from txamqp091.twisted import AMQPClientService
from txamqp091.twisted import connect as twisted_connect

pytestmark = pytest.mark.asyncio

NODES = ("node0", "node1", "node2")
STACK_TIMEOUT = 5.0
RETRY = 1.0


@implementer(IStreamClientEndpoint)
class RefusingEndpoint:
    """A node that is down: TCP refused."""

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[Any]:
        return fail(ConnectionRefusedError("connection refused"))


class Cluster:
    """Three nodes, one client; ``tried`` names the node of every attempt, in order."""

    brokers: dict[str, FakeBroker]
    client: Any

    def __init__(self) -> None:
        self.tried: list[str] = []
        self.failures: list[tuple[str, BaseException]] = []
        self.down: set[str] = set()

    def hook(self) -> None:
        self.client.on_attempt_failed.append(
            lambda params, error: self.failures.append((self.node_of(params), error))
        )

    def node_of(self, params: ConnectionParameters) -> str:
        raise NotImplementedError

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def stop_client(self) -> None:
        raise NotImplementedError

    async def advance(self, seconds: float) -> None:
        raise NotImplementedError

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        raise NotImplementedError

    @property
    def connected_to(self) -> str | None:
        conn = self.client.connection
        return None if conn is None or not conn.is_open else self.node_of(conn.params)

    async def channel(self) -> Any:
        raise NotImplementedError

    def connect(self, query: str) -> Any:
        """The one-shot ``connect()`` over the three nodes (``query``: URL options)."""
        raise NotImplementedError

    async def result(self, waitable: Any) -> Any:
        raise NotImplementedError

    async def error_of(self, waitable: Any) -> BaseException:
        """The error ``waitable`` failed with (it must have failed, or fail now)."""
        try:
            value = await self.result(waitable)
        except Exception as exc:
            return exc
        raise AssertionError(f"succeeded with {value!r}")


class TwistedCluster(Cluster):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.brokers = {name: TwistedFakeBroker(clock=self.clock) for name in NODES}
        self.endpoints = {name: FakeEndpoint(b, self.clock) for name, b in self.brokers.items()}

        def endpoint(params: ConnectionParameters) -> IStreamClientEndpoint:
            self.tried.append(params.host)
            if params.host in self.down:
                return RefusingEndpoint()
            return self.endpoints[params.host]

        self.endpoint = endpoint
        self.urls = [
            f"amqp://guest:guest@{n}/?heartbeat=0&stack_timeout={STACK_TIMEOUT}" for n in NODES
        ]
        self.client = AMQPClientService(
            self.clock, self.urls, retry_policy=lambda attempt: RETRY, endpoint=endpoint
        )
        self.hook()

    def node_of(self, params: ConnectionParameters) -> str:
        return params.host

    def _run(self, until: float) -> None:
        """Move the clock to ``until``, stopping at every call due on the way."""
        for _ in range(10_000):
            self.clock.advance(0)
            due = [c.getTime() for c in self.clock.getDelayedCalls() if c.active()]
            upcoming = [t for t in due if t <= until]
            if not upcoming:
                break
            self.clock.advance(max(0.0, min(upcoming) - self.clock.seconds()))
        self.clock.advance(max(0.0, until - self.clock.seconds()))
        self.clock.advance(0)

    async def start(self) -> None:
        self.client.startService()
        self._run(self.clock.seconds())

    async def stop(self) -> None:
        await self.stop_client()

    async def stop_client(self) -> None:
        if self.client.running:
            stopped = self.client.stopService()
            self._run(self.clock.seconds() + 1)
            assert stopped.called

    async def advance(self, seconds: float) -> None:
        self._run(self.clock.seconds() + seconds)

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        self._run(self.clock.seconds())
        assert predicate(), what

    async def channel(self) -> Any:
        return await self.result(self.client.channel())

    def connect(self, query: str) -> Any:
        urls = [f"{url}&{query}" for url in self.urls]
        d = twisted_connect(self.clock, urls, endpoint=self.endpoint)
        self._run(self.clock.seconds())
        return d

    async def result(self, waitable: Any) -> Any:
        d = Deferred.fromCoroutine(waitable) if asyncio.iscoroutine(waitable) else waitable
        self._run(self.clock.seconds())
        results: list[Any] = []
        d.addBoth(results.append)
        assert results, "no result yet"
        if isinstance(results[0], BaseException) or hasattr(results[0], "raiseException"):
            results[0].raiseException()
        return results[0]


class AsyncioCluster(Cluster):
    servers: dict[str, FakeServer]

    async def open(self) -> None:
        self.clock = ManualClock()
        self.servers = {}
        for name in NODES:
            self.servers[name] = await serve(FakeBroker())
        self.brokers = {name: server.broker for name, server in self.servers.items()}
        self.names = {server.port: name for name, server in self.servers.items()}

        async def endpoint(params: ConnectionParameters, protocol: AMQPProtocol) -> None:
            name = self.node_of(params)
            self.tried.append(name)
            if name in self.down:
                raise ConnectionRefusedError("connection refused")
            await tcp_endpoint(params, protocol)

        self.endpoint = endpoint
        self.client = AMQPClient(
            [server.url(f"stack_timeout={STACK_TIMEOUT}") for server in self.servers.values()],
            retry_policy=lambda attempt: RETRY,
            clock=self.clock,
            endpoint=endpoint,
        )
        self.hook()

    def node_of(self, params: ConnectionParameters) -> str:
        return self.names[params.port]

    async def start(self) -> None:
        await asyncio.wait_for(self.client.start(), 5)

    async def stop(self) -> None:
        await self.stop_client()
        for server in self.servers.values():
            await server.close()

    async def stop_client(self) -> None:
        await asyncio.wait_for(self.client.stop(), 5)

    async def settle(self) -> None:
        for _ in range(3):
            await asyncio.sleep(0.01)

    async def advance(self, seconds: float) -> None:
        await self.settle()
        self.clock.advance(seconds)
        await self.settle()

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 5
        while not predicate():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.005)

    async def channel(self) -> Any:
        return await self.result(self.client.channel())

    def connect(self, query: str) -> Any:
        urls = [s.url(f"stack_timeout={STACK_TIMEOUT}&{query}") for s in self.servers.values()]
        return asyncio.ensure_future(
            tornado_connect(urls, clock=self.clock, endpoint=self.endpoint)
        )

    async def result(self, waitable: Any) -> Any:
        return await asyncio.wait_for(waitable, 5)


@pytest_asyncio.fixture(params=["twisted", "asyncio"])
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    made: Cluster
    if request.param == "twisted":
        made = TwistedCluster()
    else:
        made = AsyncioCluster()
        await made.open()
    yield made
    await made.stop()


async def test_reconnects_rotate_through_the_nodes_and_node_trouble_is_an_ordinary_failure(
    cluster: Cluster,
) -> None:
    await cluster.start()
    await cluster.until(lambda: cluster.connected_to == "node0", "connected to node0")
    ch = await cluster.channel()
    await cluster.result(ch.queue_declare("orders"))
    assert "orders" in cluster.brokers["node0"].queues

    # node0 is stopped; node1 is still booting, node2 is being drained, and node0, back,
    # is under a memory alarm and blocks us during the handshake.
    cluster.brokers["node1"].script("booting")
    cluster.brokers["node2"].script("maintenance")
    cluster.brokers["node0"].script("blocked")
    cluster.brokers["node0"].current.close()
    await cluster.until(lambda: cluster.connected_to is None, "node0 gone")

    await cluster.advance(RETRY)  # the first reconnect: another node than node0
    await cluster.until(lambda: len(cluster.failures) == 1, "node1 refused (booting)")
    await cluster.advance(RETRY)
    await cluster.until(lambda: len(cluster.failures) == 2, "node2 refused (maintenance)")
    await cluster.advance(RETRY)
    await cluster.until(lambda: len(cluster.tried) == 4, "node0 tried again")
    await cluster.advance(STACK_TIMEOUT - 0.01)
    assert len(cluster.failures) == 2  # blocked: the handshake waits...
    await cluster.advance(0.01)
    await cluster.until(lambda: len(cluster.failures) == 3, "node0 timed out (blocked)")
    await cluster.advance(RETRY)
    await cluster.until(lambda: cluster.connected_to == "node1", "connected to node1")

    assert cluster.tried == ["node0", "node1", "node2", "node0", "node1"]
    assert [node for node, _ in cluster.failures] == ["node1", "node2", "node0"]
    booting, drained, blocked = (error for _, error in cluster.failures)
    assert isinstance(booting, ProbableAccessDeniedError) and booting.reply_code == 530
    assert isinstance(drained, ConnectionClosedByBroker) and drained.reply_code == 320
    assert type(blocked) is AMQPConnectionError and "stack_timeout" in str(blocked)
    assert cluster.client.failure is None and cluster.client.connections == 2

    # The surviving channel came back on node1: its queue is declared there.
    await cluster.until(lambda: "orders" in cluster.brokers["node1"].queues, "topology replayed")
    await cluster.result(ch.basic_publish("", "orders", b"after the failover"))
    await cluster.until(
        lambda: cluster.brokers["node1"].bodies("orders") == [b"after the failover"],
        "published on node1",
    )


async def test_a_node_that_is_down_is_skipped_and_the_next_is_tried_after_one_backoff(
    cluster: Cluster,
) -> None:
    cluster.down.add("node0")
    await cluster.start()
    assert cluster.tried == ["node0"] and cluster.connected_to is None
    await cluster.advance(RETRY - 0.01)
    assert cluster.tried == ["node0"]
    await cluster.advance(0.01)
    await cluster.until(lambda: cluster.connected_to == "node1", "connected to node1")
    assert cluster.tried == ["node0", "node1"]
    assert isinstance(cluster.failures[0][1], ConnectionRefusedError | AMQPConnectionError)

    # node1 drops us: the reconnect goes to node2, not node1 again.
    cluster.brokers["node1"].current.drop()
    await cluster.until(lambda: cluster.connected_to is None, "node1 gone")
    await cluster.advance(RETRY)
    await cluster.until(lambda: cluster.connected_to == "node2", "connected to node2")
    assert cluster.tried == ["node0", "node1", "node2"]


async def test_after_stop_operations_fail_at_once_and_a_new_start_brings_the_channel_back(
    cluster: Cluster,
) -> None:
    await cluster.start()
    await cluster.until(lambda: cluster.connected_to == "node0", "connected to node0")
    ch = await cluster.channel()
    await cluster.result(ch.queue_declare("orders"))
    cluster.down.update(NODES)
    cluster.brokers["node0"].current.drop()
    await cluster.until(lambda: cluster.connected_to is None, "node0 gone")
    parked = ch.basic_publish("", "orders", b"parked during the outage")

    await cluster.stop_client()
    # What waited for a connection fails at once, not at publish_timeout (30 s).
    error = await cluster.error_of(parked)
    assert isinstance(error, ConnectionWrongStateError) and "stopped" in str(error)
    error = await cluster.error_of(ch.queue_declare("later"))
    assert isinstance(error, ConnectionWrongStateError) and "stopped" in str(error)

    # Started again: the same channel comes back, with its topology.
    cluster.down.clear()
    await cluster.start()
    await cluster.until(lambda: cluster.connected_to is not None, "connected again")
    node = cluster.connected_to
    assert node is not None
    await cluster.result(ch.basic_publish("", "orders", b"after the restart"))
    await cluster.until(
        lambda: cluster.brokers[node].bodies("orders") == [b"after the restart"],
        "published after the restart",
    )


async def test_three_refused_logins_in_a_row_give_up_whichever_nodes_refused(
    cluster: Cluster,
) -> None:
    for broker in cluster.brokers.values():
        broker.script(default="refuse-login")
    gave_up: list[BaseException] = []
    cluster.client.on_gave_up.append(gave_up.append)
    await cluster.start()
    waiting = cluster.client.when_connected()
    if asyncio.iscoroutine(waiting):
        waiting = asyncio.ensure_future(waiting)
    for _ in range(2):
        await cluster.advance(RETRY)
    await cluster.until(lambda: cluster.client.failure is not None, "gave up")
    assert cluster.tried == ["node0", "node1", "node2"]
    failure = cluster.client.failure
    assert isinstance(failure, ProbableAuthenticationError) and failure.reply_code == 403
    assert await cluster.error_of(waiting) is failure
    assert gave_up == [failure]
    assert await cluster.error_of(cluster.client.when_connected()) is failure
    await cluster.advance(100 * RETRY)
    assert len(cluster.tried) == 3  # no more attempts


async def test_connect_tries_each_node_once_per_round_and_chains_the_last_error(
    cluster: Cluster,
) -> None:
    cluster.brokers["node0"].script("booting", "booting")
    cluster.brokers["node1"].script("maintenance", "maintenance")
    cluster.down.add("node2")
    connecting = cluster.connect("connection_attempts=2&retry_delay=3")
    await cluster.until(lambda: len(cluster.tried) == 3, "the first round")
    await cluster.advance(2.99)
    assert cluster.tried == ["node0", "node1", "node2"]  # retry_delay between rounds
    await cluster.advance(0.01)
    error = await cluster.error_of(connecting)
    assert cluster.tried == ["node0", "node1", "node2"] * 2
    assert type(error) is AMQPConnectionError and str(error).startswith("could not connect")
    assert isinstance(error.__cause__, ConnectionRefusedError)  # node2's, the last attempt


async def test_connect_lands_on_the_first_node_that_answers(cluster: Cluster) -> None:
    cluster.brokers["node0"].script("booting")
    cluster.brokers["node1"].script("blocked")
    connecting = cluster.connect("connection_attempts=1")
    await cluster.until(lambda: len(cluster.tried) == 2, "node0 refused, node1 tried")
    await cluster.advance(STACK_TIMEOUT)  # node1 blocks the handshake until stack_timeout
    conn = await cluster.result(connecting)
    assert cluster.tried == ["node0", "node1", "node2"]
    assert cluster.node_of(conn.params) == "node2" and conn.is_open
    await cluster.result(conn.close())
