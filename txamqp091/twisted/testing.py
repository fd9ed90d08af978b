"""Test code built on :mod:`txamqp091.twisted` without RabbitMQ (as ``treq.testing`` does for HTTP).

The broker is :mod:`txamqp091.testing` (sans-IO) with its Twisted shim
:mod:`txamqp091.testing.twisted`; this module re-exports them under the names
it always had and adds :func:`connected`.

:class:`FakeBroker` is an in-memory RabbitMQ virtual host: it performs the
handshake, opens channels, declares, binds, purges and deletes queues and
exchanges (direct, fanout, topic, headers, exchange-to-exchange), routes
publishes, delivers to consumers with QoS, takes acks, nacks and rejects
(requeueing), answers ``basic_get``, sends publisher confirms and returns,
runs transactions, and closes channels and connections with RabbitMQ's reply
codes. :func:`connected` opens a client :class:`~txamqp091.twisted.Connection`
to it over ``twisted.test.iosim`` transports driven by a :class:`Pump` on a
``MemoryReactorClock`` (as treq's ``StubTreq`` does for HTTP): nothing touches
the network or the reactor, and every test is deterministic.

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
reactor its pumps flush themselves, so ``async`` tests run unchanged. Code that
takes a reactor and dials for itself gets a ``MemoryReactorClock``; then
``connect_pending(reactor, broker)`` connects what it dialled to the broker. A
``FakeBroker`` is also a Twisted ``Factory``: ``reactor.listenTCP(0, broker)``
serves it over real sockets (pass ``clock=reactor`` for broker heartbeats).
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock

from ..params import ConnectionParameters, ParametersLike, normalize_parameters
from ..testing import (
    Binding,
    BrokerChannel,
    BrokerConnection,
    FakeExchange,
    FakeQueue,
    StoredMessage,
)
from ..testing.twisted import (
    CLIENT_ADDRESS,
    FakeBroker,
    FakeEndpoint,
    MemoryTransport,
    Pump,
    connect_pending,
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
    "connect_pending",
    "connected",
]


def connected(
    broker: FakeBroker,
    parameters: ParametersLike | None = None,
    clock: Clock | None = None,
) -> tuple[Connection, Pump]:
    """An open client :class:`~txamqp091.twisted.Connection` to ``broker``, and its pump.

    :param parameters: the client's parameters (the first, for a list); the
        default is ``ConnectionParameters()`` (guest/guest).
    :param clock: the clock for heartbeats and timeouts; a new ``MemoryReactorClock``
        (a ``task.Clock`` that is also a ``MemoryReactor``) if None.
    :raises Exception: what the handshake failed with (e.g.
        ``ProbableAuthenticationError`` when ``broker.users`` refuses the login).
    """
    params = ConnectionParameters() if parameters is None else normalize_parameters(parameters)[0]
    clock = MemoryReactorClock() if clock is None else clock  # type: ignore[no-untyped-call]
    protocol = AMQPProtocol(params, clock)
    pump = Pump(protocol, broker.buildProtocol(CLIENT_ADDRESS), clock)
    pump.start()
    return pump.result(protocol.ready), pump
