"""Futures, the loop's clock and threads: the asyncio half of the client runtime
that does not need a transport (surviving channels use it across connections)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from ..client.runtime import Runtime, TimerHandle, for_delivery
from ..message import Message

__all__ = ["Clock", "FutureRuntime", "observe_quietly"]


class Clock(Protocol):
    """Time and timers, as an asyncio loop gives them (``loop.time``,
    ``loop.call_later``): injected by tests to move time by hand."""

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle: ...


logger = logging.getLogger("txamqp091.tornado")

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "failure": logging.ERROR,
}


def observe_quietly(future: asyncio.Future[Any]) -> None:
    """Mark an internal future's exception as retrieved, so asyncio does not log it."""
    if not future.cancelled():
        future.exception()


_current_task = asyncio.current_task


def _all_deliveries(events: list[Any]) -> bool:
    for event in events:
        if type(event) is not Message:
            return False
    return True


def _ready_queue(loop: asyncio.AbstractEventLoop) -> Any:
    """The loop's queue of callbacks for its next turn, where CPython's asyncio keeps it
    (``BaseEventLoop._ready``, a deque of ``Handle``); None elsewhere (uvloop)."""
    ready = getattr(loop, "_ready", None)
    if (
        isinstance(ready, deque)
        and isinstance(getattr(loop, "_stopping", None), bool)
        and isinstance(getattr(loop, "_debug", None), bool)
        and hasattr(asyncio.Handle, "_run")
    ):
        return ready
    return None


