"""Futures, the loop's clock and threads: the asyncio half of the client runtime
that does not need a transport (surviving channels use it across connections)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import threading
import time
import types
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from ..client.runtime import Runtime, TimerHandle, for_delivery
from ..core._accel import install_settle_all, register_loop_thread
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


def _task_lookup() -> Callable[[asyncio.AbstractEventLoop], object]:
    """``asyncio.current_task`` without a Python frame: the C function where CPython has
    one (3.12+); before that, ``get`` of the dict it reads (``asyncio.tasks._current_tasks``,
    which the C tasks maintain); the function itself anywhere else."""
    current = asyncio.current_task
    if isinstance(current, types.BuiltinFunctionType):
        return current
    tasks = getattr(asyncio.tasks, "_current_tasks", None)
    if type(tasks) is dict:
        return tasks.get
    return current


_current_task = _task_lookup()


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


def _callbacks_visible(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the loop's futures show their done callbacks as CPython's do
    (``Future._callbacks``: a list of ``(callback, context)`` pairs) and let one be
    taken off again: then a read may resume the one task waiting on a future it
    settles without a loop Handle (see :meth:`FutureRuntime.try_resolve`)."""
    try:
        future = loop.create_future()

        def callback(_: object) -> None:
            return None

        future.add_done_callback(callback)
        seen = future._callbacks
        ok = (
            type(seen) is list
            and len(seen) == 1
            and type(seen[0]) is tuple
            and len(seen[0]) == 2
            and seen[0][0] is callback
            and isinstance(seen[0][1], contextvars.Context)
            and future.remove_done_callback(callback) == 1
            and not future._callbacks
        )
        future.cancel()
        return bool(ok)
    except Exception:
        return False


def _future_maker(loop: asyncio.AbstractEventLoop) -> Callable[[], asyncio.Future[Any]]:
    """``loop.create_future`` without its Python frame when it is asyncio's own
    (``Future(loop=loop)``); the loop's method otherwise (uvloop, a custom loop)."""
    if getattr(type(loop), "create_future", None) is asyncio.BaseEventLoop.create_future:
        return functools.partial(asyncio.Future, loop=loop)
    return loop.create_future


#: FutureRuntime.resolve_all's loop in C, for asyncio's own Future (None: the Python loop).
_c_settle_all = install_settle_all(asyncio.Future)


