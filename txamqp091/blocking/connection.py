"""``BlockingConnection``: pika's blocking connection over the asyncio client, from any thread.

The AMQP work happens on the private loop thread (:mod:`._loop`) through the
public :mod:`txamqp091.tornado` API; this class only waits. What pika runs "inside"
the blocking calls (consumer callbacks, ``call_later`` timers, callbacks added with
``add_callback_threadsafe``) is queued on the connection's event queue and run by
whichever thread pumps it: ``process_data_events()``, ``start_consuming()``,
``consume()`` or ``sleep()``, as in pika.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import itertools
import math
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from .. import tornado
from ..exceptions import (
    AMQPConnectionError,
    ConnectionBlockedTimeout,
    ConnectionClosedByClient,
    ConnectionWrongStateError,
)
from ..params import ConnectionParameters, ParametersLike, normalize_parameters
from ..retry import RetryPolicy
from ._loop import LoopThread, loop_thread
from .channel import BlockingChannel
from .exceptions import CallTimeout, ReentrancyError
from .frames import ConnectionBlocked, ConnectionUnblocked, MethodFrame

__all__ = ["BlockingConnection"]

#: Un-run publishes (outside confirm mode) a connection lets pile up before a
#: publishing thread waits for the loop to catch up, and the level it waits for.
PIPELINE_HIGH = 2000
PIPELINE_LOW = 1000


def _noop() -> None:
    """An event that only wakes the thread pumping events (it re-checks its state)."""


class _Timer:
    """A ``call_later`` timer: armed on the loop, run by the pumping thread."""

    __slots__ = ("callback", "cancelled", "handle")

    def __init__(self, callback: Callable[[], Any]) -> None:
        self.callback = callback
        self.cancelled = False
        self.handle: asyncio.TimerHandle | None = None

    def __call__(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self.callback()


class BlockingConnection:
    """A connection to RabbitMQ with pika's ``BlockingConnection`` API, safe from any thread.

    :param parameters: :class:`~txamqp091.ConnectionParameters`, a URL, or a list of
        either (cluster nodes, tried in order); ``localhost`` when omitted.
    :param timeout: the deadline of every blocking call, in seconds (``None``: no
        deadline). Each method also takes ``timeout=`` to override it for one call;
        a call that overruns raises :class:`~txamqp091.blocking.exceptions.CallTimeout`.
    :param recover: reconnect after a lost connection and recover every channel
        (declarations, bindings, QoS, consumers, confirm mode) on the new one; a
        confirmed ``basic_publish`` then returns only once a broker acked it.
    :param retry_policy: with ``recover``: ``attempt -> seconds`` between reconnects.

    Connecting is bounded by the parameters' own ``stack_timeout``,
    ``connection_attempts`` and ``retry_delay``.
    """

    def __init__(
        self,
        parameters: ParametersLike | None = None,
        *,
        timeout: float | None = 30.0,
        recover: bool = False,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self._lt: LoopThread = loop_thread()
        self.timeout = timeout
        self._events: queue.SimpleQueue[Callable[[], Any]] = queue.SimpleQueue()
        #: ``.active`` is set in a thread while it runs this connection's callbacks.
        self._dispatch = threading.local()
        #: Why the connection ended (set in the loop thread), or None while it is up.
        self._closed_error: BaseException | None = None
        self._closed_by_client = False
        self._channels: weakref.WeakSet[BlockingChannel] = weakref.WeakSet()
        # Publishes outside confirm mode are pipelined: counted in when issued (any
        # thread; itertools.count is atomic) and out in the loop thread once handed
        # to the transport.
        self._issued = itertools.count(1)
        self._completed = 0
        self._flow = threading.Condition()
        self._flow_waiters = 0
        self._flow_target = 0
        #: pika's connection blocked / unblocked callbacks, and the timer that tears the
        #: connection down after ``blocked_connection_timeout`` (loop thread).
        self._on_blocked: list[Callable[[Any, MethodFrame], Any]] = []
        self._on_unblocked: list[Callable[[Any, MethodFrame], Any]] = []
        self._blocked_timer: asyncio.TimerHandle | None = None
        nodes = normalize_parameters(
            parameters if parameters is not None else ConnectionParameters()
        )
        bound = sum(p.connection_attempts * (p.stack_timeout + p.retry_delay) for p in nodes) + 5.0
        self._client: tornado.AMQPClient | None = None
        self._recovering = recover
        self._conn: tornado.Connection | None = None
        loop = self._lt.loop
        if recover:
            client = tornado.AMQPClient(nodes, retry_policy=retry_policy, publish_timeout=timeout)
            self._client = client
            client.on_connected.append(self._watch_blocked)
            self._lt.call(
                lambda: asyncio.ensure_future(self._start_client(client, bound), loop=loop),
                bound + 1.0,
                "connect",
            )
        else:
            conn: tornado.Connection = self._lt.call(
                lambda: asyncio.ensure_future(tornado.connect(nodes), loop=loop), bound, "connect"
            )
            self._conn = conn
            self._lt.submit(lambda: self._watch(conn))
        _open_connections.add(self)

    def _watch(self, conn: tornado.Connection) -> None:
        """Loop thread: follow the end of a plain connection and its blocked state."""
        conn.closed.add_done_callback(self._on_closed)
        self._watch_blocked(conn)

    def _watch_blocked(self, conn: tornado.Connection) -> None:
        conn.add_on_blocked_callback(functools.partial(self._on_blocked_changed, conn))
        if conn.is_blocked:  # blocked before we listened
            self._on_blocked_changed(conn, "")

    def _on_blocked_changed(self, conn: tornado.Connection, reason: str | None) -> None:
        """Loop thread: Connection.Blocked (``reason``) or Unblocked (None). The user's
        callbacks are queued for the pumping thread, as pika dispatches them."""
        put = self._events.put
        if reason is not None:
            frame = MethodFrame(0, ConnectionBlocked(reason))
            for callback in self._on_blocked:
                put(functools.partial(callback, self, frame))
            timeout = conn.params.blocked_connection_timeout
            if timeout is not None and self._client is None and self._blocked_timer is None:
                self._blocked_timer = self._lt.loop.call_later(
                    timeout, self._blocked_too_long, conn, timeout
                )
            return
        if self._blocked_timer is not None:
            self._blocked_timer.cancel()
            self._blocked_timer = None
        frame = MethodFrame(0, ConnectionUnblocked())
        for callback in self._on_unblocked:
            put(functools.partial(callback, self, frame))

    def _blocked_too_long(self, conn: tornado.Connection, timeout: float) -> None:
        """pika's ``blocked_connection_timeout``: the broker kept us blocked too long, so
        the connection is dropped and every call after raises ConnectionBlockedTimeout.
        (A recovering connection leaves it to each held publish's own timeout.)"""
        self._blocked_timer = None
        if conn.is_blocked and not conn.is_closed:
            error = ConnectionBlockedTimeout(
                f"the broker kept the connection blocked for {timeout} s"
            )
            conn._finish(error, abort=True)  # no Close handshake: the broker is not reading

    async def _start_client(self, client: tornado.AMQPClient, bound: float) -> None:
        await client.start()
        try:
            await asyncio.wait_for(client.when_connected(), bound)
        except BaseException:
            await client.stop()
            if client.failure is not None:
                raise AMQPConnectionError(f"the broker refused us: {client.failure}") from None
            raise AMQPConnectionError("could not connect to any node") from None

    def _on_closed(self, future: asyncio.Future[Any]) -> None:
        """The connection ended (loop thread): remember why and wake every pumping thread."""
        reason = future.result()
        self._closed_error = reason or ConnectionClosedByClient(200, "Normal shutdown")
        self._closed_by_client = reason is None
        self._events.put(_noop)
        with self._flow:
            self._flow.notify_all()

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<BlockingConnection {state} {self._conn or self._client!r}>"

    def __enter__(self) -> BlockingConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.is_open:
            self.close()

    # -- deadlines and calls -----------------------------------------------------------------

    def _deadline(self, timeout: float | None) -> float | None:
        t = self.timeout if timeout is None else timeout
        return None if t is None or math.isinf(t) else t

    def _call(
        self,
        start: Callable[[], Any],
        timeout: float | None,
        what: str,
        direct: bool = False,
        reply_from: Callable[[], Any] | None = None,
    ) -> Any:
        return self._lt.call(start, self._deadline(timeout), what, direct, reply_from)

    def _current(self) -> tornado.Connection | None:
        """The live tornado connection (loop thread), if there is one."""
        if self._client is not None:
            return self._client.connection
        return self._conn

    def _check_open(self) -> None:
        if self._closed_error is not None:
            raise ConnectionWrongStateError(f"the connection is closed: {self._closed_error}")

    # -- state ---------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        if self._client is not None:
            return self._closed_error is None
        return self._closed_error is None and self._conn is not None and self._conn.is_open

    @property
    def is_closed(self) -> bool:
        return not self.is_open

    @property
    def server_properties(self) -> dict[str, Any]:
        conn = self._conn if self._client is None else self._client.connection
        return conn.server_properties if conn is not None else {}

    def _capability(self, name: str) -> bool:
        capabilities = self.server_properties.get("capabilities", {})
        return bool(capabilities.get(name, False))

    @property
    def basic_nack_supported(self) -> bool:
        return self._capability("basic.nack")

    @property
    def consumer_cancel_notify_supported(self) -> bool:
        return self._capability("consumer_cancel_notify")

    @property
    def exchange_exchange_bindings_supported(self) -> bool:
        return self._capability("exchange_exchange_bindings")

    @property
    def publisher_confirms_supported(self) -> bool:
        return self._capability("publisher_confirms")

    # -- channels ------------------------------------------------------------------------------

    def channel(
        self, channel_number: int | None = None, *, timeout: float | None = None
    ) -> BlockingChannel:
        """Open a channel on the lowest free number, or on ``channel_number`` as pika
        does (``ChannelWrongStateError`` if that number is in use, ``ValueError`` if it
        is outside 1..``channel_max``). A recovering connection numbers its channels
        itself (a recovered channel may get another number), so it takes no number."""
        if channel_number is not None and self._client is not None:
            raise ValueError("channel_number: a recovering connection numbers channels itself")
        self._check_open()
        loop = self._lt.loop
        if self._client is not None:
            client = self._client
            inner = self._call(
                lambda: asyncio.ensure_future(client.channel(), loop=loop), timeout, "channel"
            )
        else:
            conn = self._conn
            assert conn is not None
            inner = self._call(lambda: conn.channel(channel_number), timeout, "channel")
        channel = BlockingChannel(self, inner)
        self._channels.add(channel)
        return channel

    # -- closing -------------------------------------------------------------------------------

    def close(
        self,
        reply_code: int = 200,
        reply_text: str = "Normal shutdown",
        *,
        timeout: float | None = None,
    ) -> None:
        """Close the connection (and so its channels); waits for the broker's Close-Ok."""
        if self._closed_error is not None:
            raise ConnectionWrongStateError(
                f"the connection is already closed: {self._closed_error}"
            )
        _open_connections.discard(self)
        for channel in list(self._channels):
            channel._forget_consumers()
        if self._client is not None:
            client = self._client
            loop = self._lt.loop
            self._call(lambda: asyncio.ensure_future(client.stop(), loop=loop), timeout, "close")
            self._closed_error = ConnectionClosedByClient(reply_code, reply_text)
            self._closed_by_client = True
            self._events.put(_noop)
        else:
            conn = self._conn
            assert conn is not None
            self._call(lambda: conn.close(reply_code, reply_text), timeout, "close")
            # _on_closed ran in the loop thread before the close future woke us.

    # -- events: run in the thread that pumps them -----------------------------------------------

    def _pump(self, wait: float | None) -> bool:
        """Run every queued event; when there is none, wait up to ``wait`` seconds
        (``None``: until one comes) for the first. Whether anything ran."""
        events = self._events
        try:
            if wait is not None and wait <= 0:
                item = events.get_nowait()
            else:
                item = events.get(True, wait)
        except queue.Empty:
            return False
        dispatch = self._dispatch
        dispatch.active = True
        try:
            item()
            get = events.get_nowait
            while True:
                try:
                    item = get()
                except queue.Empty:
                    return True
                item()
        finally:
            dispatch.active = False

    def _check_reentrancy(self, what: str) -> None:
        if getattr(self._dispatch, "active", False):
            raise ReentrancyError(
                f"{what} may not be called from a callback of the same connection"
            )

    def _raise_if_lost(self) -> None:
        error = self._closed_error
        if error is None and self._conn is not None and self._conn.is_closed:
            # Ended, but the loop has yet to run _on_closed (which says why): let it.
            self._lt.barrier(1.0)
            error = self._closed_error
        if error is not None and not self._closed_by_client:
            raise error

    def process_data_events(self, time_limit: float | None = 0) -> None:
        """Run the callbacks that are due (deliveries, timers, threadsafe callbacks).

        :param time_limit: with nothing due, wait at most this long for something;
            ``0`` returns at once, ``None`` waits until something runs.
        :raises: the error that ended the connection, if the broker or the network did.
        """
        self._raise_if_lost()
        self._pump(time_limit)
        self._raise_if_lost()

    def sleep(self, duration: float) -> None:
        """Sleep ``duration`` seconds while running the callbacks that come due."""
        deadline = time.monotonic() + duration
        while True:
            self._raise_if_lost()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._pump(remaining)

    def add_on_connection_blocked_callback(
        self, callback: Callable[[BlockingConnection, MethodFrame], Any]
    ) -> None:
        """``callback(connection, method_frame)`` when the broker blocks this connection
        (Connection.Blocked: a memory or disk alarm; ``method_frame.method.reason``
        says which). Runs in the thread that pumps events, as pika's. Publishes wait
        while blocked; with ``blocked_connection_timeout`` set in the parameters the
        connection is dropped after that long and calls raise ``ConnectionBlockedTimeout``."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        self._on_blocked.append(callback)

    def add_on_connection_unblocked_callback(
        self, callback: Callable[[BlockingConnection, MethodFrame], Any]
    ) -> None:
        """``callback(connection, method_frame)`` when the broker unblocks this connection
        (Connection.Unblocked); runs in the thread that pumps events."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        self._on_unblocked.append(callback)

    def add_callback_threadsafe(self, callback: Callable[[], Any]) -> None:
        """Run ``callback()`` in the thread that pumps this connection's events (the one in
        ``start_consuming()``, ``consume()``, ``process_data_events()`` or ``sleep()``)."""
        if self._closed_error is not None:
            raise ConnectionWrongStateError("add_callback_threadsafe: the connection is closed")
        self._events.put(callback)

    def call_later(self, delay: float, callback: Callable[[], Any]) -> object:
        """Run ``callback()`` after ``delay`` seconds, in the thread that pumps events;
        returns a handle for :meth:`remove_timeout`."""
        timer = _Timer(callback)
        loop = self._lt.loop
        put = self._events.put

        def arm() -> None:
            if not timer.cancelled:
                timer.handle = loop.call_later(delay, put, timer)

        self._lt.submit(arm)
        return timer

    def remove_timeout(self, timeout_id: object) -> None:
        """Cancel a :meth:`call_later` timer (nothing if it already ran)."""
        if not isinstance(timeout_id, _Timer):
            raise ValueError(f"timeout_id: not a call_later handle: {timeout_id!r}")
        timer = timeout_id
        timer.cancelled = True

        def disarm() -> None:
            if timer.handle is not None:
                timer.handle.cancel()

        self._lt.submit(disarm)

    def update_secret(self, new_secret: str, reason: str, *, timeout: float | None = None) -> None:
        """Connection.Update-Secret (a refreshed OAuth 2 token)."""
        self._check_open()
        conn = self._conn if self._client is None else self._client.connection
        if conn is None:
            raise ConnectionWrongStateError("update_secret: not connected")
        live = conn
        self._call(lambda: live.update_secret(new_secret, reason), timeout, "update_secret")

    # -- the publish pipeline ------------------------------------------------------------------

    def _issue(self, timeout: float | None) -> None:
        """Count one pipelined operation in; wait while too many are not run yet."""
        n = next(self._issued)
        if n - self._completed > PIPELINE_HIGH:
            self._wait_pipeline(n, timeout)

    def _wait_pipeline(self, n: int, timeout: float | None) -> None:
        limit = self._deadline(timeout)
        deadline = None if limit is None else time.monotonic() + limit
        target = n - PIPELINE_LOW
        with self._flow:
            self._flow_waiters += 1
            try:
                while self._completed < target and self._closed_error is None:
                    if self._flow_target == 0 or target < self._flow_target:
                        self._flow_target = target
                    if deadline is None:
                        self._flow.wait(0.5)
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise CallTimeout("basic_publish", limit)
                    self._flow.wait(min(remaining, 0.5))
            finally:
                self._flow_waiters -= 1
                if not self._flow_waiters:
                    self._flow_target = 0

    def _completed_one(self) -> None:
        """A pipelined operation ran (loop thread)."""
        self._completed += 1
        if self._flow_waiters and self._completed >= self._flow_target:
            with self._flow:
                self._flow_target = 0
                self._flow.notify_all()


#: Connections to close politely at exit, so that what a script published without
#: closing still leaves the process (pika writes synchronously; we write in the loop).
_open_connections: weakref.WeakSet[BlockingConnection] = weakref.WeakSet()


def _close_at_exit() -> None:
    for conn in list(_open_connections):
        if conn.is_open:
            try:
                conn.close(timeout=2.0)
            except Exception:  # exiting anyway: nothing left to tell
                pass


atexit.register(_close_at_exit)
