"""``AMQPClient``: stays connected and recovers its channels, for Tornado and asyncio.

The loop (which node next, how long to back off, when to give up) is
:class:`~txamqp091.client.reconnecting.ReconnectingClient`, the same as
Twisted's ``AMQPClientService`` runs; this module supplies only the asyncio
half: a Future runtime on the loop and
:func:`~txamqp091.tornado.connect.connect_once`. Every new connection gets
every surviving channel back (topology, consumers, unconfirmed publishes).
Refused logins (403) stop the loop after ``max_auth_failures`` in a row, and
``failure`` says why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any

from ..client.reconnecting import ReconnectingClient
from ..client.recovery import RecoverySession
from ..exceptions import AMQPConnectionError, ConnectionWrongStateError
from ..params import ConnectionParameters, ParametersLike, normalize_parameters
from ..retry import RetryPolicy, backoff_policy
from .channel import Connection, RecoveringChannel, RecoveringConsumer
from .connect import Endpoint, connect_once
from .runtime import Clock, FutureRuntime

__all__ = ["AMQPClient", "RecoveringChannel", "RecoveringConsumer"]


class AMQPClient:
    """A long-running AMQP client: reconnects with backoff and recovers its channels.

    :param params_or_urls: parameters, a URL, or a list of either (cluster nodes:
        each reconnect goes to another node than the one that just failed).
    :param retry_policy: ``attempt -> seconds``; by default the first retry comes
        within a second and later ones back off to 30 s, with jitter.
    :param publish_timeout: how long an operation issued while disconnected waits
        for the next connection before failing with ``PublishTimeout``.
    :param clock: time and timers (``time()``, ``call_later()``) for backoff, timeouts
        and heartbeats; the loop when omitted. Tests inject one to move time by hand.
    :param endpoint: how to connect to a node (see :data:`~txamqp091.tornado.connect.Endpoint`);
        TCP and TLS when omitted.

    ::

        async with AMQPClient("amqp://guest:guest@localhost/") as client:
            channel = await client.channel()
            await channel.confirm_delivery()
            await channel.basic_publish("", "orders", b"...")   # survives reconnects
    """

    #: Refused logins (403 ACCESS_REFUSED) in a row before the client gives up.
    max_auth_failures = 3

    def __init__(
        self,
        params_or_urls: ParametersLike,
        retry_policy: RetryPolicy | None = None,
        publish_timeout: float | None = 30.0,
        *,
        clock: Clock | None = None,
        endpoint: Endpoint | None = None,
    ) -> None:
        self.nodes = normalize_parameters(params_or_urls)
        self.clock = clock
        self.endpoint = endpoint
        self.retry_policy = retry_policy or backoff_policy()
        self.publish_timeout = publish_timeout
        # Hooks (documented in docs/reference): ``f(connection)`` after each connect, ``f(reason)`` after each
        # disconnect, ``f(params, error)`` after each failed attempt, ``f(channel)``
        # once a channel has been recovered.
        self.on_connected: list[Callable[[Connection], Any]] = []
        self.on_disconnected: list[Callable[[BaseException | None], Any]] = []
        self.on_attempt_failed: list[Callable[[ConnectionParameters, BaseException], Any]] = []
        #: ``f(error)`` once the client has given up.
        self.on_gave_up: list[Callable[[BaseException], Any]] = []
        self.on_recovered: list[Callable[[RecoveringChannel], Any]] = []
        self._client: ReconnectingClient[asyncio.Future[Any]] | None = None
        self._session: RecoverySession[asyncio.Future[Any]] | None = None

    @property
    def connection(self) -> Connection | None:
        """The open connection, or None between connections."""
        conn: Connection | None = None if self._client is None else self._client.connection  # type: ignore[assignment]
        return conn

    @property
    def connections(self) -> int:
        """Connections made so far."""
        return 0 if self._client is None else self._client.connections

    @property
    def failure(self) -> BaseException | None:
        """Why the client gave up (a refused login), or None."""
        return None if self._client is None else self._client.failure

    @property
    def is_connected(self) -> bool:
        """Whether a connection is open right now."""
        return self._client is not None and self._client.is_connected

    def _require_session(self) -> RecoverySession[asyncio.Future[Any]]:
        if self._session is None:
            raise ConnectionWrongStateError("AMQPClient.start() has not been called")
        return self._session

    def _build(self) -> ReconnectingClient[asyncio.Future[Any]]:
        runtime = FutureRuntime(asyncio.get_running_loop(), self.clock)
        session: RecoverySession[asyncio.Future[Any]] = RecoverySession(
            runtime, self.publish_timeout
        )
        # The same lists: hooks added after start() are called too.
        session.on_channel_recovered = self.on_recovered  # type: ignore[assignment]
        client: ReconnectingClient[asyncio.Future[Any]] = ReconnectingClient(
            runtime,
            self.nodes,
            self._connect_once,
            _cancel,
            session,
            self.retry_policy,
        )
        client.on_connected = self.on_connected
        client.on_disconnected = self.on_disconnected
        client.on_attempt_failed = self.on_attempt_failed
        client.on_gave_up = self.on_gave_up
        self._session = session
        return client

    def _connect_once(self, params: ConnectionParameters) -> asyncio.Future[Any]:
        return asyncio.ensure_future(connect_once(params, clock=self.clock, endpoint=self.endpoint))

    async def start(self) -> None:
        """Start connecting; returns after the first attempt, connected or not (the client
        keeps trying in the background). After :meth:`stop`, starts again: the channels
        from before come back with the connection."""
        client = self._client
        if client is None:
            client = self._client = self._build()
        if client.running:
            return
        client.max_refusals = self.max_auth_failures
        await client.start()

    async def channel(self) -> RecoveringChannel:
        """A channel that survives reconnects (usable at once; operations wait for a connection)."""
        if self.failure is not None:
            raise AMQPConnectionError(f"the client gave up: {self.failure}") from self.failure
        channel: RecoveringChannel = await self._require_session().channel(RecoveringChannel)
        return channel

    async def when_connected(self, fail_after_failures: int | None = None) -> Connection:
        """The current connection (the next one while disconnected).

        Called before :meth:`start`, it waits for the connection ``start()`` will make,
        as Twisted's ``whenConnected`` does before ``startService``. Raises
        :attr:`failure` once the client has given up (a refused login),
        ``ConnectionWrongStateError`` after :meth:`stop`, and the last attempt's error
        after ``fail_after_failures`` failed attempts in a row."""
        client = self._client
        if client is None:
            # Built now, on the running loop, not started: start() finds it and runs it.
            client = self._client = self._build()
        conn: Connection = await client.when_connected(fail_after_failures)
        return conn

    async def stop(self) -> None:
        """Close the connection politely and stop reconnecting."""
        if self._client is not None:
            await self._client.stop()

    async def __aenter__(self) -> AMQPClient:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


def _cancel(attempt: asyncio.Future[Any]) -> None:
    attempt.cancel()