class FutureRuntime(Runtime[asyncio.Future[Any]]):
    """Waiters are asyncio Futures of ``loop`` (the running loop when omitted); time and
    timers come from ``clock`` (the loop when omitted)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop | None = None, clock: Clock | None = None
    ) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self.clock: Clock = clock if clock is not None else self._loop
        if self.clock is self._loop and (
            getattr(type(self._loop), "time", None) is asyncio.BaseEventLoop.time
        ):
            # What asyncio's loop.time() returns, without its frame and now()'s: once per read.
            self.now = time.monotonic  # type: ignore[method-assign]
        self._loop_thread = threading.get_ident()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._ready = _ready_queue(self._loop)
        self._new_future = _future_maker(self._loop)
        #: A read may resume a waiting task without a loop Handle (see try_resolve).
        self._can_wake = self._ready is not None and _callbacks_visible(self._loop)
        #: True while dispatch_read dispatches a read whose queued callbacks it runs itself.
        self._inline = False
        #: The one waiting task's wake-up a read's try_resolve took off its future, with
        #: that callback's context and the future: run by dispatch_read after the read.
        self._wake: (
            tuple[Callable[..., object], contextvars.Context, asyncio.Future[Any]] | None
        ) = None
        #: The Handle that runs the done callbacks resolve_all took off its futures, and
        #: its argument, the list of them (which grows while it is the last one queued).
        self._calls_handle: asyncio.Handle | None = None
        self._calls: list[tuple[Callable[..., object], Any, Any]] = []
        #: The one future succeeded(None) returns (a publish outside confirm mode, every
        #: RPC half): a done future cannot change (no result, callback or cancel reaches
        #: it), so one serves them all, without a Future made and freed per publish.
        self._done_none: asyncio.Future[Any] = self._new_future()
        self._done_none.set_result(None)

    # -- Runtime ---------------------------------------------------------------------------------

    def dispatch_read(self, dispatch: Callable[[list[Any]], None], events: list[Any]) -> None:
        """Dispatch one read's ``events``; a read of deliveries only as
        :meth:`dispatch_delivery` dispatches one. Anything else (a publisher's acks,
        replies, a delivery with them) leaves its callbacks to the loop: a pipeline of
        confirmed publishes refills its window from the acks' callbacks, and those
        turns let several reads' acks share one write (run at once, each read of acks
        made its own write and the broker acked in smaller batches: three times the
        sendto and recvfrom calls)."""
        if _all_deliveries(events):
            self.dispatch_delivery(dispatch, events)
        else:
            dispatch(events)

    def dispatch_delivery(self, deliver: Callable[[Any], None], message: Any) -> None:
        """Dispatch a read of deliveries (``deliver(message)``: a lone one, or the read's
        list), then run at once the callbacks that settling its futures queued (a task
        waiting on ``consumer.get()``, a publish's done callbacks), when the loop's
        ready queue held nothing before the read.

        The loop would run exactly those callbacks on its next turn, in the same
        order, before whatever that turn's poll or timers add: running them here
        saves the turn (its poll, and the one more turn a flush scheduled by the
        resumed coroutine would take), and what they send leaves in the read's one
        write, as on Twisted. An RPC reply's round trip waits for both turns.
        Anything already queued (the loop's order to keep), a stopping loop, a debug
        loop (which times each callback) or a running task (a test feeding bytes
        from a coroutine) leaves them to the loop.
        """
        ready = self._ready
        if ready is None or ready:
            deliver(message)
            return
        loop: Any = self._loop
        if loop._stopping or loop._debug or _current_task(loop) is not None:
            deliver(message)
            return
        self._inline = self._can_wake
        try:
            deliver(message)
        except BaseException:
            self._inline = False
            self._hand_back_wake()
            raise
        self._inline = False
        wake = self._wake
        count = len(ready)
        if loop._stopping:  # a callback stopped the loop: it runs them, in order, when restarted
            self._hand_back_wake()
            return
        if wake is not None:
            self._wake = None
            callback, context, future = wake
            try:
                context.run(callback, future)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:  # as asyncio.Handle._run reports it
                loop.call_exception_handler(
                    {
                        "message": f"Exception in callback {callback!r}({future!r})",
                        "exception": exc,
                        "future": future,
                    }
                )
        if not count:
            return
        popleft = ready.popleft
        for _ in range(count):
            handle = popleft()
            if not handle._cancelled:
                handle._run()

    def _hand_back_wake(self) -> None:
        """Queue a taken wake-up on the loop after all, ahead of what the read queued
        after taking it (the order the loop would have run them in)."""
        wake = self._wake
        if wake is not None:
            self._wake = None
            callback, context, future = wake
            self._ready.appendleft(asyncio.Handle(callback, (future,), self._loop, context))

    def create_waiter(self, canceller: Callable[[], None] | None = None) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self._new_future()
        if canceller is not None:

            def on_done(f: asyncio.Future[Any]) -> None:
                if f.cancelled():
                    canceller()

            future.add_done_callback(on_done)
        return future

    def waiter_factory(self) -> Callable[[], asyncio.Future[Any]]:
        return self._new_future

    def resolve(self, waiter: asyncio.Future[Any], value: Any) -> None:
        if not waiter.done():
            waiter.set_result(value)

    def resolve_all(self, waiters: list[asyncio.Future[Any]], value: Any) -> None:
        """Resolve each of ``waiters`` that is not done (an ack's confirmed publishes).

        Settled one by one, each future would queue each of its done callbacks through
        ``loop.call_soon`` (three Python frames and a Handle per confirmed publish) and
        the loop would run each Handle on its next turn. Where the loop's futures show
        their callbacks (:func:`_callbacks_visible`), they are taken off the futures
        before settling and queued as one Handle instead, which runs them on that same
        turn, in the same order, each in its own context: one Handle per ack (or per
        read, while it is still the last thing queued) instead of one per publish.
        A debug loop (which times each callback) keeps the loop's way.
        """
        ready = self._ready
        if not self._can_wake or self._loop._debug:  # type: ignore[attr-defined]
            for waiter in waiters:  # resolve() inline: one call less per confirmed publish
                if not waiter.done():
                    waiter.set_result(value)
            return
        # Still the last Handle queued: its list takes these callbacks too, in their place.
        calls = self._calls if ready and ready[-1] is self._calls_handle else None
        # With the accelerator, this loop in C (_speedups_settle.h): the same calls.
        if _c_settle_all is not None and _c_settle_all(waiters, value, calls, self._queue_calls):
            return
        for waiter in waiters:
            if waiter.done():
                continue
            callbacks = waiter._callbacks
            if callbacks:
                if calls is None:
                    calls = self._queue_calls()
                for callback, context in callbacks:
                    waiter.remove_done_callback(callback)
                    calls.append((callback, context, waiter))
            waiter.set_result(value)

    def _queue_calls(self) -> list[tuple[Callable[..., object], Any, Any]]:
        """A new list of done callbacks for resolve_all to fill, and the Handle, queued
        now, that will run them (_run_calls)."""
        calls: list[tuple[Callable[..., object], Any, Any]] = []
        self._calls = calls
        self._calls_handle = self._loop.call_soon(self._run_calls, calls)
        return calls

    def _run_calls(self, calls: list[tuple[Callable[..., object], Any, Any]]) -> None:
        """Run the done callbacks :meth:`resolve_all` took off its futures, in order, as
        the loop runs a Handle each: an exception is reported to the loop's exception
        handler and the next callback runs; SystemExit and KeyboardInterrupt propagate,
        the callbacks not yet run left first in the loop's queue (as its own would be)."""
        it = iter(calls)
        for callback, context, future in it:
            try:
                context.run(callback, future)
            except (SystemExit, KeyboardInterrupt):
                rest = list(it)
                if rest:
                    self._ready.appendleft(
                        asyncio.Handle(self._run_calls, (rest,), self._loop, None)
                    )
                raise
            except BaseException as exc:  # as asyncio.Handle._run reports it
                self._loop.call_exception_handler(
                    {
                        "message": f"Exception in callback {callback!r}({future!r})",
                        "exception": exc,
                        "future": future,
                    }
                )

    def reject(self, waiter: asyncio.Future[Any], error: BaseException) -> None:
        if not waiter.done():
            waiter.set_exception(error)

    def is_done(self, waiter: asyncio.Future[Any]) -> bool:
        return waiter.done()

    def try_resolve(self, waiter: asyncio.Future[Any], value: Any) -> bool:
        """Resolve ``waiter`` unless it is done. Inside a read that dispatch_read runs the
        queued callbacks of, the first future settled while nothing else is queued, if
        one task waits on it (its only done callback), settles without scheduling that
        task's wake-up: dispatch_read calls it after the read, first, as the loop's
        Handle would have (no call_soon, Handle or ready-queue round per RPC reply)."""
        if waiter.done():
            return False
        if self._inline and self._wake is None and not self._ready:
            callbacks = waiter._callbacks
            if callbacks and len(callbacks) == 1:
                callback, context = callbacks[0]
                waiter.remove_done_callback(callback)
                waiter.set_result(value)
                self._wake = (callback, context, waiter)
                return True
        waiter.set_result(value)
        return True

    def succeeded(self, value: Any) -> asyncio.Future[Any]:
        # As Runtime.succeeded, without its create_waiter and resolve calls: a publish
        # outside confirm mode and a get() of a buffered message return one each. A
        # None is the same done future each time (see _done_none): what differs is
        # identity only (asyncio.wait and as_completed count it once).
        if value is None:
            return self._done_none
        future: asyncio.Future[Any] = self._new_future()
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


# in_loop_thread above, as the C Message.ack reads it (the loop's thread, taken at
# construction).
register_loop_thread(FutureRuntime.in_loop_thread, None, "_loop_thread", False)
