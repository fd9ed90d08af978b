"""``AMQPClient``: stays connected and recovers its channels, for Tornado and asyncio.

The same behaviour as Twisted's ``AMQPClientService``, with the same shared
bookkeeping (:mod:`txamqp091.client.recovery`): a loop connects to each node
in turn, backing off between failed attempts (a failed AMQP handshake counts as
one) with ``retry_policy``; every new connection gets every surviving channel
back (topology, consumers, unconfirmed publishes). Refused logins stop the
loop after ``max_auth_failures`` in a row, and ``failure`` says why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..client.reconnect import CONNECT_ERRORS, is_refusal
from ..client.recovery import RecoverySession
from ..exceptions import AMQPConnectionError, ConnectionWrongStateError
from ..params import ParametersLike, normalize_parameters
from ..retry import RetryPolicy, backoff_policy
from .channel import Connection, RecoveringChannel, RecoveringConsumer
from .connect import connect_once
from .runtime import FutureRuntime

__all__ = ["AMQPClient", "RecoveringChannel", "RecoveringConsumer"]

logger = logging.getLogger("txamqp091.tornado")


class AMQPClient:
    """A long-running AMQP client: reconnects with backoff and recovers its channels.

    :param params_or_urls: parameters, a URL, or a list of either (cluster nodes,
        tried in turn on every reconnect).
    :param retry_policy: ``attempt -> seconds``; by default the first retry comes
        within a second and later ones back off to 30 s, with jitter.
    :param publish_timeout: how long an operation issued while disconnected waits
        for the next connection before failing with ``PublishTimeout``.

    ::

        client = AMQPClient("amqp://guest:guest@localhost/")
        await client.start()
        channel = await client.channel()
        await channel.confirm_delivery()
        await channel.basic_publish("", "orders", b"...")   # survives reconnects
        await client.stop()
    """

    #: Refused logins (or vhost access) in a row before the client gives up.
    max_auth_failures = 3

    def __init__(
        self,
        params_or_urls: ParametersLike,
        retry_policy: RetryPolicy | None = None,
        publish_timeout: float | None = 30.0,
    ) -> None:
        self.nodes = normalize_parameters(params_or_urls)
        self.retry_policy = retry_policy or backoff_policy()
        self.publish_timeout = publish_timeout
        self.connection: Connection | None = None
        #: Why the client gave up (a refused login), or None.
        self.failure: BaseException | None = None
        self.connections = 0
        #: Hooks: ``f(connection)`` after each connect, ``f(reason)`` after each
        #: disconnect, ``f(channel)`` once a channel has been recovered.
        self.on_connected: list[Callable[[Connection], Any]] = []
        self.on_disconnected: list[Callable[[BaseException | None], Any]] = []
        self.on_recovered: list[Callable[[RecoveringChannel], Any]] = []
        self._runtime: FutureRuntime | None = None
        self._session: RecoverySession[asyncio.Future[Any]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._first_attempt = asyncio.Event()
        self._stopping = False

    @property
    def is_connected(self) -> bool:
        return self.connection is not None and self.connection.is_open

    def _require_session(self) -> RecoverySession[asyncio.Future[Any]]:
        if self._session is None:
            raise ConnectionWrongStateError("AMQPClient.start() has not been called")
        return self._session

    async def start(self) -> None:
        """Start connecting; returns after the first attempt, connected or not (the client
        keeps trying in the background)."""
        if self._task is not None:
            return
        self._stopping = False
        self.failure = None
        self._first_attempt.clear()
        if self._session is None:
            self._runtime = FutureRuntime(asyncio.get_running_loop())
            self._session = RecoverySession(self._runtime, self.publish_timeout)
            # The same list: hooks added after start() are called too.
            self._session.on_channel_recovered = self.on_recovered  # type: ignore[assignment]
        else:
            # Restarted after stop(): the channels from before come back with the connection.
            self._session.stopping = False
        self._task = asyncio.ensure_future(self._run())
        await self._first_attempt.wait()

    async def channel(self) -> RecoveringChannel:
        """A channel that survives reconnects (usable at once; operations wait for a connection)."""
        if self.failure is not None:
            raise AMQPConnectionError(f"the client gave up: {self.failure}")
        channel: RecoveringChannel = await self._require_session().channel(RecoveringChannel)
        return channel

    async def when_connected(self) -> Connection:
        """The current connection (the next one while disconnected)."""
        while True:
            if self.failure is not None:
                raise AMQPConnectionError(f"the client gave up: {self.failure}")
            if self._task is None:
                raise ConnectionWrongStateError("the client is not started (or was stopped)")
            conn = self.connection
            if conn is not None and conn.is_open:
                return conn
            self._connected.clear()
            await self._connected.wait()

    async def stop(self) -> None:
        """Close the connection politely and stop reconnecting."""
        self._stopping = True
        if self._session is not None:
            self._session.stopping = True
        conn = self.connection
        if conn is not None and conn.is_open:
            await conn.close()
        task, self._task = self._task, None
        self._connected.set()  # wake when_connected() waiters: they fail now
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        session = self._require_session()
        failures = 0
        auth_failures = 0
        index = 0
        while not self._stopping:
            params = self.nodes[index % len(self.nodes)]
            index += 1
            try:
                conn = await connect_once(params)
            except CONNECT_ERRORS as exc:
                if not is_refusal(exc):
                    failures += 1
                    logger.info("could not connect to %s:%s: %s", params.host, params.port, exc)
                    self._first_attempt.set()
                    if self._stopping:
                        return
                    await asyncio.sleep(self.retry_policy(failures))
                    continue
                auth_failures += 1
                failures += 1
                logger.error(
                    "%s:%s refused us (%d in a row): %s",
                    params.host,
                    params.port,
                    auth_failures,
                    exc,
                )
                if auth_failures >= self.max_auth_failures:
                    self._give_up(exc)
                    return
            else:
                failures = auth_failures = 0
                self.connection = conn
                self.connections += 1
                logger.info(
                    "connected to %s:%s (connection %d)", params.host, params.port, self.connections
                )
                session.attach(conn)
                self._connected.set()
                self._first_attempt.set()
                for hook in self.on_connected:
                    session.runtime.run_user_callback(hook, conn)
                reason = await conn.closed
                self.connection = None
                session.detach()
                if self._stopping:
                    logger.info("disconnected from %s:%s", params.host, params.port)
                else:
                    logger.warning(
                        "lost the connection to %s:%s: %s; reconnecting",
                        params.host,
                        params.port,
                        reason,
                    )
                for lost_hook in self.on_disconnected:
                    session.runtime.run_user_callback(lost_hook, reason)
                failures = 1
            self._first_attempt.set()
            if self._stopping:
                return
            await asyncio.sleep(self.retry_policy(failures))

    def _give_up(self, error: BaseException) -> None:
        """Stop retrying what retrying will not fix, and say why."""
        self.failure = error
        logger.critical("giving up after %d refused logins: %s", self.max_auth_failures, error)
        if self._session is not None:
            self._session.stop(AMQPConnectionError(f"the broker refused us: {error}"))
        self._first_attempt.set()
        self._connected.set()
