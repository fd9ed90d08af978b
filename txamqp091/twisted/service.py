"""``AMQPClientService``: an ``IService`` that stays connected and recovers channels.

The loop itself (which node next, how long to back off, when to give up) is
:class:`~txamqp091.client.reconnecting.ReconnectingClient`, shared with the
Tornado ``AMQPClient``; this module supplies only Twisted's half: a
``Deferred`` runtime on the reactor and :func:`~txamqp091.twisted.connect.connect_once`,
whose ``Deferred`` fires only once the AMQP handshake is done. A broker that
accepts TCP and then refuses us (or drops us mid-handshake, or keeps us past
``stack_timeout``) is a failed attempt that backs off like a refused TCP
connect, and its half-open transport is aborted.

It has ``ClientService``'s interface (``startService``, ``stopService``,
``whenConnected(failAfterFailures=None)``, ``running``) without its state
machine, which in Twisted 26.10 logs ``NoTransition`` for a drop during the
handshake. Each new connection is handed to a
:class:`~txamqp091.client.recovery.RecoverySession`, which brings every
surviving channel back (topology, consumers, unconfirmed publishes).
Authentication refusals (403) are not retried forever: after
``max_auth_failures`` in a row the service stops and says why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IStreamClientEndpoint

from ..client.reconnecting import ReconnectingClient
from ..client.recovery import RecoverySession
from ..params import ConnectionParameters, ParametersLike, normalize_parameters
from ..retry import RetryPolicy
from .channel import Connection, RecoveringChannel, RecoveringConsumer
from .connect import connect_once, endpoint_for
from .runtime import DeferredRuntime

__all__ = ["AMQPClientService", "RecoveringChannel", "RecoveringConsumer"]


class AMQPClientService(Service):
    """A long-running AMQP client: reconnects with backoff and recovers its channels.

    :param reactor: the reactor.
    :param params_or_urls: parameters, a URL, or a list of either (cluster nodes:
        each reconnect goes to another node than the one that just failed).
    :param retry_policy: ``attempt -> seconds``; by default the first retry comes
        within a second and later ones back off to 30 s, with jitter.
    :param publish_timeout: how long an operation issued while disconnected waits
        for the next connection before failing with ``PublishTimeout``.
    :param tls_options: Twisted TLS client options replacing those from ``ssl_options``.
    :param endpoint: ``params -> IStreamClientEndpoint``, replacing the TCP/TLS endpoint
        :func:`~txamqp091.twisted.connect.endpoint_for` builds (tests give an in-memory one).

    ``when_connected()`` (also ``whenConnected()``, ``ClientService``'s name) fires
    with the current :class:`Connection`; ``channel()`` fires with a
    :class:`RecoveringChannel` that survives reconnects.
    """

    #: Refused logins (403 ACCESS_REFUSED) in a row before the service gives up.
    max_auth_failures = 3

    def __init__(
        self,
        reactor: Any,
        params_or_urls: ParametersLike,
        retry_policy: RetryPolicy | None = None,
        publish_timeout: float | None = 30.0,
        tls_options: Any = None,
        *,
        endpoint: Callable[[ConnectionParameters], IStreamClientEndpoint] | None = None,
    ) -> None:
        self._reactor = reactor
        self._tls_options = tls_options
        self._endpoint = endpoint
        self.nodes = normalize_parameters(params_or_urls)
        self.runtime = DeferredRuntime(reactor)
        self.session: RecoverySession[Deferred[Any]] = RecoverySession(
            self.runtime, publish_timeout
        )
        self.client: ReconnectingClient[Deferred[Any]] = ReconnectingClient(
            self.runtime,
            self.nodes,
            self._connect_once,
            lambda attempt: attempt.cancel(),
            self.session,
            retry_policy,
        )
        # Hooks (documented in docs/reference): ``f(connection)`` after each connect, ``f(reason)`` after each
        # disconnect, ``f(params, error)`` after each failed attempt, ``f(channel)``
        # once a channel has been recovered.
        self.on_connected: list[Callable[[Connection], Any]] = self.client.on_connected
        self.on_disconnected = self.client.on_disconnected
        self.on_attempt_failed = self.client.on_attempt_failed
        #: ``f(error)`` once the service has given up (after the service has stopped).
        self.on_gave_up = self.client.on_gave_up
        self.on_recovered = self.session.on_channel_recovered
        self.client.on_gave_up.append(lambda error: Service.stopService(self))  # type: ignore[no-untyped-call]

    def _connect_once(self, params: ConnectionParameters) -> Deferred[Any]:
        reactor = self._reactor
        if self._endpoint is not None:
            endpoint = self._endpoint(params)
        else:
            endpoint = endpoint_for(reactor, params, self._tls_options)
        return connect_once(reactor, params, endpoint)

    @property
    def connection(self) -> Connection | None:
        """The open connection, or None between connections."""
        conn: Connection | None = self.client.connection  # type: ignore[assignment]
        return conn

    @property
    def connections(self) -> int:
        """Connections made so far."""
        return self.client.connections

    @property
    def failure(self) -> BaseException | None:
        """Why the service gave up (a refused login), or None."""
        return self.client.failure

    def channel(self) -> Deferred[RecoveringChannel]:
        """A channel that survives reconnects (usable at once; operations wait for a connection)."""
        return self.session.channel(RecoveringChannel)

    def when_connected(self, fail_after_failures: int | None = None) -> Deferred[Connection]:
        """Fires with the current :class:`Connection` (the next one while disconnected).

        Fails with :attr:`failure` once the service has given up (a refused login),
        with ``ConnectionWrongStateError`` once it is stopped, and with the last
        attempt's error after ``fail_after_failures`` failed attempts in a row."""
        return self.client.when_connected(fail_after_failures)

    def whenConnected(self, failAfterFailures: int | None = None) -> Deferred[Connection]:
        """``ClientService``'s name for :meth:`when_connected`."""
        return self.when_connected(failAfterFailures)

    def startService(self) -> None:
        """Start connecting (``IService``); the first attempt is made at once."""
        if self.running:
            return
        Service.startService(self)  # type: ignore[no-untyped-call]
        self.client.max_refusals = self.max_auth_failures
        self.client.start()  # its Deferred: the first attempt ended; nobody waits for it

    def stopService(self) -> Deferred[None]:
        """Close the connection politely, then stop reconnecting."""
        Service.stopService(self)  # type: ignore[no-untyped-call]
        stopped: Deferred[None] = self.client.stop()
        return stopped
