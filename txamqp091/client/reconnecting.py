"""The loop of a long-running client, written once for both adapters.

:class:`ReconnectingClient` connects to a node, hands the connection to the
recovery session (which brings the surviving channels back), waits for the
connection to end, backs off and connects again, as :class:`~.reconnect.Reconnector`
decides. The adapter supplies only what is framework-specific: its
:class:`~.runtime.Runtime` (waiters and timers) and ``connect_once(params)``,
one TCP + TLS + AMQP bring-up returning a waiter of the open connection, plus
how to cancel such a waiter. Twisted's ``AMQPClientService`` and Tornado's
``AMQPClient`` are thin shells around it, so they back off, rotate nodes, log
and give up in the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol

from ..exceptions import AMQPConnectionError, ConnectionWrongStateError
from ..params import ConnectionParameters
from ..retry import RetryPolicy
from .connection import ConnectionLogic
from .reconnect import CONNECT_ERRORS, GiveUp, Reconnector, describe, is_refusal
from .runtime import Runtime, TimerHandle, W

__all__ = ["ReconnectingClient", "Session"]


class Session(Protocol):
    """What the loop tells the recovery session (``RecoverySession`` is one)."""

    stopping: bool

    def attach(self, conn: Any) -> None: ...

    def detach(self) -> None: ...

    def stop(self, error: BaseException) -> None: ...

    def halt(self, error: BaseException) -> None: ...


class ReconnectingClient(Generic[W]):
    """Stays connected to one of ``nodes``; see the module docstring.

    :param runtime: the adapter's waiters and timers.
    :param nodes: the cluster nodes; each reconnect goes to another node than the
        one that just failed.
    :param connect_once: one attempt at one node: a waiter of the open connection.
    :param cancel: cancels such a waiter (``stop()`` during an attempt).
    :param session: the recovery session that gets each new connection.
    :param retry_policy: ``attempt -> seconds`` (see :class:`~.reconnect.Reconnector`).
    """

    #: Explicit login refusals in a row before giving up (read at each ``start()``).
    max_refusals: int | None = 3
    #: Failed attempts in a row before giving up, ``None`` for never (read at ``start()``).
    max_attempts: int | None = None

    def __init__(
        self,
        runtime: Runtime[W],
        nodes: list[ConnectionParameters],
        connect_once: Callable[[ConnectionParameters], W],
        cancel: Callable[[W], None],
        session: Session,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self.runtime = runtime
        self.nodes = nodes
        self.retry_policy = retry_policy
        self.session = session
        self._connect_once = connect_once
        self._cancel = cancel
        self.reconnector: Reconnector[ConnectionParameters] = Reconnector(nodes, retry_policy)
        self.running = False
        self.stopped = False
        #: The open connection, or None between connections.
        self.connection: ConnectionLogic[W] | None = None
        #: Connections made so far.
        self.connections = 0
        #: Why the client gave up (a refused login, or ``max_attempts`` failures), or None.
        self.failure: BaseException | None = None
        #: Hooks: ``f(connection)`` after each connect, ``f(reason)`` after each
        #: disconnect, ``f(params, error)`` after each failed attempt, ``f(error)``
        #: once the client has given up.
        self.on_connected: list[Callable[[Any], Any]] = []
        self.on_disconnected: list[Callable[[BaseException | None], Any]] = []
        self.on_attempt_failed: list[Callable[[ConnectionParameters, BaseException], Any]] = []
        self.on_gave_up: list[Callable[[BaseException], Any]] = []
        self._timer: TimerHandle | None = None
        self._attempt: W | None = None
        self._waiters: list[tuple[W, int | None]] = []
        self._attempt_waiters: list[W] = []
        self._stop_waiters: list[W] = []

    @property
    def is_connected(self) -> bool:
        """Whether a connection is open right now."""
        return self.connection is not None and self.connection.is_open

    # -- what the adapter's shell calls --------------------------------------------------------

    def start(self) -> W:
        """Start connecting (again, after a ``stop()``: the surviving channels come back).
        The waiter fires (with None) once the first attempt has ended, connected or not."""
        attempted = self.runtime.create_waiter()
        if self.running:
            self.runtime.resolve(attempted, None)
            return attempted
        self._attempt_waiters.append(attempted)
        self.running = True
        self.stopped = False
        self.failure = None
        self.session.stopping = False
        self.reconnector = Reconnector(
            self.nodes,
            self.retry_policy,
            max_refusals=self.max_refusals,
            max_attempts=self.max_attempts,
        )
        self._try_next()
        return attempted

    def stop(self) -> W:
        """Stop reconnecting and close the connection politely; the waiter fires (with
        None) once it is closed. ``when_connected()`` waiters fail at once."""
        runtime = self.runtime
        was_running, self.running = self.running, False
        self.stopped = True
        stopped = ConnectionWrongStateError("the client was stopped")
        self.session.halt(stopped)
        self._cancel_pending()
        self._fail_waiters(self.failure or stopped)
        conn = self.connection
        if not was_running or conn is None or conn.is_closed:
            return runtime.succeeded(None)
        done = runtime.create_waiter()
        self._stop_waiters.append(done)
        if conn.is_open:
            runtime.on_result(conn.close(), lambda _: None, lambda _: None)
        return done

    def when_connected(self, fail_after_failures: int | None = None) -> W:
        """The open connection, or the next one. Fails once the client has given up
        (with why), has been stopped, or ``fail_after_failures`` attempts in a row failed."""
        runtime = self.runtime
        if self.failure is not None:
            return runtime.failed(self.failure)
        if self.stopped:
            return runtime.failed(ConnectionWrongStateError("the client was stopped"))
        if self.is_connected:
            return runtime.succeeded(self.connection)
        waiter = runtime.create_waiter()
        self._waiters.append((waiter, fail_after_failures))
        return waiter

    # -- the loop ------------------------------------------------------------------------------

    def _try_next(self) -> None:
        self._timer = None
        if not self.running:
            return
        params = self.reconnector.next_node()
        try:
            attempt = self._connect_once(params)
        except Exception as exc:  # found before any I/O: _failed tells a bug from the network
            self._failed(params, exc)
            return
        self._attempt = attempt
        self.runtime.on_result(
            attempt,
            lambda conn: self._connected(params, attempt, conn),
            lambda error: self._failed(params, error, attempt),
        )

    def _connected(self, params: ConnectionParameters, attempt: W, conn: Any) -> None:
        if self._attempt is attempt:
            self._attempt = None
        runtime = self.runtime
        if not self.running:
            runtime.on_result(conn.close(), lambda _: None, lambda _: None)
            return
        self.reconnector.connected()
        self.connection = conn
        self.connections += 1
        runtime.log(
            "info",
            "txamqp091: connected to {node} (connection {n})",
            node=describe(params),
            n=self.connections,
        )
        self.session.attach(conn)
        waiters, self._waiters = self._waiters, []
        for waiter, _ in waiters:
            runtime.resolve(waiter, conn)
        self._attempt_ended()
        for hook in self.on_connected:
            runtime.run_user_callback(hook, conn)
        # Last: a connection that is already gone reports it at once (Deferreds call back
        # synchronously), and its loss must come after its arrival.
        runtime.on_result(
            conn.closed,
            lambda reason: self._lost(params, conn, reason),
            lambda error: self._lost(params, conn, error),
        )

    def _failed(
        self, params: ConnectionParameters, error: BaseException, attempt: Any = None
    ) -> None:
        if attempt is not None and self._attempt is attempt:
            self._attempt = None
        if not self.running:
            return  # cancelled by stop()
        runtime = self.runtime
        for hook in self.on_attempt_failed:
            runtime.run_user_callback(hook, params, error)
        if not isinstance(error, CONNECT_ERRORS):
            # A bug, not the network: retrying would hide it.
            runtime.log(
                "critical",
                "txamqp091: connecting to {node} raised {error!r}; giving up",
                node=describe(params),
                error=error,
            )
            self._give_up(error)
            return
        decision = self.reconnector.failed(error)
        if is_refusal(error):
            runtime.log(
                "error",
                "txamqp091: {node} refused us ({n} in a row): {error}",
                node=describe(params),
                n=self.reconnector.refusals,
                error=error,
            )
        else:
            runtime.log(
                "info",
                "txamqp091: could not connect to {node}: {error}",
                node=describe(params),
                error=error,
            )
        failures = self.reconnector.failures
        keep: list[tuple[W, int | None]] = []
        for waiter, fail_after in self._waiters:
            if fail_after is not None and failures >= fail_after:
                runtime.reject(waiter, error)
            else:
                keep.append((waiter, fail_after))
        self._waiters = keep
        if isinstance(decision, GiveUp):
            runtime.log(
                "critical",
                "txamqp091: giving up after {reason}: {error}",
                reason=decision.reason,
                error=error,
            )
            self._give_up(error)
        else:
            self._attempt_ended()
            self._timer = runtime.call_later(decision.delay, self._try_next)

    def _lost(self, params: ConnectionParameters, conn: Any, reason: BaseException | None) -> None:
        if self.connection is not conn:
            return
        runtime = self.runtime
        self.connection = None
        self.session.detach()
        if self.running:
            runtime.log(
                "warn",
                "txamqp091: lost the connection to {node}: {reason}; reconnecting",
                node=describe(params),
                reason=reason,
            )
        else:
            runtime.log("info", "txamqp091: disconnected from {node}", node=describe(params))
        for hook in self.on_disconnected:
            runtime.run_user_callback(hook, reason)
        if self.running:
            self._timer = runtime.call_later(self.reconnector.lost().delay, self._try_next)
        stopped, self._stop_waiters = self._stop_waiters, []
        for waiter in stopped:
            runtime.resolve(waiter, None)

    def _give_up(self, error: BaseException) -> None:
        """Stop retrying what retrying will not fix, and say why."""
        self.failure = error
        self.running = False
        self.stopped = True
        self._cancel_pending()
        gave_up = AMQPConnectionError(f"the client gave up: {error}")
        gave_up.__cause__ = error
        self.session.stop(gave_up)
        self._fail_waiters(error)
        self._attempt_ended()
        for hook in self.on_gave_up:
            self.runtime.run_user_callback(hook, error)

    def _attempt_ended(self) -> None:
        waiters, self._attempt_waiters = self._attempt_waiters, []
        for waiter in waiters:
            self.runtime.resolve(waiter, None)

    def _fail_waiters(self, error: BaseException) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter, _ in waiters:
            self.runtime.reject(waiter, error)
        self._attempt_ended()

    def _cancel_pending(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        attempt, self._attempt = self._attempt, None
        if attempt is not None:
            self._cancel(attempt)
