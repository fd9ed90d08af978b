"""``await`` on a LeanDeferred through the C accelerator's iterator (_speedups_await.h)
against Twisted's own ``Deferred.__await__``, case by case.

test_lean_deferred.py's scenarios await LeanDeferreds too (in a loop, thrown into,
cancelled); these are the cases of the iterator itself: results that are tuples or
exceptions (a StopIteration's value, not its arguments), a Deferred already failed or
paused when awaited, the iterator protocol driven by hand, and the reference cycle a
waiting coroutine makes through it.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.python.failure import Failure

from txamqp091.core import _accel
from txamqp091.core.spec import BasicProperties
from txamqp091.message import Message, ReturnedMessage
from txamqp091.twisted import runtime as _runtime  # noqa: F401 - installs the delivery class
from txamqp091.twisted._deferred import C_AWAIT, LEAN_FIRING, LeanDeferred

pytestmark = pytest.mark.skipif(not LEAN_FIRING, reason="Twisted < 25.5: LeanDeferred is Deferred")

Trace = list[Any]


def outcome(make: Callable[[], Deferred[Any]], prepare: Callable[[Deferred[Any]], Any]) -> Trace:
    """Await a Deferred made by ``make`` in a coroutine run by ensureDeferred; ``prepare``
    fires (or pauses) it before the await, or returns a function that fires it after."""
    trace: Trace = []
    d = make()
    later = prepare(d)

    async def waiter() -> Any:
        try:
            value = await d
        except Exception as exc:  # what the await raised
            trace.append(("raised", type(exc), exc.args))
            return "after raising"
        trace.append(("value", value, type(value)))
        return "after value"

    task = ensureDeferred(waiter())
    task.addBoth(lambda r: trace.append(("task", r if not isinstance(r, Failure) else r.type)))
    trace.append(("waiting", "task" not in [t[0] for t in trace]))
    if callable(later):
        later()
    trace.append(("d", d.called, d.result if d.called else None))
    return trace


def fire(value: Any) -> Callable[[Deferred[Any]], None]:
    return lambda d: d.callback(value)


def fire_later(value: Any) -> Callable[[Deferred[Any]], Callable[[], None]]:
    return lambda d: lambda: d.callback(value)


def fail_later(exc: Exception) -> Callable[[Deferred[Any]], Callable[[], None]]:
    return lambda d: lambda: d.errback(exc)


def failed_before(d: Deferred[Any]) -> None:
    d.errback(KeyError("before"))


def paused_then_unpaused(d: Deferred[Any]) -> Callable[[], None]:
    d.pause()
    d.callback("while paused")
    return d.unpause


CASES: dict[str, Callable[[Deferred[Any]], Any]] = {
    "fired with None": fire(None),
    # The results the C iterator tells from a Failure without isinstance (a delivery of
    # the installed class), and a subclass of it, which it asks isinstance about.
    "fired with a delivery": fire(Message(1, "c", 1, False, "", "rk", BasicProperties(), b"x")),
    "fired with a returned message": fire(
        ReturnedMessage(1, "", 0, False, "ex", "rk", BasicProperties(), b"x")
    ),
    "fired with a tuple": fire((1, 2)),
    "fired with an empty tuple": fire(()),
    "fired with an exception instance": fire(ValueError("a value, not raised")),
    "fired with a StopIteration": fire(StopIteration("inner")),
    "fired after the await": fire_later("later"),
    "fired after the await with a tuple": fire_later(("a", "b")),
    "failed after the await": fail_later(KeyError("after")),
    "failed before the await": failed_before,
    "paused when awaited": paused_then_unpaused,
}


@pytest.mark.parametrize("prepare", CASES.values(), ids=list(CASES))
def test_awaiting_a_lean_deferred_is_awaiting_a_deferred(prepare: Callable[..., Any]) -> None:
    plain = outcome(Deferred, prepare)
    lean = outcome(LeanDeferred, prepare)
    assert _comparable(lean) == _comparable(plain)


def _comparable(x: Any) -> Any:
    """Exceptions and Failures compare by identity: what they hold instead."""
    if isinstance(x, Failure):
        return ("Failure", x.type, _comparable(x.value))
    if isinstance(x, BaseException):
        return (type(x), _comparable(x.args))
    if isinstance(x, (tuple, list)):
        return type(x)(_comparable(y) for y in x)
    return x


@pytest.mark.skipif(not C_AWAIT, reason="no C accelerator")
def test_the_c_iterator_is_what_await_runs() -> None:
    it = LeanDeferred().__await__()
    assert type(it).__name__ == "DeferredAwait"
    assert iter(it) is it
    assert type(Deferred().__await__()).__name__ == "generator"  # Twisted's own, untouched


@pytest.mark.skipif(not C_AWAIT, reason="no C accelerator")
@pytest.mark.parametrize("step", ["next", "send"])
def test_the_iterator_yields_the_deferred_until_it_fires_then_returns_its_result(
    step: str,
) -> None:
    d = LeanDeferred()
    it = d.__await__()

    def advance() -> Any:
        return next(it) if step == "next" else it.send("ignored, as Twisted ignores it")

    assert advance() is d
    assert advance() is d
    d.callback((3, 4))
    with pytest.raises(StopIteration) as stopped:
        advance()
    assert stopped.value.value == (3, 4)
    with pytest.raises(StopIteration) as stopped:  # finished, as Twisted's generator
        advance()
    assert stopped.value.value is None


@pytest.mark.skipif(not C_AWAIT, reason="no C accelerator")
def test_a_failure_is_raised_by_twisteds_own_await_and_cleared_as_there() -> None:
    d = LeanDeferred()
    it = d.__await__()
    d.errback(KeyError("boom"))
    with pytest.raises(KeyError):
        next(it)
    # Twisted cleared the Failure's debug info: no "Unhandled error in Deferred" later.
    assert d._debugInfo is None or d._debugInfo.failResult is None


@pytest.mark.skipif(not C_AWAIT, reason="no C accelerator")
def test_a_coroutine_left_waiting_is_collected_with_its_iterator() -> None:
    """Deferred -> its callback pair -> the coroutine -> the iterator -> the Deferred: a
    cycle the collector must see through the iterator (tp_traverse)."""
    box = [LeanDeferred()]

    async def waiter(d: Deferred[Any]) -> None:
        await d

    task = ensureDeferred(waiter(box[0]))
    ref = weakref.ref(box[0])
    box.clear()
    del task
    gc.collect()
    assert ref() is None


def test_without_the_accelerator_lean_deferreds_await_as_twisted_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_accel, "speedups", None)
    assert _accel.install_deferred_await(LeanDeferred, Deferred.__await__, Failure) is False
