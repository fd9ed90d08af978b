"""The shared client layer on its own: a hand-driven runtime, wired to the fake broker.

:class:`ManualRuntime` is the smallest :class:`~txamqp091.client.runtime.Runtime`: its
waiters are plain :class:`Waiter` objects, its clock moves only when a test says so,
and its transport hands bytes to a :class:`Wire`. A :class:`Wire` joins a
:class:`~txamqp091.client.connection.ConnectionLogic` to the broker side of a
:class:`~txamqp091.testing.FakeBroker` connection (both sans-IO) and moves bytes both
ways until both are quiet. No Twisted, no asyncio, no sockets: what these tests see is
what the shared client does, whatever adapter runs it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from txamqp091.client.connection import ConnectionLogic
from txamqp091.client.runtime import Runtime
from txamqp091.params import ConnectionParameters
from txamqp091.testing import BrokerConnection, FakeBroker


class Cancelled(Exception):
    """What a cancelled :class:`Waiter` fails with."""


class Waiter:
    """A pending result: done once, with a value or an error."""

    def __init__(self, canceller: Callable[[], None] | None = None) -> None:
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None
        self._canceller = canceller
        self._callbacks: list[Callable[[], None]] = []

    def settle(self, value: Any, error: BaseException | None) -> None:
        if self.done:
            return
        self.done, self.value, self.error = True, value, error
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def add_callback(self, callback: Callable[[], None]) -> None:
        if self.done:
            callback()
        else:
            self._callbacks.append(callback)

    def cancel(self) -> None:
        if not self.done:
            if self._canceller is not None:
                self._canceller()
            self.settle(None, Cancelled())


class Timer:
    def __init__(self, when: float, fn: Callable[[], None]) -> None:
        self.when = when
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualRuntime(Runtime[Waiter]):
    """Waiters, a clock moved by hand, and a transport that a :class:`Wire` empties."""

    def __init__(self) -> None:
        self.time = 0.0
        self.timers: list[Timer] = []
        self.soon: deque[Callable[[], None]] = deque()
        self.written = bytearray()
        #: None while the transport is up; False after a close, True after an abort.
        self.closed_with: bool | None = None
        self.reading_paused = False
        #: What user callbacks raised, in order.
        self.callback_errors: list[BaseException] = []
        self.logged: list[tuple[str, str]] = []

    # waiters
    def create_waiter(self, canceller: Callable[[], None] | None = None) -> Waiter:
        return Waiter(canceller)

    def resolve(self, waiter: Waiter, value: Any) -> None:
        waiter.settle(value, None)

    def reject(self, waiter: Waiter, error: BaseException) -> None:
        waiter.settle(None, error)

    def is_done(self, waiter: Waiter) -> bool:
        return waiter.done

    def add_done(self, waiter: Waiter, callback: Callable[[], None]) -> None:
        waiter.add_callback(callback)

    def on_result(
        self,
        waiter: Waiter,
        on_success: Callable[[Any], object],
        on_failure: Callable[[BaseException], object],
    ) -> None:
        def done() -> None:
            if waiter.error is None:
                on_success(waiter.value)
            else:
                on_failure(waiter.error)

        waiter.add_callback(done)

    observe = on_result

    # time
    def now(self) -> float:
        return self.time

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        timer = Timer(self.time + delay, fn)
        self.timers.append(timer)
        return timer

    def call_soon(self, fn: Callable[[], None]) -> None:
        self.soon.append(fn)

    def call_from_thread(self, fn: Callable[[], None]) -> None:
        self.soon.append(fn)

    def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Waiter:
        """No threads here: the "worker" runs ``fn`` on the next ``call_soon`` turn."""
        waiter = Waiter()

        def run() -> None:
            try:
                waiter.settle(fn(*args), None)
            except Exception as exc:
                waiter.settle(None, exc)

        self.soon.append(run)
        return waiter

    def next_timer(self) -> Timer | None:
        live = [t for t in self.timers if not t.cancelled]
        return min(live, key=lambda t: t.when) if live else None

    # the transport
    def write(self, data: bytes) -> None:
        if self.closed_with is None:
            self.written += data

    def close_transport(self, abort: bool = False) -> None:
        if self.closed_with is None:
            self.closed_with = abort

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False

    # user code
    def run_user_callback(
        self, fn: Callable[..., Any], *args: Any, delivery_tag: int | None = None
    ) -> None:
        try:
            fn(*args)
        except Exception as exc:
            self.callback_errors.append(exc)

    def log(self, level: str, message: str, **fields: Any) -> None:
        self.logged.append((level, message.format(**fields) if fields else message))


class Wire:
    """A client :class:`ConnectionLogic` joined to a fake broker connection in memory.

    :meth:`flush` moves bytes both ways (running ``call_soon`` work first) until both
    sides are quiet; :meth:`result` flushes and returns a waiter's value (raising its
    error); :meth:`advance` moves the clock, running each timer that comes due.
    """

    def __init__(self, broker: FakeBroker, params: ConnectionParameters | None = None) -> None:
        self.broker = broker
        self.runtime = ManualRuntime()
        self.client: ConnectionLogic[Waiter] = ConnectionLogic(
            params or ConnectionParameters(), self.runtime
        )
        self.server: BrokerConnection = broker.connect()
        self.lost = False
        self.server.connection_made()
        self.client.connection_made()

    def flush(self) -> None:
        runtime, server = self.runtime, self.server
        for _ in range(10_000):
            moved = False
            while runtime.soon:
                runtime.soon.popleft()()
                moved = True
            if runtime.written and not self.lost:
                data = bytes(runtime.written)
                runtime.written.clear()
                server.receive_data(data)
                moved = True
            if not runtime.reading_paused and not self.lost:
                data = server.data_to_send()
                if data:
                    self.client.data_received(data)
                    moved = True
            if not self.lost and (
                server.close_requested or server.abort_requested or runtime.closed_with is not None
            ):
                self.disconnect()
                moved = True
            if not moved:
                return
        raise AssertionError("no quiet point")

    def disconnect(self, reason: str = "connection lost") -> None:
        """The transport ends under both sides."""
        if not self.lost:
            self.lost = True
            self.server.connection_lost()
            self.client.connection_lost(reason)

    def result(self, waiter: Waiter) -> Any:
        self.flush()
        assert waiter.done, "the waiter has no result once both sides are quiet"
        if waiter.error is not None:
            raise waiter.error
        return waiter.value

    def error(self, waiter: Waiter) -> BaseException:
        self.flush()
        assert waiter.done and waiter.error is not None, (waiter.value, waiter.error)
        return waiter.error

    def advance(self, seconds: float) -> None:
        runtime = self.runtime
        target = runtime.time + seconds
        self.flush()
        while (timer := runtime.next_timer()) is not None and timer.when <= target:
            runtime.time = max(runtime.time, timer.when)
            timer.cancelled = True
            timer.fn()
            self.flush()
        runtime.time = target
        self.flush()
