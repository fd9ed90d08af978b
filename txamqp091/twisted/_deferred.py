"""A Deferred that fires a lone callback, or none, without the general callback loop.

The common Deferred of this client gets one callback pair (``addCallbacks(acked,
failed)``, an ``await``, ``addBoth``) or none before it fires: a publish's in confirm
mode, fired by the broker's ack, or one handed out already fired. Twisted's
``callback()`` runs it through ``_startRunCallbacks`` and ``_runCallbacks``, the loop
that also handles chains of Deferreds, pausing, errbacks and debugging, and calls
each callback as ``fn(result, *args, **kwargs)``, where "no keywords" is an empty
mappingproxy that ``**`` copies into a new dict every time. :class:`LeanDeferred`
does what that loop does for a lone plain pair itself (mark the Deferred called,
drop the canceller, call ``fn(result)``, keep the result or the Failure of what it
raised), or only keeps the result when there is no pair, and hands everything else
to the loop: a result that is a Failure or a Deferred (given or returned), callbacks
added meanwhile, a paused or debugged Deferred, more than one pair, a chained
Deferred's continuation. In the confirm loop a Deferred's life (made, one pair
added, fired, freed) drops from about 2.1 to 1.5 µs. Two differences, both in
misuse: a callback that pauses its own Deferred and adds callbacks to it meanwhile
sees them wait for ``unpause()``, where Twisted's loop would still run them; and the
warning about a callback that returns its own Deferred names the internal
pass-through.

A coroutine (``ensureDeferred``) waiting on such a Deferred is resumed by
:func:`_resume_coroutine`, one round of Twisted's ``_inlineCallbacks`` loop written
for its usual next step (an ``await`` of the next unfired Deferred, as a consumer's
``get()``), which appends the resumption callback itself instead of calling
``addBoth``; anything else the coroutine yields goes to ``_inlineCallbacks``. It relies
on the cancellation status' ``deferred`` and ``waitingOn`` and on ``_DefGen_Return``
(:data:`FAST_RESUMPTION` is False without them); generators under
``@inlineCallbacks`` keep Twisted's own loop.

It relies on Deferred internals (``_callbacks``, ``_runningCallbacks``,
``_runCallbacks``, the ``_CONTINUE`` chaining sentinel) as Twisted 25.5 and later
have them; :data:`LEAN_FIRING` is False, and :func:`waiter_class` gives the plain
``Deferred``, on a Twisted whose Deferred does not look like that.
tests/twisted_adapter/test_lean_deferred.py checks it against ``Deferred`` case by
case.
"""

from __future__ import annotations

import inspect
from asyncio import iscoroutine
from collections.abc import Callable, Iterable
from types import CoroutineType, MappingProxyType
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from ..core._accel import install_deferred_await, install_fire_each

__all__ = [
    "C_AWAIT",
    "FAST_RESUMPTION",
    "LEAN_FIRING",
    "LEAN_SLOTS",
    "PURE_FIRE_EACH",
    "LeanDeferred",
    "failure_of",
    "fire_each",
    "waiter_class",
]

_CONTINUE: object = getattr(defer, "_CONTINUE", None)
_DEFERRED_TYPES: list[type] = getattr(defer, "_DEFERRED_SUBCLASSES", [])


def _parameters(fn: Any) -> list[str] | None:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return None


def _resume_shortcut() -> tuple[Any, Any]:
    """Twisted's ``_gotResultInlineCallbacks`` (the callback a coroutine run by
    ``ensureDeferred`` adds to the Deferred it awaits) and ``_inlineCallbacks`` (what
    that callback calls to resume it), when they look as Twisted 25.5 and later have
    them; else two sentinels that never match a callback."""
    got = getattr(defer, "_gotResultInlineCallbacks", None)
    resume = getattr(defer, "_inlineCallbacks", None)
    if (
        callable(got)
        and callable(resume)
        and _parameters(got) == ["r", "waiting", "gen", "status", "context"]
        and _parameters(resume) == ["result", "gen", "status", "context"]
    ):
        return got, resume
    return object(), None


