"""``connect_once`` and ``connect``: the stack_timeout deadline and trying nodes in order."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import (
    IHostnameResolver,
    IHostResolution,
    IProtocol,
    IProtocolFactory,
    IReactorPluggableNameResolver,
    IStreamClientEndpoint,
)
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from zope.interface import alsoProvides, implementer

from tests.twisted_adapter.support import assert_no_result, failure_of, result_of
from txamqp091.core import spec
from txamqp091.core.testing import ServerFrames
from txamqp091.exceptions import AMQPConnectionError, ProbableAuthenticationError
from txamqp091.params import ConnectionParameters
from txamqp091.twisted import Connection, connect
from txamqp091.twisted.connect import connect_once
from txamqp091.twisted.testing import FakeBroker, FakeEndpoint

ADDRESS = IPv4Address("TCP", "127.0.0.1", 5672)


@implementer(IStreamClientEndpoint)
class SilentPeerEndpoint:
    """Connects at once to a ``StringTransport``: a peer that accepts TCP and never speaks."""

    def __init__(self) -> None:
        self.transport = StringTransport()
        self.protocol: IProtocol | None = None

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        protocol = protocolFactory.buildProtocol(ADDRESS)
        assert protocol is not None
        protocol.makeConnection(self.transport)
        self.protocol = protocol
        return succeed(protocol)


@implementer(IStreamClientEndpoint)
class HangingEndpoint:
    """A TCP connect that never completes (a black-holed SYN)."""

    def __init__(self) -> None:
        self.cancelled = False

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        def cancel(d: Deferred[IProtocol]) -> None:
            self.cancelled = True

        return Deferred(cancel)


def test_silent_peer_fails_after_stack_timeout_and_is_aborted() -> None:
    reactor = MemoryReactorClock()
    endpoint = SilentPeerEndpoint()
    d = connect_once(reactor, ConnectionParameters(stack_timeout=5), endpoint)
    assert endpoint.transport.value() == spec.PROTOCOL_HEADER
    reactor.advance(4.9)
    assert_no_result(d)
    reactor.advance(0.1)
    error = failure_of(d, AMQPConnectionError)
    assert "stack_timeout=5" in str(error)
    assert endpoint.transport.disconnected  # abortConnection, not a polite close


def test_peer_that_stops_mid_handshake_fails_after_stack_timeout() -> None:
    reactor = MemoryReactorClock()
    endpoint = SilentPeerEndpoint()
    d = connect_once(reactor, ConnectionParameters(stack_timeout=3), endpoint)
    assert endpoint.protocol is not None
    endpoint.protocol.dataReceived(ServerFrames().start())
    reactor.advance(3)
    failure_of(d, AMQPConnectionError)
    assert endpoint.transport.disconnected


def test_tcp_connect_that_never_completes_is_cancelled_at_stack_timeout() -> None:
    reactor = MemoryReactorClock()
    endpoint = HangingEndpoint()
    d = connect_once(reactor, ConnectionParameters(stack_timeout=2), endpoint)
    reactor.advance(2)
    failure_of(d, AMQPConnectionError)
    assert endpoint.cancelled


def test_a_handshake_in_time_is_not_touched_by_the_deadline() -> None:
    clock = Clock()
    endpoint = FakeEndpoint(FakeBroker(), clock)
    d = connect_once(clock, ConnectionParameters(stack_timeout=5), endpoint)
    (pump,) = endpoint.pumps
    pump.flush()
    conn = result_of(d)
    assert isinstance(conn, Connection) and conn.is_open
    pump.advance(60)
    assert conn.is_open


def test_refused_login_through_the_endpoint() -> None:
    clock = Clock()
    endpoint = FakeEndpoint(FakeBroker(users={"app": "secret"}), clock)
    d = connect_once(clock, ConnectionParameters(), endpoint)
    endpoint.pumps[0].flush()
    failure_of(d, ProbableAuthenticationError)


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        pass


@implementer(IHostnameResolver)
class _LoopbackResolver:
    """Every name is 127.0.0.1, at once: what MemoryReactor's own resolver does from
    Twisted 24 on."""

    def resolveHostName(
        self,
        resolutionReceiver: Any,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Any = None,
        transportSemantics: str = "TCP",
    ) -> _Resolution:
        resolution = _Resolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)
        resolutionReceiver.addressResolved(IPv4Address("TCP", "127.0.0.1", portNumber))
        resolutionReceiver.resolutionComplete()
        return resolution


def resolving_reactor() -> MemoryReactorClock:
    """A MemoryReactorClock that resolves names synchronously. Older Twisteds' (23.10,
    the oldest supported) has no resolver, so HostnameEndpoint would resolve in a thread
    that a memory reactor never runs."""
    reactor = MemoryReactorClock()
    if getattr(reactor, "nameResolver", None) is None:
        alsoProvides(reactor, IReactorPluggableNameResolver)
        reactor.nameResolver = _LoopbackResolver()  # type: ignore[attr-defined]
    return reactor


def answer_handshake(reactor: MemoryReactorClock, index: int) -> tuple[Any, StringTransport]:
    """Complete the ``index``-th TCP connect the reactor saw and bring up AMQP on it."""
    factory = reactor.tcpClients[index][2]
    protocol = factory.buildProtocol(ADDRESS)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(ServerFrames().handshake(heartbeat=0))
    return protocol, transport


def test_connect_tries_the_next_node_at_once() -> None:
    reactor = resolving_reactor()
    d = connect(
        reactor,
        [
            "amqp://guest:guest@node1:5672/?retry_delay=1",
            "amqp://guest:guest@node2:5673/?retry_delay=1",
        ],
    )
    reactor.advance(0)
    # MemoryReactor resolves every name to 127.0.0.1: the ports tell the nodes apart.
    assert reactor.tcpClients[0][:2] == ("127.0.0.1", 5672)
    reactor.tcpClients[0][2].clientConnectionFailed(
        reactor.connectors[0], Failure(ConnectionRefusedError())
    )
    reactor.advance(0.3)  # HostnameEndpoint notices the failed attempt
    # The next node of the same round at once: retry_delay separates rounds only.
    assert reactor.tcpClients[1][:2] == ("127.0.0.1", 5673)
    answer_handshake(reactor, 1)
    conn = result_of(d)
    assert conn.is_open and conn.params.host == "node2"


def test_connect_gives_up_after_the_last_node() -> None:
    reactor = resolving_reactor()
    d = connect(reactor, ["amqp://node1/?retry_delay=0", "amqp://node2/?retry_delay=0"])
    for index in range(2):
        reactor.advance(0)
        reactor.tcpClients[index][2].clientConnectionFailed(
            reactor.connectors[index], Failure(ConnectionRefusedError())
        )
        reactor.advance(0.3)
    error = failure_of(d, AMQPConnectionError)
    assert "node1:5672" in str(error) and "node2:5672" in str(error)
