"""Deferreds, the reactor's clock and threads: the Twisted half of the client runtime
that does not need a transport (surviving channels use it across connections)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from threading import get_ident
from types import CoroutineType
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python import threadable
from twisted.python.failure import Failure

from ..client.runtime import Runtime, TimerHandle, for_delivery
from ..core._accel import (
    bare_waiter_factory,
    install_bare_succeeded,
    install_bare_waiter,
    install_try_resolve,
    register_loop_thread,
)
from ..message import Message
from ._deferred import (
    _GOT_RESULT,
    _NO_KEYWORDS,
    _RESUME,
    FAST_RESUMPTION,
    LEAN_SLOTS,
    LeanDeferred,
    _coroutine_raised,
    _resume_coroutine,
    _resume_yielded,
    failure_of,
    fire_each,
    waiter_class,
)

__all__ = ["PURE_TRY_RESOLVE", "DeferredRuntime"]

log = Logger(namespace="txamqp091")

#: The class of every waiter this runtime makes: LeanDeferred where this Twisted
#: allows it (see _deferred.py), else Deferred.
_Waiter = waiter_class()
_LEAN = _Waiter is LeanDeferred
_new = object.__new__


def _bare_new_supported() -> bool:
    """Whether a LeanDeferred made by ``object.__new__`` and given its slots
    (:data:`LEAN_SLOTS`: ``_callbacks`` an empty list, ``_canceller`` None, ``called``
    False, ``paused`` 0, ``_runningCallbacks`` False) is what ``LeanDeferred()`` makes:
    its ``__init__`` sets the last three and Deferred.__init__ the first two, nothing
    else (and, debugging, ``_debugInfo``: checked where it is used)."""
    if not _LEAN or LeanDeferred.__new__ is not _new:
        return False
    # Looked at on an instance of a subclass made for it, whose dict holds what
    # Deferred.__init__ sets outside the slots: nothing, on the Twisted this knows.
    probe = type("_Probe", (LeanDeferred,), {})()
    slots = tuple(getattr(probe, name, _new) for name in LEAN_SLOTS[:5])
    return not vars(probe) and slots == ([], None, False, 0, False)


#: succeeded() makes its LeanDeferred without Deferred.__init__'s Python frame, and so
#: does the C basic_publish for the waiter of each confirmed publish.
_BARE_NEW = _bare_new_supported()
if _BARE_NEW:
    install_bare_waiter(_Waiter, LeanDeferred.__init__, Deferred.__init__, LEAN_SLOTS)


def _succeeded(value: Any) -> Deferred[Any]:
    """A waiter already fired with ``value`` (DeferredRuntime.succeeded)."""
    if _BARE_NEW and (value is None or type(value) is Message) and not _Waiter.debug:
        # A new LeanDeferred (what Deferred.__init__ sets, without its frame: see
        # _BARE_NEW) and what LeanDeferred.callback does for it (no callbacks, no
        # canceller, not debugged): keep the result. Without either call, as every
        # basic_publish outside confirm mode returns one of these.
        waiter: Deferred[Any] = _new(_Waiter)
        waiter._callbacks = []
        waiter._canceller = None
        waiter.called = True
        waiter.paused = 0
        waiter._runningCallbacks = False
        waiter.result = value
        return waiter
    waiter = _Waiter()
    waiter.callback(value)
    return waiter


#: A getter's waiter (waiter_factory): made by C without Deferred.__init__'s frame
#: where it can (see _BARE_NEW), else the class.
_NEW_WAITER: Callable[[], Deferred[Any]] = (_BARE_NEW and bare_waiter_factory()) or _Waiter


class DeferredRuntime(Runtime[Deferred[Any]]):
    """Waiters are Deferreds; time is the given ``IReactorTime`` (a ``Clock`` in tests).

    While :attr:`_held` is a dict (:meth:`dispatch_read` sets it around one read),
    ``resolve`` and ``reject`` queue there and the protocol settles them, in order,
    once every frame of the read is dispatched. A Deferred runs its callbacks
    synchronously: settled at once, a coroutine awaiting ``consumer.get()`` would be
    resumed (the whole ``_inlineCallbacks`` round) once per delivery, in the middle of
    the parse, always finding the buffer empty. Settled after the read, it resumes
    once and takes the rest of the read's deliveries from the buffer, already-fired
    Deferreds, as an asyncio task does (its futures' callbacks wait for the loop too).
    """

    #: Waiters settled during the current read, by ``id()``, in settling order, with
    #: their first outcome: (waiter, ok, value). A held waiter counts as done. An entry
    #: whose ``ok`` is None is a :meth:`resolve_all` batch: (the list, None, value).
    _held: dict[int, tuple[Any, bool | None, Any]] | None = None

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock

    # dispatch_delivery is Runtime's: the one getter a lone delivery settles is the read's
    # only one, so firing it at once is firing it after the read, without the holding.

    def dispatch_read(self, dispatch: Callable[[list[Any]], None], events: list[Any]) -> None:
        held: dict[int, tuple[Any, bool | None, Any]] = {}
        self._held = held
        try:
            dispatch(events)
        finally:
            self._held = None
            self._settle_held(held)

    def _settle_held(self, held: dict[int, tuple[Any, bool | None, Any]]) -> None:
        """Fire what :meth:`resolve`, :meth:`reject` and :meth:`resolve_all` held, in order."""
        for waiter, ok, value in held.values():
            if ok is None:
                fire_each(waiter, value)
            elif waiter.called:
                continue
            elif ok:
                waiter.callback(value)
            else:
                waiter.errback(Failure(value))  # type: ignore[no-untyped-call]

    def create_waiter(self, canceller: Callable[[], None] | None = None) -> Deferred[Any]:
        if canceller is None:
            return _Waiter()
        return _Waiter(lambda d: canceller())

    def resolve(self, waiter: Deferred[Any], value: Any) -> None:
        if waiter.called:
            return
        held = self._held
        if held is None:
            waiter.callback(value)
        else:
            held.setdefault(id(waiter), (waiter, True, value))

    def reject(self, waiter: Deferred[Any], error: BaseException) -> None:
        if waiter.called:
            return
        held = self._held
        if held is None:
            waiter.errback(Failure(error))  # type: ignore[no-untyped-call]
        else:
            held.setdefault(id(waiter), (waiter, False, error))

    def resolve_all(self, waiters: list[Deferred[Any]], value: Any) -> None:
        held = self._held
        if held is None:
            fire_each(waiters, value)
        else:
            # One entry for the batch: its waiters fire in order, in their place.
            held[id(waiters)] = (waiters, None, value)

    def waiter_factory(self) -> Callable[[], Deferred[Any]]:
        return _NEW_WAITER

    def is_done(self, waiter: Deferred[Any]) -> bool:
        held = self._held
        return waiter.called or (held is not None and id(waiter) in held)

    def try_resolve(self, waiter: Deferred[Any], value: Any) -> bool:
        if waiter.called:
            return False
        held = self._held
        if held is None:
            if _LEAN and type(value) is Message:
                callbacks = waiter._callbacks
                if len(callbacks) == 1 and type(waiter) is LeanDeferred:
                    fn: Any
                    args: Any
                    fn, args, _ = callbacks[0][0]
                    if fn is _GOT_RESULT and not args[0][0] and not (waiter.paused or waiter.debug):
                        # A coroutine waits on this getter (an RPC's every request and
                        # reply, a consumer loop that emptied its buffer): what
                        # LeanDeferred.callback does then, without its call.
                        callbacks.clear()
                        waiter._canceller = None
                        waiter.called = True
                        waiter.result = value
                        waiter._runningCallbacks = True
                        try:
                            if FAST_RESUMPTION and type(args[1]) is CoroutineType:
                                _resume_coroutine(value, args)
                            else:
                                _RESUME(value, args[1], args[2], args[3])
                        except BaseException as exc:
                            _resolve_raised(waiter, exc)
                            return True
                        waiter._runningCallbacks = False
                        waiter.result = None
                        if callbacks:  # added while the coroutine ran
                            waiter._runCallbacks()
                        return True
            waiter.callback(value)
            return True
        key = id(waiter)
        if key in held:
            return False
        held[key] = (waiter, True, value)
        return True

    #: Already fired, never held: a buffered message is handed out at once. (The C
    #: accelerator's bare_succeeded where it is built: see the end of this module.)
    succeeded = staticmethod(_succeeded)

    def failed(self, error: BaseException) -> Deferred[Any]:
        waiter: Deferred[Any] = _Waiter()
        waiter.errback(Failure(error))  # type: ignore[no-untyped-call]
        return waiter

    def add_done(self, waiter: Deferred[Any], callback: Callable[[], None]) -> None:
        def done(result: Any) -> Any:
            callback()
            return result

        waiter.addBoth(done)

    def on_result(
        self,
        waiter: Deferred[Any],
        on_success: Callable[[Any], object],
        on_failure: Callable[[BaseException], object],
    ) -> None:
        def succeeded(value: Any) -> None:
            on_success(value)

        def failed(failure: Failure) -> None:
            error = failure.value
            on_failure(error if error is not None else Exception(str(failure)))

        waiter.addCallbacks(succeeded, failed)

    def observe(
        self,
        waiter: Deferred[Any],
        on_success: Callable[[Any], object],
        on_failure: Callable[[BaseException], object],
    ) -> None:
        def succeeded(value: Any) -> Any:
            on_success(value)
            return value

        def failed(failure: Failure) -> Failure:
            error = failure.value
            on_failure(error if error is not None else Exception(str(failure)))
            return failure

        waiter.addCallbacks(succeeded, failed)

    def now(self) -> float:
        return self._clock.seconds()

    def call_later(self, delay: float, fn: Callable[[], None]) -> TimerHandle:
        return self._clock.callLater(delay, fn)

    def call_soon(self, fn: Callable[[], None]) -> None:
        self._clock.callLater(0, fn)

    def in_loop_thread(self) -> bool:
        # No I/O thread registered (the reactor is not running, as under task.Clock):
        # a single-threaded program, so every caller counts as the loop's thread.
        # (threading.get_ident is what threadable.getThreadID returns, without its checks:
        # this runs once per ack.)
        io_thread = threadable.ioThread
        return io_thread is None or io_thread == get_ident()

    def call_from_thread(self, fn: Callable[[], None]) -> None:
        self._clock.callFromThread(fn)  # type: ignore[attr-defined]

    def run_user_callback(
        self, fn: Callable[..., Any], *args: Any, delivery_tag: int | None = None
    ) -> None:
        try:
            result = fn(*args)
        except Exception:
            log.failure(
                "user callback {fn!r}{context} raised", fn=fn, context=for_delivery(delivery_tag)
            )
            return
        if result is None:  # a plain callback: nothing to run or watch
            return
        if inspect.iscoroutine(result):
            # An ``async def`` callback: run it (never left "never awaited").
            result = ensureDeferred(result)
        if isinstance(result, Deferred):
            result.addErrback(
                lambda f: log.failure(
                    "user callback {fn!r}{context} failed",
                    f,
                    fn=fn,
                    context=for_delivery(delivery_tag),
                )
            )

    def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        reactor: Any = self._clock
        return deferToThreadPool(reactor, reactor.getThreadPool(), fn, *args)

    def log(self, level: str, message: str, **fields: Any) -> None:
        getattr(log, level, log.info)(message, **fields)


def _resolve_raised(waiter: Deferred[Any], exc: BaseException) -> None:
    """try_resolve's ``except BaseException as exc:`` (the C one calls it there too):
    the waiter's callbacks no longer run, what resuming the coroutine raised past its
    Deferreds is its result, a Failure, and the callbacks added meanwhile see it."""
    waiter._runningCallbacks = False
    waiter.result = failure_of(exc)
    waiter._runCallbacks()


#: The Python try_resolve: the reference, and what the C one calls for every case but
#: a getter's message for a coroutine waiting on it (see _speedups_resume.h).
PURE_TRY_RESOLVE = DeferredRuntime.try_resolve

if _LEAN and FAST_RESUMPTION:
    install_try_resolve(
        DeferredRuntime,
        PURE_TRY_RESOLVE,
        LeanDeferred,
        Deferred,
        Message,
        _GOT_RESULT,
        _NO_KEYWORDS,
        globals(),
        _resume_yielded,
        _coroutine_raised,
        _resolve_raised,
    )

if _BARE_NEW:
    _c_succeeded = install_bare_succeeded(Message, _succeeded)
    if _c_succeeded is not None:
        type.__setattr__(DeferredRuntime, "succeeded", staticmethod(_c_succeeded))

# in_loop_thread above, as the C Message.ack reads it (the reactor's registered I/O
# thread; none registered: any thread).
register_loop_thread(DeferredRuntime.in_loop_thread, threadable, "ioThread", True)