#: A coroutine's resumption callback, and the function it calls (see callback()).
_GOT_RESULT, _RESUME = _resume_shortcut()

#: Twisted's own "no keywords" of a callback pair (an empty, read-only mapping), shared
#: by the resumption pairs _resume_coroutine appends instead of a new dict per await.
_NO_KEYWORDS: Any = getattr(defer, "_NONE_KWARGS", None)
if not isinstance(_NO_KEYWORDS, MappingProxyType) or _NO_KEYWORDS:  # pragma: no cover
    _NO_KEYWORDS = MappingProxyType({})

#: What ``returnValue()`` raises; ``_inlineCallbacks`` takes it as a return.
_DEFGEN_RETURN: type[BaseException] = getattr(defer, "_DefGen_Return", None) or type(
    "_NeverRaised", (BaseException,), {}
)


def _resume_coroutine(result: Any, args: tuple[Any, ...]) -> None:
    """``_inlineCallbacks(result, gen, status, context)`` (``args`` is the resumption
    callback's ``(waiting, gen, status, context)``) for a coroutine sent a plain value:
    one round of its loop, with the usual next step, an ``await`` of a Deferred that has
    not fired (a consumer's next ``get()``), done without ``addBoth``'s call; anything
    else the coroutine yields goes on through ``_inlineCallbacks`` as it would have.
    Returns None, as ``_inlineCallbacks`` does."""
    _, gen, status, context = args
    try:
        result = context.run(gen.send, result)
    except StopIteration as e:
        value = e.value
    except BaseException as exc:  # returnValue() (deprecated) too: a return, see there
        _coroutine_raised(status, exc)
        return
    else:
        kind = type(result)
        if (kind is LeanDeferred or kind is Deferred) and not result.called:
            # _inlineCallbacks: addBoth(_gotResultInlineCallbacks, waiting, ...), which
            # only appends the pair to a Deferred that has not fired, then waits.
            call: Any = (_GOT_RESULT, ([False, None], gen, status, context), _NO_KEYWORDS)
            result._callbacks.append((call, call))
            status.waitingOn = result
            return
        _resume_yielded(result, gen, status, context)
        return
    status.deferred.callback(value)


def _resume_yielded(result: Any, gen: Any, status: Any, context: Any) -> None:
    """What :func:`_resume_coroutine` does with what the coroutine yielded when it is
    not a Deferred or LeanDeferred that has not fired (the C try_resolve calls it too):
    wait on it, or send its result on, as ``_inlineCallbacks`` would."""
    kind = type(result)
    if kind in _DEFERRED_TYPES or iscoroutine(result) or inspect.isgenerator(result):
        if kind not in _DEFERRED_TYPES:
            result = Deferred.fromCoroutine(result)
        waiting: list[Any] = [True, None]
        result.addBoth(_GOT_RESULT, waiting, gen, status, context)
        if waiting[0]:
            waiting[0] = False
            status.waitingOn = result
            return
        result = waiting[1]
    # What _inlineCallbacks' loop does next: send it the result (or throw it in).
    _RESUME(result, gen, status, context)


def _coroutine_raised(status: Any, exc: BaseException) -> None:
    """What :func:`_resume_coroutine` does when the coroutine raised ``exc`` (the C
    try_resolve calls it too): a ``returnValue()`` is a return, anything else fails the
    coroutine's Deferred. The exception is given, not read from ``sys.exc_info()``, so
    that the C caller need not make it the handled one of whatever frame runs."""
    if isinstance(exc, _DEFGEN_RETURN):
        status.deferred.callback(exc.value)  # type: ignore[attr-defined]
    else:
        status.deferred.errback(failure_of(exc))


def failure_of(exc: BaseException) -> Failure:
    """The Failure ``Failure()`` makes inside ``except`` for ``exc``."""
    return Failure(exc, type(exc), exc.__traceback__)  # type: ignore[no-untyped-call]


def _fast_resumption_supported() -> bool:
    status_class = getattr(defer, "_CancellationStatus", None)
    names = getattr(status_class, "__annotations__", {})
    return (
        _RESUME is not None
        and getattr(defer, "_DefGen_Return", None) is not None
        and "deferred" in names
        and "waitingOn" in names
        and callable(getattr(Deferred, "fromCoroutine", None))
    )