class FutureRuntime(Runtime[asyncio.Future[Any]]):
    """Waiters are asyncio Futures of ``loop`` (the running loop when omitted); time and
    timers come from ``clock`` (the loop when omitted)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop | None = None, clock: Clock | None = None
    ) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self.clock: Clock = clock if clock is not None else self._loop
        self._loop_thread = threading.get_ident()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._ready = _ready_queue(self._loop)

    # -- Runtime ---------------------------------------------------------------------------------

    def dispatch_read(self, dispatch: Callable[[list[Any]], None], events: list[Any]) -> None:
        """Dispatch one read's ``events``, then run at once the callbacks that settling
        its futures queued (a task waiting on ``consumer.get()``, a publish's done
        callbacks), when the loop's ready queue held nothing before the read.

        The loop would run exactly those callbacks on its next turn, in the same
        order, before whatever that turn's poll or timers add: running them here
        saves the turn (its poll, and the one more turn a flush scheduled by the
        resumed coroutine would take), and what they send leaves in the read's one
        write, as on Twisted. An RPC reply's round trip waits for both turns.
        Anything already queued (the loop's order to keep), a stopping loop, a debug
        loop (which times each callback) or a running task (a test feeding bytes
        from a coroutine) leaves them to the loop. So does a read of anything but
        deliveries: a pipeline of confirmed publishes refills its window from the acks'
        callbacks, and those turns let several reads' acks share one write (run at once,
        each read of acks made its own write and the broker acked in smaller batches:
        three times the sendto and recvfrom calls).
        """
        ready = self._ready
        if ready is None or ready or not _all_deliveries(events):
            dispatch(events)
            return
        dispatch(events)
        count = len(ready)
        if not count:
            return
        loop: Any = self._loop
        if loop._stopping or loop._debug or _current_task(loop) is not None:
            return
        popleft = ready.popleft
        for _ in range(count):
            handle = popleft()
            if not handle._cancelled:
                handle._run()

    def create_waiter(self, canceller: Callable[[], None] | None = None) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self._loop.create_future()
        if canceller is not None:

            def on_done(f: asyncio.Future[Any]) -> None:
                if f.cancelled():
                    canceller()

            future.add_done_callback(on_done)
        return future

    def waiter_factory(self) -> Callable[[], asyncio.Future[Any]]:
        return self._loop.create_future

    def resolve(self, waiter: asyncio.Future[Any], value: Any) -> None:
        if not waiter.done():
            waiter.set_result(value)

    def resolve_all(self, waiters: list[asyncio.Future[Any]], value: Any) -> None:
        for waiter in waiters:  # resolve() inline: one call less per confirmed publish
            if not waiter.done():
                waiter.set_result(value)

    def reject(self, waiter: asyncio.Future[Any], error: BaseException) -> None:
        if not waiter.done():
            waiter.set_exception(error)

    def is_done(self, waiter: asyncio.Future[Any]) -> bool:
        return waiter.done()

    def try_resolve(self, waiter: asyncio.Future[Any], value: Any) -> bool:
        if waiter.done():
            return False
        waiter.set_result(value)
        return True

    def succeeded(self, value: Any) -> asyncio.Future[Any]:
        # As Runtime.succeeded, without its create_waiter and resolve calls: a publish
        # outside confirm mode and a get() of a buffered message return one each.
        future: asyncio.Future[Any] = self._loop.create_future()
        future.set_result(value)
        return future

    def add_done(self, waiter: asyncio.Future[Any], callback: Callable[[], None]) -> None:
        waiter.add_done_callback(lambda _: callback())

    def now(self) -> float:
        return self.clock.time()

    def call_later(self, delay: float, fn: Callable[[], None]) -> TimerHandle:
        return self.clock.call_later(delay, fn)

    def call_soon(self, fn: Callable[[], None]) -> None:
        self._loop.call_soon(fn)

    def on_result(
        self,
        waiter: asyncio.Future[Any],
        on_success: Callable[[Any], object],
        on_failure: Callable[[BaseException], object],
    ) -> None:
        def done(f: asyncio.Future[Any]) -> None:
            if f.cancelled():
                on_failure(asyncio.CancelledError())
                return
            error = f.exception()
            if error is None:
                on_success(f.result())
            else:
                on_failure(error)

        waiter.add_done_callback(done)

    def observe(
        self,
        waiter: asyncio.Future[Any],
        on_success: Callable[[Any], object],
        on_failure: Callable[[BaseException], object],
    ) -> None:
        # A future's callbacks never change what its other holders see; but looking at
        # the exception marks it retrieved, so keep it unretrieved for the user.
        def done(f: asyncio.Future[Any]) -> None:
            if f.cancelled():
                on_failure(asyncio.CancelledError())
            elif f._exception is None:
                on_success(f.result())
            else:
                on_failure(f._exception)

        waiter.add_done_callback(done)

    def in_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_thread

    def call_from_thread(self, fn: Callable[[], None]) -> None:
        self._loop.call_soon_threadsafe(fn)

    def run_user_callback(
        self, fn: Callable[..., Any], *args: Any, delivery_tag: int | None = None
    ) -> None:
        try:
            result = fn(*args)
        except Exception:
            logger.exception("user callback %r%s raised", fn, for_delivery(delivery_tag))
            return
        if result is None:  # a plain callback: isawaitable's ABC check costs more than it
            return
        if inspect.isawaitable(result):
            try:
                future = asyncio.ensure_future(result, loop=self._loop)
            except Exception:
                logger.exception(
                    "user callback %r%s returned an awaitable that failed",
                    fn,
                    for_delivery(delivery_tag),
                )
                return
            self._tasks.add(future)

            def done(f: asyncio.Future[Any]) -> None:
                self._tasks.discard(f)
                if f.cancelled():
                    return
                error = f.exception()
                if error is not None:
                    logger.error(
                        "user callback %r%s failed", fn, for_delivery(delivery_tag), exc_info=error
                    )

            future.add_done_callback(done)

    def run_blocking(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        return self._loop.run_in_executor(None, fn, *args)

    def log(self, level: str, message: str, **fields: Any) -> None:
        try:
            text = message.format(**fields)
        except (KeyError, IndexError, ValueError):
            text = f"{message} {fields!r}"
        logger.log(_LEVELS.get(level, logging.INFO), "%s", text)
