"""The fake broker on Twisted: in memory on ``twisted.test.iosim``, or listening on a socket.

Built the way treq's ``StubTreq`` is: the two ends of a connection are
``iosim.FakeTransport`` objects and an ``iosim.IOPump`` carries bytes between them,
on a ``MemoryReactorClock``, so nothing touches the network or the real reactor.

* ``FakeBroker`` (a :class:`txamqp091.testing.FakeBroker` with a ``clock``) is also a
  Twisted ``Factory``: ``reactor.listenTCP(0, broker)`` serves it over real sockets
  (pass ``clock=reactor`` for broker heartbeats).
* :class:`Pump` is an ``IOPump`` between a client protocol and the broker side, over
  two :class:`MemoryTransport` objects (``FakeTransport`` with what an AMQP client's
  tests need of a socket besides: reading that pauses, an abort that drops unsent
  bytes and reads as a lost connection, and a pump that flushes itself on a real
  reactor).
* :class:`FakeEndpoint` gives the broker to code that takes an endpoint, and
  :func:`connect_pending` to code that takes a reactor: hand it a
  ``MemoryReactorClock``, then connect what it asked for to the broker.

:func:`txamqp091.twisted.testing.connected` builds on these to open a client
``Connection`` in one call.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.test import iosim
from zope.interface import implementer

from ._connection import BrokerConnection
from .broker import FakeBroker as SansIOBroker

__all__ = [
    "BROKER_ADDRESS",
    "CLIENT_ADDRESS",
    "BrokerProtocol",
    "FakeBroker",
    "FakeEndpoint",
    "MemoryTransport",
    "Pump",
    "connect_pending",
]

T = TypeVar("T")

CLIENT_ADDRESS = IPv4Address("TCP", "127.0.0.1", 40000)
BROKER_ADDRESS = IPv4Address("TCP", "127.0.0.1", 5672)


class BrokerProtocol(BrokerConnection, Protocol):
    """A :class:`~txamqp091.testing.BrokerConnection` that is a Twisted ``Protocol``."""

    #: Runs the broker's heartbeats (a :class:`Pump` sets it to its own clock).
    clock: IReactorTime | None = None
    _closing = False

    def connectionMade(self) -> None:
        self.on_output = self._flush
        if self.clock is not None:
            self.call_later = self.clock.callLater
        self._closing = False
        self.connection_made()

    def dataReceived(self, data: bytes) -> None:
        self.receive_data(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.connection_lost()

    def _flush(self) -> None:
        transport = self.transport
        if transport is None or self._closing:
            return
        data = self.data_to_send()
        if data:
            transport.write(data)
        if self.close_requested or self.abort_requested:
            self._closing = True
            transport.loseConnection()


class FakeBroker(SansIOBroker, Factory):
    """:class:`txamqp091.testing.FakeBroker` as a Twisted ``Factory`` of :class:`BrokerProtocol`.

    The other parameters are :class:`txamqp091.testing.FakeBroker`'s.

    :param clock: sends the broker's heartbeats; None means none are sent.
    """

    def __init__(self, *, clock: IReactorTime | None = None, **settings: Any) -> None:
        super().__init__(**settings)
        self.clock = clock

    def connect(self) -> BrokerProtocol:
        protocol = BrokerProtocol(self)
        protocol.clock = self.clock
        return protocol

    def buildProtocol(self, addr: IAddress | None = None) -> BrokerProtocol:
        return self.connect()


class MemoryTransport(iosim.FakeTransport):
    """One end of an in-memory connection: an ``iosim.FakeTransport`` its :class:`Pump` carries.

    ``FakeTransport`` never stops reading and treats ``abortConnection`` as a polite
    close; a client's flow control and its handling of a cut connection need both,
    so this adds them. ``producerState`` is ``"paused"`` while the protocol has paused
    reading (the pump then holds incoming bytes back); ``aborted`` is set by
    ``abortConnection``, which drops what was not sent yet; ``value()`` is what was
    written and not yet carried (as on a ``StringTransport``). Writes, closes and
    resumed reading wake the pump.
    """

    def __init__(self, pump: Pump, protocol: IProtocol, is_server: bool) -> None:
        host, peer = (
            (BROKER_ADDRESS, CLIENT_ADDRESS) if is_server else (CLIENT_ADDRESS, BROKER_ADDRESS)
        )
        super().__init__(protocol, is_server, host, peer)
        self._pump = pump
        self.producerState = "producing"
        self.aborted = False

    def value(self) -> bytes:
        return b"".join(self.stream)

    def clear(self) -> None:
        self.stream = []

    def write(self, data: bytes) -> None:
        # Unlike FakeTransport, bytes written after loseConnection() still leave, as
        # from a socket that drains its buffer before the FIN; after an abort, nothing.
        if not self.aborted and not self._pump.disconnected:
            self.stream.append(data)
            self._pump._schedule()

    def loseConnection(self) -> None:
        self.disconnecting = True
        self._pump._schedule()

    def abortConnection(self) -> None:
        self.disconnecting = True
        self.aborted = True
        self.clear()
        self._pump._schedule()

    def pauseProducing(self) -> None:
        if self.producerState == "producing":
            self.producerState = "paused"

    def resumeProducing(self) -> None:
        if self.producerState == "paused":
            self.producerState = "producing"
            self._pump._schedule()


class Pump(iosim.IOPump):
    """An ``iosim.IOPump`` between a client protocol and the broker side of the connection.

    :param client: the client side (an :class:`~txamqp091.twisted.AMQPProtocol`).
    :param server: the broker side: a :class:`BrokerProtocol`, or any protocol
        that plays a broker (a misbehaving one, to test the client against it).
    :param clock: the clock both sides use. With a ``MemoryReactorClock`` (or any
        ``task.Clock``) call :meth:`flush` (or :meth:`result`, :meth:`advance`); on a
        real reactor the pump flushes itself one reactor turn after anything is written.

    Each turn (:meth:`pump`) is ``IOPump``'s, except that bytes for a client that
    paused reading wait, and an abort ends both sides at once with
    ``ConnectionLost`` (``ConnectionAborted`` on the side that aborted).
    """

    #: Give up (a livelock) after this many exchanges in one flush.
    max_rounds = 100_000

    def __init__(self, client: IProtocol, server: IProtocol, clock: IReactorTime) -> None:
        #: The connection has ended (both sides were told).
        self.disconnected = False
        self._flushing = False
        self._scheduled: IDelayedCall | None = None
        self.client_transport = MemoryTransport(self, client, is_server=False)
        self.server_transport = MemoryTransport(self, server, is_server=True)
        super().__init__(client, server, self.client_transport, self.server_transport, False, clock)
        self.client: IProtocol = client
        #: The broker side; typed loosely so tests reach a BrokerProtocol's helpers.
        self.server: Any = server
        self.clock: IReactorTime = clock
        if isinstance(server, BrokerProtocol):
            server.clock = clock  # its heartbeats run on the pump's clock

    def start(self) -> None:
        """Connect both sides (``makeConnection``); the client speaks first on the next flush."""
        self.server.makeConnection(self.server_transport)
        self.client.makeConnection(self.client_transport)

    # -- driving ----------------------------------------------------------------------------

    def flush(self, debug: bool = False, advanceClock: bool = True) -> bool:
        """Carry bytes both ways until both sides are quiet; True if anything moved.

        ``IOPump.flush`` with room for long exchanges (:attr:`max_rounds`, not 1000
        turns), and safe to call from inside a flush (it then does nothing)."""
        if self._flushing:
            return False
        self._flushing = True
        moved = False
        try:
            for _ in range(self.max_rounds):
                if not self.pump():
                    return moved
                moved = True
            raise AssertionError(f"no quiet point after {self.max_rounds} exchanges")
        finally:
            self._flushing = False

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward, flushing at every timer on the way."""
        clock = self.clock
        if not isinstance(clock, Clock):
            raise TypeError("advance() needs a task.Clock")
        target = clock.seconds() + seconds
        self.flush()
        for _ in range(self.max_rounds):
            due = [
                call.getTime()
                for call in clock.getDelayedCalls()
                if call.active() and call.getTime() <= target
            ]
            if not due:
                break
            clock.advance(max(0.0, min(due) - clock.seconds()))
            self.flush()
        clock.advance(max(0.0, target - clock.seconds()))
        self.flush()

    def result(self, waitable: Deferred[T] | Coroutine[Any, Any, T]) -> T:
        """Flush, then return what ``waitable`` fired with (raise what it failed with).

        :raises AssertionError: it has not fired even though both sides are quiet.
        """
        d: Deferred[T] = waitable if isinstance(waitable, Deferred) else ensureDeferred(waitable)
        self.flush()
        outcome: list[T | Failure] = []
        d.addBoth(outcome.append)
        if not outcome:
            raise AssertionError(f"{d!r} has no result once the client and the broker are quiet")
        result = outcome[0]
        if isinstance(result, Failure):
            result.raiseException()
        return result

    def disconnect(self, clean: bool = False) -> None:
        """End the connection under both sides, as a network failure (or a FIN) would."""
        if self.disconnected:
            return
        self._lose(ConnectionDone() if clean else ConnectionLost(), None)

    # -- internals ----------------------------------------------------------------------------

    def _schedule(self) -> None:
        if self._scheduled is None and not self._flushing and not self.disconnected:
            self._scheduled = self.clock.callLater(0, self._auto_flush)

    def _auto_flush(self) -> None:
        self._scheduled = None
        self.flush()

    def pump(self, debug: bool = False, advanceClock: bool = True) -> bool:
        """One turn: run the clock's due zero-delay calls, then carry what each side wrote
        (or report the end of the connection); True if anything happened."""
        if advanceClock and isinstance(self.clock, Clock):
            self.clock.advance(0)
        if self.disconnected:
            return False
        client_t, server_t = self.client_transport, self.server_transport
        if client_t.aborted or server_t.aborted:
            aborter = client_t if client_t.aborted else server_t
            self._lose(ConnectionLost(), aborter)
            return True
        moved = False
        if client_t.stream:
            self.server.dataReceived(client_t.getOutBuffer())
            moved = True
        if server_t.stream and client_t.producerState == "producing":
            self.client.dataReceived(server_t.getOutBuffer())
            moved = True
        if moved:
            return True
        if (client_t.disconnecting or server_t.disconnecting) and not server_t.stream:
            self._lose(ConnectionDone(), None)
            return True
        return False

    def _lose(self, reason: Exception, aborter: MemoryTransport | None) -> None:
        self.disconnected = True
        self.client_transport.disconnected = self.server_transport.disconnected = True
        if self._scheduled is not None and self._scheduled.active():
            self._scheduled.cancel()
        self._scheduled = None
        self.client_transport.clear()
        self.server_transport.clear()
        client_reason = ConnectionAborted() if aborter is self.client_transport else reason
        server_reason = ConnectionAborted() if aborter is self.server_transport else reason
        self.server.connectionLost(Failure(server_reason))
        self.client.connectionLost(Failure(client_reason))


