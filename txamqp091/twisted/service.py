"""``AMQPClientService``: a ``ClientService`` that stays connected and recovers channels.

Theory of operation. ``ClientService`` reconnects whenever its endpoint's
connection is lost, backing off between failed attempts. Our endpoint does
more than TCP: its ``connect()`` fires only once the AMQP handshake is done,
so a broker that accepts TCP and then refuses us (or drops us mid-handshake)
is a *failed attempt* that backs off like a refused TCP connect, and its
half-open transport is aborted.

The handshake happens behind a small relay protocol, and ClientService's
disconnect-watching proxy is put in front of our protocol only after it.
That is deliberate: in Twisted 26.10, ``ClientService`` has no transition for
a disconnect while it is still *connecting* (during ``prepareConnection``),
and logs an unhandled ``NoTransition`` error each time a broker drops a
connection mid-handshake. With the relay, a mid-handshake drop only fails the
endpoint's ``connect()``, which the state machine handles.

Each new connection is handed to a :class:`~txamqp091.client.recovery.RecoverySession`,
which brings every surviving channel back (topology, consumers, unconfirmed
publishes). Authentication and access refusals are not retried forever:
after ``max_auth_failures`` in a row the service stops and says why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.internet import ClientService
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import connectProtocol
from twisted.internet.interfaces import IAddress, IProtocol, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..client.reconnect import is_refusal
from ..client.recovery import RecoverySession
from ..exceptions import AMQPConnectionError
from ..params import ConnectionParameters, ParametersLike, normalize_parameters
from ..retry import RetryPolicy, backoff_policy
from .channel import Connection, RecoveringChannel, RecoveringConsumer
from .connect import endpoint_for
from .protocol import AMQPProtocol
from .runtime import DeferredRuntime

__all__ = ["AMQPClientService", "RecoveringChannel", "RecoveringConsumer"]

log = Logger()


class _Relay(Protocol):
    """Forwards the transport's calls to ``target``: our protocol during the handshake,
    ClientService's proxy (wrapping our protocol) after it."""

    def __init__(self, target: IProtocol) -> None:
        self.target = target

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        self.target.makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        self.target.dataReceived(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.target.connectionLost(reason)


@implementer(IStreamClientEndpoint)
class _HandshakeEndpoint:
    """Connects to the next node in turn and fires once the AMQP connection is open."""

    def __init__(
        self,
        service: AMQPClientService,
        reactor: Any,
        nodes: list[ConnectionParameters],
        tls_options: Any,
    ) -> None:
        self._service = service
        self._reactor = reactor
        self._nodes = nodes
        self._tls_options = tls_options
        self._next = 0

    def __repr__(self) -> str:
        hosts = ", ".join(f"{p.host}:{p.port}" for p in self._nodes)
        return f"<AMQP endpoint {hosts}>"

    def connect(self, factory: Any) -> Deferred[Any]:
        params = self._nodes[self._next % len(self._nodes)]
        self._next += 1
        reactor = self._reactor
        protocol = AMQPProtocol(params, reactor)
        relay = _Relay(protocol)
        endpoint = endpoint_for(reactor, params, self._tls_options)
        d: Deferred[Any] = connectProtocol(endpoint, relay)  # type: ignore[no-untyped-call]
        d.addCallback(lambda _: protocol.ready)
        d.addTimeout(params.stack_timeout, reactor)

        def handshaken(conn: Connection) -> Any:
            self._service._prepared = protocol
            proxy = factory.buildProtocol(None)
            # ClientService's proxy expects to have seen the transport (it uses it to
            # disconnect on stopService); give it the one the relay already holds.
            proxy._transport = relay.transport
            relay.target = proxy
            self._service._connection_made(protocol, params)
            return proxy

        def failed(failure: Failure) -> Failure:
            transport = relay.transport
            if transport is not None:
                transport.abortConnection()  # type: ignore[attr-defined]
            self._service._attempt_failed(params, failure)
            return failure

        d.addCallbacks(handshaken, failed)
        return d


class _PreparedFactory(Factory):
    """Hands ClientService the protocol whose handshake the endpoint just finished."""

    def __init__(self, service: AMQPClientService) -> None:
        self._service = service

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        return self._service._prepared


class AMQPClientService(ClientService):
    """A long-running AMQP client: reconnects with backoff and recovers its channels.

    :param reactor: the reactor.
    :param params_or_urls: parameters, a URL, or a list of either (cluster nodes,
        tried in turn on every reconnect).
    :param retry_policy: ``attempt -> seconds``; by default the first retry comes
        within a second and later ones back off to 30 s, with jitter.
    :param publish_timeout: how long an operation issued while disconnected waits
        for the next connection before failing with ``PublishTimeout``.
    :param tls_options: Twisted TLS client options replacing those from ``ssl_options``.

    ``whenConnected()`` fires with the current :class:`Connection`; ``channel()``
    fires with a :class:`RecoveringChannel` that survives reconnects.
    """

    #: Refused logins (or vhost access) in a row before the service gives up.
    max_auth_failures = 3

    def __init__(
        self,
        reactor: Any,
        params_or_urls: ParametersLike,
        retry_policy: RetryPolicy | None = None,
        publish_timeout: float | None = 30.0,
        tls_options: Any = None,
    ) -> None:
        self._reactor = reactor
        self.nodes = normalize_parameters(params_or_urls)
        self.runtime = DeferredRuntime(reactor)
        self.session: RecoverySession[Deferred[Any]] = RecoverySession(
            self.runtime, publish_timeout
        )
        self._prepared: AMQPProtocol | None = None
        self._auth_failures = 0
        self.connection: Connection | None = None
        self.failure: BaseException | None = None
        #: Hooks: ``f(connection)`` after each connect, ``f(reason)`` after each
        #: disconnect, ``f(channel)`` once a channel has been recovered.
        self.on_connected: list[Callable[[Connection], Any]] = []
        self.on_disconnected: list[Callable[[BaseException | None], Any]] = []
        self.on_recovered = self.session.on_channel_recovered
        self.connections = 0
        super().__init__(
            _HandshakeEndpoint(self, reactor, self.nodes, tls_options),
            _PreparedFactory(self),
            retryPolicy=retry_policy or backoff_policy(),
            clock=reactor,
        )

    def channel(self) -> Deferred[RecoveringChannel]:
        """A channel that survives reconnects (usable at once; operations wait for a connection)."""
        return self.session.channel(RecoveringChannel)

    def whenConnected(self, failAfterFailures: int | None = None) -> Deferred[Any]:
        """Fires with the current :class:`Connection` (the next one while disconnected).

        Fails with :attr:`failure` once the service has given up (a refused login),
        rather than with the ``CancelledError`` of a plain stop."""
        d: Deferred[Any] = super().whenConnected(failAfterFailures=failAfterFailures)

        def gave_up(failure: Failure) -> Failure:
            if self.failure is not None and isinstance(failure.value, defer.CancelledError):
                return Failure(self.failure)  # type: ignore[no-untyped-call]
            return failure

        return d.addCallbacks(lambda protocol: protocol.connection, gave_up)

    def startService(self) -> None:
        self.session.stopping = False
        self.failure = None
        self._auth_failures = 0
        super().startService()

    def stopService(self) -> Deferred[None]:
        """Close the connection politely, then stop reconnecting."""
        self.session.stopping = True
        conn = self.connection
        if conn is not None and conn.is_open:
            closing: Deferred[Any] = conn.close()
            return closing.addBoth(lambda _: super(AMQPClientService, self).stopService())
        return super().stopService()

    # -- from the endpoint -------------------------------------------------------------------

    def _connection_made(self, protocol: AMQPProtocol, params: ConnectionParameters) -> None:
        conn = protocol.connection
        self.connection = conn
        self.connections += 1
        self._auth_failures = 0
        log.info(
            "txamqp091: connected to {host}:{port} (connection {n})",
            host=params.host,
            port=params.port,
            n=self.connections,
        )
        conn.closed.addCallback(self._connection_lost, conn, params)
        self.session.attach(conn)
        for hook in self.on_connected:
            self.runtime.run_user_callback(hook, conn)

    def _connection_lost(
        self, reason: BaseException | None, conn: Connection, params: ConnectionParameters
    ) -> None:
        if self.connection is conn:
            self.connection = None
        self.session.detach()
        if self.session.stopping:
            log.info(
                "txamqp091: disconnected from {host}:{port}", host=params.host, port=params.port
            )
        else:
            log.warn(
                "txamqp091: lost the connection to {host}:{port}: {reason}; reconnecting",
                host=params.host,
                port=params.port,
                reason=reason,
            )
        for hook in self.on_disconnected:
            self.runtime.run_user_callback(hook, reason)

    def _attempt_failed(self, params: ConnectionParameters, failure: Failure) -> None:
        error = failure.value
        if is_refusal(error):
            self._auth_failures += 1
            log.error(
                "txamqp091: {host}:{port} refused us ({n} in a row): {error}",
                host=params.host,
                port=params.port,
                n=self._auth_failures,
                error=error,
            )
            if self._auth_failures >= self.max_auth_failures:
                self._reactor.callLater(0, self._give_up, error)
        else:
            log.info(
                "txamqp091: could not connect to {host}:{port}: {error}",
                host=params.host,
                port=params.port,
                error=error,
            )

    def _give_up(self, error: BaseException) -> None:
        """Stop retrying what retrying will not fix, and say why."""
        if not self.running:
            return
        self.failure = error
        log.critical(
            "txamqp091: giving up after {n} refused logins: {error}",
            n=self._auth_failures,
            error=error,
        )
        self.session.stop(AMQPConnectionError(f"the broker refused us: {error}"))
        defer.ensureDeferred(self._stop_quietly())

    async def _stop_quietly(self) -> None:
        await self.stopService()