#: Whether a coroutine is resumed by _resume_coroutine (else by _inlineCallbacks).
FAST_RESUMPTION = _fast_resumption_supported()


def _passthru(result: Any) -> Any:
    return result


#: Put back in front of the chain when the callback returned a Deferred: the loop
#: then chains to it (or takes its result) exactly as after the callback itself.
_PASSTHRU: Any = ((_passthru, (), {}), (_passthru, (), {}))


def _lean_firing_supported() -> bool:
    probe: Deferred[Any] = Deferred()
    return (
        type(getattr(probe, "_callbacks", None)) is list
        and getattr(probe, "_runningCallbacks", None) is False
        and callable(getattr(Deferred, "_runCallbacks", None))
        and _CONTINUE is not None
        and Deferred in _DEFERRED_TYPES
    )


#: Whether this Twisted's Deferred has the internals :class:`LeanDeferred` uses.
LEAN_FIRING = _lean_firing_supported()


#: The attributes a LeanDeferred keeps in slots instead of its instance dict: those the
#: C accelerator reads and writes on every waiter (a getter's resumption, ``await``, a
#: publish's waiter), which it then reaches at fixed offsets instead of by an
#: attribute lookup (~190 instructions each, a dozen per RPC half). Deferred's class
#: defaults for three of them (``called``, ``paused``, ``_runningCallbacks``) are
#: shadowed by the slots: ``__init__`` sets them, as the C construction does.
LEAN_SLOTS = ("_callbacks", "_canceller", "called", "paused", "_runningCallbacks", "result")


class LeanDeferred(Deferred[Any]):
    """A ``Deferred`` whose ``callback()`` runs a lone plain callback pair directly, and
    only keeps the result when there is none yet."""

    __slots__ = LEAN_SLOTS

    def __init__(self, canceller: Any = None) -> None:
        self.called = False
        self.paused = 0
        self._runningCallbacks = False
        Deferred.__init__(self, canceller)

    def callback(self, result: Any) -> None:
        callbacks = self._callbacks
        if (
            len(callbacks) > 1
            or self.called
            or self.paused
            or self.debug
            or (
                result is not None
                and (isinstance(result, Failure) or type(result) in _DEFERRED_TYPES)
            )
        ):
            Deferred.callback(self, result)
            return
        self._canceller = None
        if not callbacks:  # nothing to run: keep the result for callbacks added later
            self.called = True
            self.result = result
            if self._debugInfo is not None:
                self._debugInfo.failResult = None
            return
        fn: Any
        args: Any
        fn, args, kwargs = callbacks[0][0]
        if fn is _CONTINUE:  # another Deferred waits on this one: the loop passes it on
            Deferred.callback(self, result)
            return
        callbacks.clear()
        self.called = True
        self.result = result  # what the callback sees on its Deferred while it runs
        self._runningCallbacks = True
        try:
            if fn is _GOT_RESULT and not args[0][0]:
                # A coroutine (ensureDeferred, inlineCallbacks) waits on this Deferred
                # and is not running: resume it as _gotResultInlineCallbacks would (its
                # first argument, ``waiting``, says whether the coroutine is running),
                # without that call. Both return None. (DeferredRuntime.try_resolve
                # repeats this case inline for a getter's message: keep them alike.)
                if FAST_RESUMPTION and type(args[1]) is CoroutineType:
                    _resume_coroutine(result, args)
                    result = None
                else:
                    result = _RESUME(result, args[1], args[2], args[3])
            elif kwargs:
                result = fn(result, *args, **kwargs)
            else:
                # Twisted keeps "no keywords" as an empty mappingproxy, which ``**``
                # copies into a new dict on every call: call plainly when there are none.
                result = fn(result, *args) if args else fn(result)
        except BaseException:
            result = Failure(captureVars=self.debug)  # type: ignore[no-untyped-call]
        self._runningCallbacks = False
        self.result = result
        if result is not None and (isinstance(result, Failure) or type(result) in _DEFERRED_TYPES):
            if type(result) in _DEFERRED_TYPES:
                callbacks.insert(0, _PASSTHRU)
            self._runCallbacks()
        elif callbacks:
            self._runCallbacks()
        elif self._debugInfo is not None:
            self._debugInfo.failResult = None


