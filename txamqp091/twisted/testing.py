"""Test code built on :mod:`txamqp091.twisted` without RabbitMQ (as ``treq.testing`` does for HTTP).

:class:`FakeBroker` is an in-memory RabbitMQ virtual host: it performs the
handshake, opens channels, declares, binds, purges and deletes queues and
exchanges (direct, fanout, topic, headers, exchange-to-exchange), routes
publishes, delivers to consumers with QoS, takes acks, nacks and rejects
(requeueing), answers ``basic_get``, sends publisher confirms and returns,
runs transactions, and closes channels and connections with RabbitMQ's reply
codes. :func:`connected` opens a client :class:`~txamqp091.twisted.Connection`
to it over an in-memory transport driven by a :class:`Pump` on a
``task.Clock``: nothing touches the network or the reactor, and every test
is deterministic.

::

    from twisted.trial.unittest import SynchronousTestCase
    from txamqp091.twisted.testing import FakeBroker, connected

    class PublishTests(SynchronousTestCase):
        def test_round_trip(self) -> None:
            broker = FakeBroker()
            conn, pump = connected(broker)          # handshake done
            ch = pump.result(conn.channel())        # flush, then the Deferred's result
            ok = pump.result(ch.queue_declare("", exclusive=True))
            pump.result(ch.basic_publish("", ok.queue, b"hello"))
            self.assertEqual(broker.bodies(ok.queue), [b"hello"])

            consumer = pump.result(ch.basic_consume(ok.queue))
            message = pump.result(consumer.get())
            message.ack()
            pump.flush()
            self.assertEqual(broker.bodies(ok.queue), [])
            self.assertIsNone(pump.result(conn.close()))

:meth:`Pump.flush` moves bytes both ways (and runs the clock's zero-delay
calls) until both sides are quiet; :meth:`Pump.result` flushes and then
returns a Deferred's (or coroutine's) result like ``successResultOf``, raising
its failure; :meth:`Pump.advance` moves the clock forward step by step.
``successResultOf(d)`` after ``pump.flush()`` works just as well.

Act as the broker through ``pump.server`` (a :class:`BrokerConnection`):
``close()``, ``close_channel(1, 404, "NOT_FOUND - ...")``, ``block()`` /
``unblock()``, ``cancel_consumer(tag)``, ``drop()``, and ``hold_confirms``
with ``release_confirms()`` to test acks with ``multiple``. Seed and inspect
state with ``broker.declare_queue``, ``broker.publish``, ``broker.messages``
and ``broker.queues``.

:class:`FakeEndpoint` hands the broker to code that takes an endpoint
(``connect_once(reactor, params, FakeEndpoint(broker, reactor))``); on a real
reactor its pumps flush themselves, so ``async`` tests run unchanged. A
``FakeBroker`` is also a Twisted ``Factory``: ``reactor.listenTCP(0, broker)``
serves it over real sockets (pass ``clock=reactor`` for broker heartbeats).
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IDelayedCall,
    IProducer,
    IProtocol,
    IProtocolFactory,
    IPushProducer,
    IReactorTime,
    IStreamClientEndpoint,
    ITransport,
)
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface import implementer

from ..params import ConnectionParameters, ParametersLike, normalize_parameters
from ._brokerconnection import BrokerConnection
from ._fakebroker import (
    Binding,
    BrokerChannel,
    FakeBroker,
    FakeExchange,
    FakeQueue,
    StoredMessage,
)
from .channel import Connection
from .protocol import AMQPProtocol

__all__ = [
    "Binding",
    "BrokerChannel",
    "BrokerConnection",
    "FakeBroker",
    "FakeEndpoint",
    "FakeExchange",
    "FakeQueue",
    "MemoryTransport",
    "Pump",
    "StoredMessage",
    "connected",
]

T = TypeVar("T")

_CLIENT_ADDRESS = IPv4Address("TCP", "127.0.0.1", 40000)
_BROKER_ADDRESS = IPv4Address("TCP", "127.0.0.1", 5672)


@implementer(ITransport, IConsumer, IPushProducer)
class MemoryTransport:
    """One end of an in-memory connection; a :class:`Pump` carries what it is given.

    Like ``twisted.internet.testing.StringTransport`` it records its state for
    tests: ``producerState`` is ``"paused"`` while the protocol has paused
    reading (the pump then holds incoming bytes back), ``disconnecting`` after
    ``loseConnection`` and ``aborted`` after ``abortConnection``.
    """

    def __init__(self, pump: Pump, host: IAddress, peer: IAddress) -> None:
        self._pump = pump
        self._host = host
        self._peer = peer
        self._buffer: list[bytes] = []
        self.producer: IProducer | None = None
        self.streaming = False
        self.producerState = "producing"
        self.disconnecting = False
        self.aborted = False

    def value(self) -> bytes:
        """Bytes written and not yet carried to the peer."""
        return b"".join(self._buffer)

    def _take(self) -> bytes:
        data = b"".join(self._buffer)
        self._buffer.clear()
        return data

    # ITransport
    def write(self, data: bytes) -> None:
        if not self.aborted and not self._pump.disconnected:
            self._buffer.append(data)
            self._pump._schedule()

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        self.disconnecting = True
        self._pump._schedule()

    def abortConnection(self) -> None:
        self.aborted = self.disconnecting = True
        self._buffer.clear()
        self._pump._schedule()

    def getPeer(self) -> IAddress:
        return self._peer

    def getHost(self) -> IAddress:
        return self._host

    # IConsumer
    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        self.producer = producer
        self.streaming = streaming

    def unregisterProducer(self) -> None:
        self.producer = None

    # IPushProducer: the protocol pausing and resuming its reading
    def pauseProducing(self) -> None:
        if self.producerState == "producing":
            self.producerState = "paused"

    def resumeProducing(self) -> None:
        if self.producerState == "paused":
            self.producerState = "producing"
            self._pump._schedule()

    def stopProducing(self) -> None:
        self.producerState = "stopped"


class Pump:
    """Carries bytes between a client protocol and the broker side of the connection.

    :param client: the client side (an :class:`~txamqp091.twisted.AMQPProtocol`).
    :param server: the broker side: a :class:`BrokerConnection`, or any protocol
        that plays a broker (a misbehaving one, to test the client against it).
    :param clock: the clock both sides use. With a ``task.Clock`` call
        :meth:`flush` (or :meth:`result`, :meth:`advance`); on a real reactor
        the pump flushes itself one reactor turn after anything is written.
    """

    #: Give up (a livelock) after this many exchanges in one flush.
    max_rounds = 100_000

    def __init__(self, client: IProtocol, server: IProtocol, clock: IReactorTime) -> None:
        self.client = client
        #: The broker side; typed loosely so tests reach a BrokerConnection's helpers.
        self.server: Any = server
        self.clock = clock
        self.client_transport = MemoryTransport(self, _CLIENT_ADDRESS, _BROKER_ADDRESS)
        self.server_transport = MemoryTransport(self, _BROKER_ADDRESS, _CLIENT_ADDRESS)
        #: The connection has ended (both sides were told).
        self.disconnected = False
        self._flushing = False
        self._scheduled: IDelayedCall | None = None
        if isinstance(server, BrokerConnection):
            server.clock = clock  # its heartbeats run on the pump's clock

    def start(self) -> None:
        """Connect both sides (``makeConnection``); the client speaks first on the next flush."""
        self.server.makeConnection(self.server_transport)
        self.client.makeConnection(self.client_transport)

    # -- driving ----------------------------------------------------------------------------

    def flush(self) -> bool:
        """Carry bytes both ways until both sides are quiet; True if anything moved."""
        if self._flushing:
            return False
        self._flushing = True
        moved = False
        try:
            for _ in range(self.max_rounds):
                if isinstance(self.clock, Clock):
                    self.clock.advance(0)
                if not self._move():
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

    def _move(self) -> bool:
        if self.disconnected:
            return False
        client_t, server_t = self.client_transport, self.server_transport
        if client_t.aborted or server_t.aborted:
            aborter = client_t if client_t.aborted else server_t
            self._lose(ConnectionLost(), aborter)
            return True
        moved = False
        if client_t._buffer:
            self.server.dataReceived(client_t._take())
            moved = True
        if server_t._buffer and client_t.producerState == "producing":
            self.client.dataReceived(server_t._take())
            moved = True
        if moved:
            return True
        if client_t.disconnecting or server_t.disconnecting:
            if not server_t._buffer:
                self._lose(ConnectionDone(), None)
                return True
        return False

    def _lose(self, reason: Exception, aborter: MemoryTransport | None) -> None:
        self.disconnected = True
        if self._scheduled is not None and self._scheduled.active():
            self._scheduled.cancel()
        self._scheduled = None
        self.client_transport._buffer.clear()
        self.server_transport._buffer.clear()
        client_reason = ConnectionAborted() if aborter is self.client_transport else reason
        server_reason = ConnectionAborted() if aborter is self.server_transport else reason
        self.server.connectionLost(Failure(server_reason))  # type: ignore[no-untyped-call]
        self.client.connectionLost(Failure(client_reason))  # type: ignore[no-untyped-call]


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
        protocol = protocolFactory.buildProtocol(_BROKER_ADDRESS)
        if protocol is None:
            return fail(ConnectionAborted("the factory built no protocol"))
        pump = Pump(protocol, self.broker.buildProtocol(_CLIENT_ADDRESS), self.clock)
        self.pumps.append(pump)
        pump.start()
        return succeed(protocol)


def connected(
    broker: FakeBroker,
    parameters: ParametersLike | None = None,
    clock: Clock | None = None,
) -> tuple[Connection, Pump]:
    """An open client :class:`~txamqp091.twisted.Connection` to ``broker``, and its pump.

    :param parameters: the client's parameters (the first, for a list); the
        default is ``ConnectionParameters()`` (guest/guest).
    :param clock: the clock for heartbeats and timeouts; a new ``task.Clock`` if None.
    :raises Exception: what the handshake failed with (e.g.
        ``ProbableAuthenticationError`` when ``broker.users`` refuses the login).
    """
    params = ConnectionParameters() if parameters is None else normalize_parameters(parameters)[0]
    clock = Clock() if clock is None else clock
    protocol = AMQPProtocol(params, clock)
    pump = Pump(protocol, broker.buildProtocol(_CLIENT_ADDRESS), clock)
    pump.start()
    return pump.result(protocol.ready), pump