@implementer(IStreamClientEndpoint)
class FakeEndpoint:
    """A client endpoint whose every connection reaches ``broker`` through a new :class:`Pump`.

    :param broker: the broker to connect to.
    :param clock: the clock for the pumps (a ``task.Clock`` or the reactor).
    """

    def __init__(self, broker: FakeBroker, clock: IReactorTime) -> None:
        self.broker = broker
        self.clock = clock
        #: One pump per connection made, oldest first.
        self.pumps: list[Pump] = []

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        protocol = protocolFactory.buildProtocol(BROKER_ADDRESS)
        if protocol is None:
            return fail(ConnectionAborted("the factory built no protocol"))
        pump = Pump(protocol, self.broker.buildProtocol(CLIENT_ADDRESS), self.clock)
        self.pumps.append(pump)
        pump.start()
        return succeed(protocol)


def connect_pending(reactor: MemoryReactorClock, broker: FakeBroker) -> list[Pump]:
    """Connect to ``broker`` every connection ``reactor`` was asked for since the last call.

    For code that takes a reactor and dials for itself (``connect(reactor, url)``,
    an ``AMQPClientService`` without ``endpoint=``): give it a ``MemoryReactorClock``,
    which records each ``connectTCP`` / ``connectSSL`` instead of opening a socket,
    then call this (as treq's ``StubTreq`` does with the connection its agent asked
    for). Each recorded connection is taken off the reactor's list and gets a
    :class:`Pump` on ``reactor`` as its clock; TLS is not simulated, bytes pass as
    they are.

    :returns: the new pumps, oldest connection first.
    """
    pumps: list[Pump] = []
    for pending in (reactor.tcpClients, reactor.sslClients):
        while pending:
            host, port, factory = pending.pop(0)[:3]
            protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
            if protocol is None:
                continue
            pump = Pump(protocol, broker.buildProtocol(CLIENT_ADDRESS), reactor)
            pump.start()
            pumps.append(pump)
    return pumps