def _fire_each(deferreds: Iterable[Deferred[Any]], result: Any) -> None:
    """``d.callback(result)`` for each Deferred not called yet, in order.

    The confirms one Basic.Ack settles (often hundreds, each with the publisher's one
    ``addCallbacks`` pair): :meth:`LeanDeferred.callback`'s lone plain pair is run here,
    inline, without a ``callback()`` call per Deferred; every other case (another kind of
    Deferred, more pairs, arguments, a coroutine or chained Deferred waiting, paused,
    debugged, a Failure or Deferred result) is ``callback()`` itself.
    """
    # Deferred debugging is Twisted's switch on the class (``setDebugging`` sets
    # ``Deferred.debug``; nothing sets it on an instance), read once, not per Deferred:
    # on, every Deferred goes through ``callback()``, which records its invoker.
    plain = (
        LEAN_FIRING
        and not LeanDeferred.debug
        and (result is None or not (isinstance(result, Failure) or type(result) in _DEFERRED_TYPES))
    )
    for d in deferreds:
        if d.called:
            continue
        # Deferred's own internals are only read where LEAN_FIRING found them (plain).
        if plain and type(d) is LeanDeferred and not d.paused and len(d._callbacks) == 1:
            callbacks = d._callbacks
            fn: Any
            fn, args, kwargs = callbacks[0][0]
            if not args and not kwargs and fn is not _CONTINUE and fn is not _GOT_RESULT:
                # LeanDeferred.callback for a lone plain pair (see there).
                callbacks.clear()
                d._canceller = None
                d.called = True
                d.result = result
                d._runningCallbacks = True
                try:
                    value = fn(result)
                except BaseException:
                    value = Failure()  # type: ignore[no-untyped-call]
                d._runningCallbacks = False
                d.result = value
                if value is not None and (
                    isinstance(value, Failure) or type(value) in _DEFERRED_TYPES
                ):
                    if type(value) in _DEFERRED_TYPES:
                        callbacks.insert(0, _PASSTHRU)
                    d._runCallbacks()
                elif callbacks:
                    d._runCallbacks()
                # (callback() would clear its _debugInfo's failResult here: only a
                # firing sets it, and this Deferred had none, so there is none to clear.)
                continue
        d.callback(result)


#: The Python fire_each: the reference. With the C accelerator (and this Twisted's
#: internals, LEAN_FIRING), ``fire_each`` is its C version (_speedups_fire.h), which
#: runs the lone-plain-pair case without this loop's ~3,500 instructions a Deferred.
PURE_FIRE_EACH = _fire_each
fire_each: Callable[[Iterable[Deferred[Any]], Any], None] = PURE_FIRE_EACH
if LEAN_FIRING:
    _c_fire_each = install_fire_each(
        LeanDeferred, _CONTINUE, _GOT_RESULT, _PASSTHRU, _DEFERRED_TYPES, Failure, failure_of
    )
    if _c_fire_each is not None:
        fire_each = _c_fire_each

#: Whether ``await`` on a LeanDeferred runs the C accelerator's iterator (see
#: _speedups_await.h) instead of Twisted's ``__await__`` generator.
C_AWAIT = LEAN_FIRING and install_deferred_await(
    LeanDeferred, Deferred.__dict__["__await__"], Failure
)

if not LEAN_FIRING:  # pragma: no cover - a Twisted older than 25.5 (CI's oldest-versions step)
    # The class stays importable and correct where its internals are missing: it is a
    # plain Deferred there (code that names it, the tests, keep working).
    LeanDeferred.callback = Deferred.callback  # type: ignore[method-assign]


def waiter_class() -> type[Deferred[Any]]:
    """:class:`LeanDeferred` where this Twisted allows it, else ``Deferred``."""
    return LeanDeferred if LEAN_FIRING else Deferred
