"""LeanDeferred (a publish's Deferred in confirm mode) behaves as Twisted's Deferred.

Each scenario runs once with ``Deferred`` and once with ``LeanDeferred`` and records
what the callbacks saw and the Deferred's state after each step; both records must
be equal. The lean path itself must be taken where it applies (the general loop is
not run for a lone plain callback), else these tests would only compare Deferred
with itself.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, fail, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from txamqp091.twisted._deferred import LEAN_FIRING, LEAN_SLOTS, LeanDeferred, waiter_class
from txamqp091.twisted.runtime import DeferredRuntime

#: Below Twisted 25.5 (the declared minimum is 23.10) the internals LeanDeferred relies
#: on are missing and it is a plain Deferred: nothing here to compare; the runtime then
#: hands out plain Deferreds (test_older_twisted_gets_plain_deferreds).
pytestmark = pytest.mark.skipif(not LEAN_FIRING, reason="Twisted < 25.5: LeanDeferred is Deferred")

Trace = list[Any]
Scenario = Callable[[type[Deferred[Any]], Trace], None]


_UNSET = object()


def layout(d: Deferred[Any], values: bool = True) -> tuple[Any, ...]:
    """What a LeanDeferred holds: its slots (LEAN_SLOTS; ``_UNSET`` for one not set)
    and its instance dict, in order; with ``values`` False the slots' types and the
    dict's names only (two waiters with different results or callback lists)."""
    slots = tuple(getattr(d, name, _UNSET) for name in LEAN_SLOTS)
    if values:
        return slots, list(vars(d).items())
    return tuple(type(v) for v in slots), list(vars(d))


def state(d: Deferred[Any]) -> tuple[Any, ...]:
    result = getattr(d, "result", "<none>")
    if isinstance(result, Failure):
        result = ("Failure", result.type)
    elif isinstance(result, Deferred):
        result = "<Deferred>"
    info = d._debugInfo
    unhandled = info is not None and info.failResult is not None
    return (d.called, d.paused, result, unhandled)


def record(trace: Trace, name: str) -> Callable[[Any], Any]:
    def seen(value: Any) -> Any:
        shown = ("Failure", value.type) if isinstance(value, Failure) else value
        trace.append((name, shown))
        return value

    return seen


def lone_value(cls: type[Deferred[Any]], trace: Trace) -> None:
    d = cls()
    d.addCallbacks(lambda r: trace.append(("cb", r)) or 7, record(trace, "eb"))
    d.callback(None)
    trace.append(state(d))
    d.addCallback(record(trace, "later"))
    trace.append(state(d))


def lone_raises(cls: type[Deferred[Any]], trace: Trace) -> None:
    d = cls()

    def boom(_: Any) -> None:
        raise ValueError("boom")

    d.addCallbacks(boom, record(trace, "eb"))
    d.callback(None)
    trace.append(state(d))  # unhandled: logged if collected like this
    d.addErrback(record(trace, "handled")).addErrback(lambda f: None)
    trace.append(state(d))


def lone_returns_failure(cls: type[Deferred[Any]], trace: Trace) -> None:
    d = cls()
    d.addCallback(lambda _: Failure(KeyError("k")))
    d.callback(None)
    trace.append(state(d))
    d.addErrback(lambda f: f.trap(KeyError))
    trace.append(state(d))


def lone_returns_unfired_deferred(cls: type[Deferred[Any]], trace: Trace) -> None:
    inner: Deferred[Any] = Deferred()
    d = cls()
    d.addCallback(lambda _: inner)
    d.callback(None)
    d.addCallback(record(trace, "after inner"))
    trace.append(state(d))
    inner.callback("inner value")
    trace.append(state(d))
    trace.append(state(inner))


def lone_returns_fired_deferred(cls: type[Deferred[Any]], trace: Trace) -> None:
    d = cls()
    d.addCallback(lambda _: succeed("taken"))
    d.callback(None)
    trace.append(state(d))
    d2 = cls()
    d2.addCallback(lambda _: fail(RuntimeError("inner failed")))
    d2.callback(None)
    trace.append(state(d2))
    d2.addErrback(lambda f: f.trap(RuntimeError))


def lone_adds_callbacks_to_itself(cls: type[Deferred[Any]], trace: Trace) -> None:
    d = cls()

    def first(_: Any) -> str:
        trace.append("first")
        d.addCallback(record(trace, "added"))
        d.addCallback(lambda r: r + "!")
        trace.append(state(d))
        return "one"

    d.addCallback(first)
    d.callback(None)
    trace.append(state(d))


def lone_with_arguments(cls: type[Deferred[Any]], trace: Trace) -> None:
    d = cls()
    d.addCallbacks(
        lambda r, a, b=0: trace.append((r, a, b)) or "args",
        record(trace, "eb"),
        callbackArgs=(1,),
        callbackKeywords={"b": 2},
    )
    d.callback(None)
    trace.append(state(d))


def cancelled_then_fired(cls: type[Deferred[Any]], trace: Trace) -> None:
    d = cls()
    d.addCallbacks(record(trace, "cb"), record(trace, "eb"))
    d.cancel()
    trace.append(state(d))
    d.callback(None)  # eaten: a Deferred cancelled without a canceller
    trace.append(state(d))
    d.addErrback(lambda f: f.trap(CancelledError))


def fired_with_a_value(cls: type[Deferred[Any]], trace: Trace) -> None:
    d = cls()
    d.addCallback(record(trace, "cb"))
    d.callback("value")
    trace.append(state(d))


def two_pairs(cls: type[Deferred[Any]], trace: Trace) -> None:
    d = cls()
    d.addCallback(lambda _: 1)
    d.addCallback(lambda r: r + 1)
    d.callback(None)
    trace.append(state(d))


def no_callbacks_yet(cls: type[Deferred[Any]], trace: Trace) -> None:
    d = cls()
    d.callback(None)
    trace.append(state(d))
    d.addCallback(record(trace, "later"))
    trace.append(state(d))


def paused_before_firing(cls: type[Deferred[Any]], trace: Trace) -> None:
    d = cls()
    d.addCallback(record(trace, "cb"))
    d.pause()
    d.callback(None)
    trace.append(state(d))
    d.unpause()
    trace.append(state(d))


def waited_on_by_another(cls: type[Deferred[Any]], trace: Trace) -> None:
    d = cls()
    outer: Deferred[Any] = Deferred()
    outer.addCallback(lambda _: d)  # outer chains to d: d's lone pair is the continuation
    outer.addCallback(record(trace, "outer"))
    outer.callback("start")
    trace.append(state(outer))
    d.callback(None)
    trace.append(state(outer))
    trace.append(state(d))


def awaited(cls: type[Deferred[Any]], trace: Trace) -> None:
    d = cls()

    async def waiter() -> str:
        value = await d
        trace.append(("resumed with", value))
        return "done"

    task = ensureDeferred(waiter())
    task.addCallback(record(trace, "task"))
    d.callback(None)
    trace.append(state(task))


def awaited_in_a_loop(cls: type[Deferred[Any]], trace: Trace) -> None:
    """A consumer loop: each resumption makes the next Deferred and awaits it again,
    one raises into the coroutine, and the coroutine's return value ends the task."""
    box: list[Deferred[Any]] = []
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")

    async def loop() -> str:
        marker.set("in task")
        for _ in range(3):
            d = cls()
            box.append(d)
            try:
                value = await d
            except KeyError as exc:
                value = ("caught", str(exc))
            trace.append(("got", value, marker.get()))
        return "finished"

    task = ensureDeferred(loop())
    task.addCallback(record(trace, "task"))
    box[0].callback("one")
    trace.append(state(task))
    box[1].errback(KeyError("two"))
    box[2].callback(box[1].result)  # the None the resumption left on the first
    trace.append(state(task))
    trace.append(marker.get())  # the task's context did not leak out


def awaited_then_cancelled(cls: type[Deferred[Any]], trace: Trace) -> None:
    d = cls()

    async def waiter() -> Any:
        return await d

    task = ensureDeferred(waiter())
    task.addErrback(lambda f: trace.append(("task failed", f.type)))
    task.cancel()
    trace.append(state(d))
    trace.append(state(task))


def awaited_and_raising(cls: type[Deferred[Any]], trace: Trace) -> None:
    d = cls()

    async def waiter() -> None:
        await d
        raise ValueError("after resuming")

    task = ensureDeferred(waiter())
    task.addErrback(lambda f: trace.append(("task failed", f.type, str(f.value))))
    d.callback(1)
    trace.append(state(d))
    trace.append(state(task))


def fired_twice(cls: type[Deferred[Any]], trace: Trace) -> None:
    d = cls()
    d.addCallback(record(trace, "cb"))
    d.callback(None)
    try:
        d.callback(None)
    except Exception as exc:
        trace.append(type(exc).__name__)


def failed_with_errback(cls: type[Deferred[Any]], trace: Trace) -> None:
    d = cls()
    d.addCallbacks(record(trace, "cb"), record(trace, "eb"))
    d.errback(LookupError("nack"))
    trace.append(state(d))
    d.addErrback(lambda f: f.trap(LookupError))
    trace.append(state(d))


def no_callbacks_yet_with_a_value(cls: type[Deferred[Any]], trace: Trace) -> None:
    d = cls()
    d.callback({"a": 1})
    trace.append(state(d))
    d.addCallback(record(trace, "later"))
    trace.append(state(d))


def no_callbacks_yet_with_a_failure(cls: type[Deferred[Any]], trace: Trace) -> None:
    d = cls()
    d.callback(Failure(ZeroDivisionError()))  # a Failure given to callback() is an errback
    trace.append(state(d))
    d.addErrback(record(trace, "eb")).addErrback(lambda f: f.trap(ZeroDivisionError))
    trace.append(state(d))


def fired_with_a_deferred(cls: type[Deferred[Any]], trace: Trace) -> None:
    inner: Deferred[Any] = succeed("in")
    d = cls()
    d.addCallback(lambda r: trace.append(("got a Deferred", isinstance(r, Deferred))) or "x")
    d.callback(inner)
    trace.append(state(d))


def lone_value_seen_by_the_callback(cls: type[Deferred[Any]], trace: Trace) -> None:
    d = cls()
    d.addBoth(lambda r: trace.append(("both", r, state(d))) or r * 2)
    d.callback(21)
    trace.append(state(d))


class _Yields:
    """An awaitable that yields ``value`` to the coroutine's driver and returns what it
    is sent back (Twisted's loop sends a plain value straight back)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Any:
        return (yield self.value)


class _OtherDeferred(Deferred[Any]):
    pass


def awaited_then_other_things(cls: type[Deferred[Any]], trace: Trace) -> None:
    """After its resumption the coroutine awaits each kind of thing its driver handles:
    a fired Deferred, an unfired plain one, another Deferred subclass, a fired but paused
    one, a plain value and a coroutine yielded to the driver, then returns."""
    d = cls()
    plain: Deferred[Any] = Deferred()
    other = _OtherDeferred()
    paused = succeed("paused value")
    paused.pause()

    async def inner() -> str:
        return "inner value"

    async def waiter() -> str:
        trace.append(("first", await d))
        trace.append(("fired", await succeed("at once")))
        trace.append(("plain", await plain))
        trace.append(("other", await other))
        trace.append(("paused", await paused))
        trace.append(("value", await _Yields(5)))
        trace.append(("coroutine", await _Yields(inner())))
        return "done"

    task = ensureDeferred(waiter())
    task.addCallback(record(trace, "task"))
    d.callback("one")
    trace.append(state(task))
    plain.callback("two")
    other.callback("three")
    trace.append(state(task))
    paused.unpause()
    trace.append(state(task))


def awaited_by_inline_callbacks(cls: type[Deferred[Any]], trace: Trace) -> None:
    """A generator under @inlineCallbacks waits with the same callback as a coroutine:
    it is resumed by Twisted's own loop."""
    from twisted.internet.defer import inlineCallbacks

    box: list[Deferred[Any]] = []

    @inlineCallbacks
    def waiter() -> Any:
        for _ in range(2):
            d = cls()
            box.append(d)
            trace.append(("got", (yield d)))
        return "done"

    task = waiter()
    task.addCallback(record(trace, "task"))
    box[0].callback("one")
    box[1].callback("two")
    trace.append(state(task))


def resumed_then_cancelled_while_waiting_again(cls: type[Deferred[Any]], trace: Trace) -> None:
    """Cancelling the task after a resumption cancels the Deferred it waits on next
    (the resumption recorded it as what the task waits on) and throws into it."""
    first = cls()
    second = cls()

    async def waiter() -> Any:
        trace.append(("first", await first))
        try:
            await second
        except CancelledError:
            trace.append("cancelled inside")
            raise
        return "not reached"

    task = ensureDeferred(waiter())
    task.addErrback(lambda f: trace.append(("task failed", f.type)))
    first.callback("one")
    task.cancel()
    trace.append(state(second))
    trace.append(state(task))


SCENARIOS: list[Scenario] = [
    resumed_then_cancelled_while_waiting_again,
    awaited_then_other_things,
    awaited_by_inline_callbacks,
    no_callbacks_yet_with_a_value,
    no_callbacks_yet_with_a_failure,
    fired_with_a_deferred,
    lone_value_seen_by_the_callback,
    failed_with_errback,
    lone_value,
    lone_raises,
    lone_returns_failure,
    lone_returns_unfired_deferred,
    lone_returns_fired_deferred,
    lone_adds_callbacks_to_itself,
    lone_with_arguments,
    cancelled_then_fired,
    fired_with_a_value,
    two_pairs,
    no_callbacks_yet,
    paused_before_firing,
    waited_on_by_another,
    awaited,
    awaited_in_a_loop,
    awaited_then_cancelled,
    awaited_and_raising,
    fired_twice,
]


@pytest.fixture(params=["fast", "twisted"])
def resumption(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test that takes it runs with coroutines resumed by _resume_coroutine and by
    Twisted's _inlineCallbacks (what a Twisted without the internals it needs gets)."""
    from txamqp091.twisted import _deferred
    from txamqp091.twisted import runtime as runtime_module

    fast = request.param == "fast"
    if fast:
        assert _deferred.FAST_RESUMPTION  # this Twisted has what it relies on
    monkeypatch.setattr(_deferred, "FAST_RESUMPTION", fast)
    monkeypatch.setattr(runtime_module, "FAST_RESUMPTION", fast)
    return str(request.param)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_lean_deferred_behaves_as_deferred(scenario: Scenario, resumption: str) -> None:
    plain: Trace = []
    lean: Trace = []
    scenario(Deferred, plain)
    scenario(LeanDeferred, lean)
    assert lean == plain
    assert plain  # the scenario recorded something


def general_loops(monkeypatch: pytest.MonkeyPatch) -> list[Deferred[Any]]:
    """The Deferreds that go through Twisted's general callback loop from now on, in
    order (``Deferred._runCallbacks`` counted)."""
    loops: list[Deferred[Any]] = []
    general = Deferred._runCallbacks

    def counting(self: Deferred[Any]) -> None:
        loops.append(self)
        general(self)

    monkeypatch.setattr(Deferred, "_runCallbacks", counting)
    return loops


def test_the_lean_path_runs_a_lone_callback_without_the_general_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert LEAN_FIRING  # the Twisted installed here has what LeanDeferred relies on
    loops = general_loops(monkeypatch)
    seen: list[Any] = []
    d = LeanDeferred()
    d.addCallback(seen.append)
    d.callback(None)
    assert seen == [None] and d.called and loops == []
    kept = LeanDeferred()
    kept.callback("kept")  # no callbacks yet: the result is only kept
    assert kept.called and kept.result == "kept" and loops == []
    plain: Deferred[Any] = Deferred()
    plain.addCallback(seen.append)
    plain.callback(None)
    assert loops == [plain]


def test_the_runtimes_waiters_are_lean_deferreds() -> None:
    from twisted.internet.task import Clock

    from txamqp091.twisted import runtime as runtime_module

    runtime = DeferredRuntime(Clock())
    assert waiter_class() is LeanDeferred
    # LeanDeferred itself, or the C accelerator's function that makes one without
    # Deferred.__init__'s frame (a getter's waiter): the same instance either way.
    factory = runtime.waiter_factory()
    assert factory is LeanDeferred or factory is runtime_module._NEW_WAITER
    for debug in (False, True):
        LeanDeferred.debug = debug  # what setDebugging() sets, on Deferred
        try:
            made, reference = factory(), LeanDeferred()
        finally:
            del LeanDeferred.debug
        assert type(made) is LeanDeferred
        # The same attributes, set in the same order (shared attribute keys).
        assert layout(made, values=False) == layout(reference, values=False)
        assert (made._callbacks, made._canceller) == ([], None)
        assert (getattr(made, "_debugInfo", None) is not None) == debug
    assert type(runtime.create_waiter()) is LeanDeferred
    assert type(runtime.create_waiter(lambda: None)) is LeanDeferred
    assert type(runtime.succeeded(1)) is LeanDeferred


def test_under_deferred_debugging_the_general_loop_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from twisted.internet import defer

    loops = general_loops(monkeypatch)
    defer.setDebugging(True)
    try:
        d = LeanDeferred()
        seen: list[Any] = []
        d.addCallback(seen.append)
        d.callback(None)
    finally:
        defer.setDebugging(False)
    assert seen == [None] and loops == [d]
    assert d._debugInfo is not None and d._debugInfo.invoker  # where it was fired from


@pytest.mark.parametrize("implementation", ["runtime", "python"])
@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("value", [None, "message", 1])
def test_succeeded_is_a_fired_deferred_like_succeed(
    debug: bool, value: Any, implementation: str
) -> None:
    """runtime.succeeded() keeps the result without calling callback() for None and a
    Message (basic_publish, a buffered get()); the Deferred it hands out must be the
    one twisted's succeed() makes, callbacks added later included. ``runtime`` is the
    runtime's (the C accelerator's where it is built), ``python`` the Python one."""
    from twisted.internet import defer
    from twisted.internet.task import Clock

    from txamqp091.message import Message
    from txamqp091.twisted import runtime as runtime_module

    if value == "message":
        value = Message(1, "ctag", 1, False, "", "q", None, b"body")  # type: ignore[arg-type]
    runtime = DeferredRuntime(Clock())
    succeeded = runtime.succeeded if implementation == "runtime" else runtime_module._succeeded
    defer.setDebugging(debug)
    try:
        ours: Deferred[Any] = succeeded(value)
        # The attributes, in the order LeanDeferred() and its callback() set them: the
        # instances keep their class's shared attribute keys.
        reference = LeanDeferred()
        reference.callback(value)
        assert layout(ours, values=False) == layout(reference, values=False)
        theirs: Deferred[Any] = succeed(value)
        traces: list[Trace] = []
        for d in (ours, theirs):
            trace: Trace = [state(d)]
            d.addCallbacks(record(trace, "ok"), record(trace, "failed"))
            trace.append(state(d))
            traces.append(trace)
        assert traces[0] == traces[1]
        assert ours._canceller is None and not ours._callbacks
    finally:
        defer.setDebugging(False)


def test_a_waiting_coroutine_is_resumed_without_twisteds_callback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The shortcut is taken: the awaited LeanDeferred calls _inlineCallbacks itself,
    not _gotResultInlineCallbacks (else the awaited scenarios above would only compare
    Twisted with itself)."""
    from twisted.internet import defer

    from txamqp091.twisted import _deferred

    assert _deferred._GOT_RESULT is defer._gotResultInlineCallbacks
    resumed: list[Any] = []
    real = _deferred._RESUME

    def counting(result: Any, *rest: Any) -> None:
        resumed.append(result)
        real(result, *rest)

    monkeypatch.setattr(_deferred, "_RESUME", counting)
    monkeypatch.setattr(_deferred, "FAST_RESUMPTION", False)  # see the test below
    trace: Trace = []
    awaited_in_a_loop(LeanDeferred, trace)
    assert resumed == ["one", None]  # the errback goes through Twisted's loop
    assert ("task", "finished") in trace


# -- DeferredRuntime.try_resolve resumes a waiting coroutine itself ----------------------------

Fire = Callable[[Deferred[Any], Any], None]


def _message(tag: int) -> Any:
    from txamqp091.message import Message

    return Message(1, "ctag", tag, False, "", "q", None, b"body")  # type: ignore[arg-type]


def mstate(d: Deferred[Any]) -> tuple[Any, ...]:
    """state(), with a message shown by its delivery tag (each run makes its own)."""
    called, paused, result, unhandled = state(d)
    tag = getattr(result, "delivery_tag", None)
    return (called, paused, ("Message", tag) if tag is not None else result, unhandled)


def resumed_once(make: Callable[[], Deferred[Any]], fire: Fire, trace: Trace) -> None:
    d = make()

    async def waiter() -> str:
        value = await d
        trace.append(("resumed with", value.delivery_tag, mstate(d)[:2]))
        return "done"

    task = ensureDeferred(waiter())
    task.addCallback(record(trace, "task"))
    fire(d, _message(1))
    trace.append(mstate(d))
    trace.append(mstate(task))


def resumed_in_a_loop(make: Callable[[], Deferred[Any]], fire: Fire, trace: Trace) -> None:
    """A consumer loop in a context of its own: each resumption makes the next getter."""
    box: list[Deferred[Any]] = []
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")

    async def loop() -> str:
        marker.set("in task")
        for _ in range(3):
            d = make()
            box.append(d)
            value = await d
            trace.append(("got", value.delivery_tag, marker.get()))
        return "finished"

    task = ensureDeferred(loop())
    task.addCallback(record(trace, "task"))
    for tag in (1, 2, 3):
        fire(box[-1], _message(tag))
        trace.append(mstate(box[-1]))
    trace.append(mstate(task))
    trace.append(marker.get())


def resumed_then_raising(make: Callable[[], Deferred[Any]], fire: Fire, trace: Trace) -> None:
    d = make()

    async def waiter() -> None:
        await d
        raise ValueError("after resuming")

    task = ensureDeferred(waiter())
    task.addErrback(lambda f: trace.append(("task failed", f.type, str(f.value))))
    fire(d, _message(1))
    trace.append(mstate(d))
    trace.append(mstate(task))


def resumed_and_adding_to_its_getter(
    make: Callable[[], Deferred[Any]], fire: Fire, trace: Trace
) -> None:
    """The resumed coroutine adds a callback to the getter it was resumed by: it runs
    once the resumption is over, with what the getter holds then."""
    d = make()

    async def waiter() -> None:
        await d
        d.addCallback(record(trace, "added"))
        trace.append(mstate(d))

    ensureDeferred(waiter())
    fire(d, _message(1))
    trace.append(mstate(d))


def resumed_then_other_things(make: Callable[[], Deferred[Any]], fire: Fire, trace: Trace) -> None:
    """After its resumption the coroutine's next step is each thing the resumption
    hands on to Twisted's loop (try_resolve's _resume_yielded): a fired Deferred, an
    unfired plain one, another Deferred subclass, a plain value and a coroutine yielded
    to the driver; then the next getter."""
    d = make()
    plain: Deferred[Any] = Deferred()
    other = _OtherDeferred()

    async def inner() -> str:
        return "inner value"

    async def waiter() -> str:
        trace.append(("first", (await d).delivery_tag))
        trace.append(("fired", await succeed("at once")))
        trace.append(("plain", await plain))
        trace.append(("other", (await other).delivery_tag))
        trace.append(("value", await _Yields(5)))
        trace.append(("coroutine", await _Yields(inner())))
        second = make()
        box.append(second)
        trace.append(("second", (await second).delivery_tag))
        return "done"

    box: list[Deferred[Any]] = []
    task = ensureDeferred(waiter())
    task.addCallback(record(trace, "task"))
    fire(d, _message(1))
    trace.append(mstate(task))
    plain.callback("two")
    trace.append(mstate(task))
    fire(other, _message(3))
    trace.append(mstate(task))
    fire(box[0], _message(4))
    trace.append(mstate(box[0]))
    trace.append(mstate(task))


def resumed_after_its_task_fired(
    make: Callable[[], Deferred[Any]], fire: Fire, trace: Trace
) -> None:
    """The coroutine's Deferred was fired by hand meanwhile: when the coroutine returns,
    firing it again raises AlreadyCalledError past the resumption, and the getter keeps
    that Failure (try_resolve's ``except``, _resolve_raised)."""
    d = make()

    async def waiter() -> str:
        await d
        return "returned"

    task = ensureDeferred(waiter())
    task.callback("by hand")
    fire(d, _message(1))
    trace.append(mstate(d))
    trace.append(mstate(task))
    d.addErrback(lambda f: trace.append(("getter failed", f.type)))
    trace.append(mstate(d))


def resumed_then_cancelled(make: Callable[[], Deferred[Any]], fire: Fire, trace: Trace) -> None:
    """Resumed, the coroutine waits on its next getter; cancelling its task cancels
    that getter (the resumption told the task what it waits on: ``waitingOn``)."""
    box: list[Deferred[Any]] = []

    async def waiter() -> str:
        for _ in range(2):
            box.append(make())
            try:
                trace.append(("got", (await box[-1]).delivery_tag))
            except CancelledError:
                trace.append("cancelled")
                raise
        return "unreached"

    task = ensureDeferred(waiter())
    task.addErrback(lambda f: trace.append(("task failed", f.type)))
    fire(box[0], _message(1))
    task.cancel()
    trace.append(mstate(box[1]))
    trace.append(mstate(task))


RESUMED: list[Callable[[Callable[[], Deferred[Any]], Fire, Trace], None]] = [
    resumed_then_cancelled,
    resumed_once,
    resumed_in_a_loop,
    resumed_then_raising,
    resumed_and_adding_to_its_getter,
    resumed_then_other_things,
    resumed_after_its_task_fired,
]


def _callback(d: Deferred[Any], value: Any) -> None:
    d.callback(value)


@pytest.mark.parametrize("resolver", ["runtime", "python"])
@pytest.mark.parametrize("scenario", RESUMED, ids=lambda s: s.__name__)
def test_try_resolve_resumes_a_waiting_coroutine_as_callback_would(
    scenario: Callable[[Callable[[], Deferred[Any]], Fire, Trace], None],
    monkeypatch: pytest.MonkeyPatch,
    resumption: str,
    resolver: str,
) -> None:
    """try_resolve outside a read resumes a coroutine waiting on a getter without
    LeanDeferred.callback; what the coroutine, the getter and the task show must be
    what Twisted's own Deferred.callback gives. ``runtime`` is the runtime's
    try_resolve (the C accelerator's where it is built), ``python`` the Python one."""
    from twisted.internet.task import Clock

    from txamqp091.twisted.runtime import PURE_TRY_RESOLVE

    plain: Trace = []
    scenario(Deferred, _callback, plain)
    runtime = DeferredRuntime(Clock())
    called: list[Any] = []
    lean_callback = LeanDeferred.callback

    def counting(self: LeanDeferred, result: Any) -> None:
        called.append(result)
        lean_callback(self, result)

    monkeypatch.setattr(LeanDeferred, "callback", counting)
    ours: Trace = []
    resolved: list[bool] = []
    try_resolve = (
        runtime.try_resolve if resolver == "runtime" else PURE_TRY_RESOLVE.__get__(runtime)
    )

    def fire(d: Deferred[Any], value: Any) -> None:
        if type(d) is LeanDeferred:
            resolved.append(try_resolve(d, value))
        else:  # another kind of Deferred the coroutine waits on
            d.callback(value)

    scenario(runtime.create_waiter, fire, ours)
    assert ours == plain
    assert resolved and all(resolved)
    assert called == []  # the shortcut, not callback(), resumed the coroutine


def _resolvers() -> dict[str, Callable[[DeferredRuntime], Any]]:
    from txamqp091.twisted.runtime import PURE_TRY_RESOLVE

    return {
        "runtime": lambda runtime: runtime.try_resolve,
        "python": lambda runtime: PURE_TRY_RESOLVE.__get__(runtime),
    }


@pytest.mark.parametrize("resolver", ["runtime", "python"])
def test_try_resolve_leaves_the_callers_handled_exception_alone(resolver: str) -> None:
    """A coroutine started while an exception was handled resolves another coroutine's
    getter, which then raises: afterwards the first one handles nothing (the resumed
    coroutine's exception is not left as its caller's handled one, nor the outer one)."""
    import sys

    from twisted.internet.task import Clock

    runtime = DeferredRuntime(Clock())
    try_resolve = _resolvers()[resolver](runtime)
    getter = runtime.create_waiter()

    async def raising() -> None:
        await getter
        raise KeyError("resumed, then failed")

    failed: list[Any] = []
    ensureDeferred(raising()).addErrback(lambda f: failed.append(f.type))
    later: Deferred[None] = Deferred()

    async def resolving() -> Any:
        try_resolve(getter, _message(1))
        await later
        return sys.exc_info()[1]

    seen: list[Any] = []
    try:
        raise ValueError("handled while the coroutine starts")
    except ValueError:
        ensureDeferred(resolving()).addCallback(seen.append)
    later.callback(None)
    assert failed == [KeyError] and seen == [None]


@pytest.mark.parametrize("resolver", ["runtime", "python"])
def test_try_resolve_keeps_its_failure_when_setting_an_attribute_runs_python(
    resolver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The getter's bookkeeping after the resumption raised runs Python code here (a
    __setattr__): the exception is not pending meanwhile, and the getter keeps it."""
    from twisted.internet.defer import AlreadyCalledError
    from twisted.internet.task import Clock

    def setattr_hook(self: Any, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    monkeypatch.setattr(LeanDeferred, "__setattr__", setattr_hook)
    runtime = DeferredRuntime(Clock())
    getter = runtime.create_waiter()

    async def waiter() -> str:
        await getter
        return "returned"

    task = ensureDeferred(waiter())
    task.callback("by hand")  # the coroutine's return raises AlreadyCalledError
    assert _resolvers()[resolver](runtime)(getter, _message(1)) is True
    assert mstate(getter)[2] == ("Failure", AlreadyCalledError)
    getter.addErrback(lambda f: None)


@pytest.mark.parametrize("resolver", ["runtime", "python"])
@pytest.mark.parametrize("kind", ["list subclass", "deque"])
def test_try_resolve_appends_to_the_next_getters_callbacks_as_python_does(
    resolver: str, kind: str
) -> None:
    """The coroutine's next Deferred has a ``_callbacks`` that is not a plain list: its
    own ``append`` takes the resumption pair."""
    import collections

    from twisted.internet.task import Clock

    appended: list[Any] = []

    class Callbacks(list[Any]):
        def append(self, item: Any) -> None:
            appended.append(item)
            super().append(item)

    runtime = DeferredRuntime(Clock())
    getter, following = runtime.create_waiter(), runtime.create_waiter()
    following._callbacks = Callbacks() if kind == "list subclass" else collections.deque()

    async def waiter() -> Any:
        await getter
        return (await following).delivery_tag

    results: list[Any] = []
    ensureDeferred(waiter()).addBoth(results.append)
    assert _resolvers()[resolver](runtime)(getter, _message(1)) is True
    assert mstate(getter)[2] is None  # no Failure kept
    assert len(following._callbacks) == 1
    assert len(appended) == (1 if kind == "list subclass" else 0)


def test_try_resolve_keeps_what_resuming_raised_as_callback_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Twisted's resumption does not raise (it catches what the coroutine raises); were
    it to, the getter keeps the Failure, as LeanDeferred.callback's own path does."""
    from twisted.internet.task import Clock

    from txamqp091.twisted import _deferred
    from txamqp091.twisted import runtime as runtime_module

    def broken(*_: Any) -> None:
        raise RuntimeError("resumption failed")

    traces: list[Trace] = []
    for module, fire in (
        (_deferred, _callback),
        # The Python try_resolve: the C one calls neither function patched here.
        (
            runtime_module,
            lambda d, v: runtime_module.PURE_TRY_RESOLVE(DeferredRuntime(Clock()), d, v),
        ),
    ):
        monkeypatch.setattr(module, "_RESUME", broken)
        monkeypatch.setattr(module, "_resume_coroutine", broken)
        trace: Trace = []
        d = LeanDeferred()

        async def waiter(d: Deferred[Any] = d) -> Any:
            return await d

        ensureDeferred(waiter())
        fire(d, _message(1))
        trace.append(mstate(d))
        d.addErrback(lambda f, t=trace: t.append(("handled", f.type))).addErrback(lambda f: None)
        trace.append(mstate(d))
        traces.append(trace)
        monkeypatch.undo()
    assert traces[0] == traces[1]
    assert traces[0][0][2] == ("Failure", RuntimeError)


# -- fire_each: the confirms one ack settles, fired in one loop --------------------------------


@pytest.fixture(params=["c", "python"])
def firing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test that takes it runs with ``_deferred.fire_each`` as it is (the C one where
    the accelerator is built) and as the Python one, the reference."""
    from txamqp091.twisted import _deferred

    if request.param == "c":
        if _deferred.fire_each is _deferred.PURE_FIRE_EACH:
            pytest.skip("no C fire_each (the accelerator is not built, or this Twisted)")
    else:
        monkeypatch.setattr(_deferred, "fire_each", _deferred.PURE_FIRE_EACH)
    return str(request.param)


def _through_fire_each(monkeypatch: pytest.MonkeyPatch) -> list[Deferred[Any]]:
    """From now on, a LeanDeferred's callback() goes through fire_each([d], result); the
    Deferreds fire_each hands to callback() itself (its general case) are listed."""
    from txamqp091.twisted._deferred import fire_each

    original = LeanDeferred.callback
    general: list[Deferred[Any]] = []
    inside: list[Deferred[Any]] = []

    def callback(self: LeanDeferred, result: Any) -> None:
        if self.called or any(d is self for d in inside):
            if not self.called:
                general.append(self)
            original(self, result)  # fired twice raises, as it must
            return
        inside.append(self)
        try:
            fire_each([self], result)
        finally:
            inside.remove(self)

    monkeypatch.setattr(LeanDeferred, "callback", callback)
    return general


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_fire_each_fires_as_callback_would(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch, resumption: str, firing: str
) -> None:
    plain: Trace = []
    scenario(Deferred, plain)
    _through_fire_each(monkeypatch)
    ours: Trace = []
    scenario(LeanDeferred, ours)
    assert ours == plain


def test_fire_each_runs_a_lone_plain_pair_itself(
    monkeypatch: pytest.MonkeyPatch, firing: str
) -> None:
    general = _through_fire_each(monkeypatch)
    loops = general_loops(monkeypatch)
    seen: list[Any] = []
    d = LeanDeferred()
    d.addCallbacks(seen.append, seen.append)
    d.callback(None)
    assert seen == [None] and d.called and d.result is None
    assert general == [] and loops == []


def test_under_deferred_debugging_fire_each_leaves_each_to_callback(
    monkeypatch: pytest.MonkeyPatch, firing: str
) -> None:
    """Deferred debugging is read once per batch, on the class (where setDebugging sets
    it): on, each Deferred is fired by callback(), which records where from."""
    from twisted.internet import defer

    from txamqp091.twisted._deferred import fire_each

    loops = general_loops(monkeypatch)
    defer.setDebugging(True)
    try:
        batch = [LeanDeferred(), LeanDeferred()]
        seen: list[Any] = []
        for d in batch:
            d.addCallbacks(seen.append, seen.append)
        fire_each(batch, None)
    finally:
        defer.setDebugging(False)
    assert seen == [None, None] and loops == batch
    assert all(d._debugInfo is not None and d._debugInfo.invoker for d in batch)


def test_fire_each_fires_a_mixed_batch_in_order_as_callback_would(firing: str) -> None:
    """A batch as an ack settles it: each kind of Deferred, fired once, in order."""
    from txamqp091.twisted._deferred import fire_each

    def batch(trace: Trace) -> list[Deferred[Any]]:
        kinds: list[Deferred[Any]] = []
        lone = LeanDeferred()
        lone.addCallbacks(record(trace, "lone"), record(trace, "lone eb"))
        kinds.append(lone)
        raising = LeanDeferred()
        raising.addCallback(lambda _: 1 / 0)
        kinds.append(raising)
        plain: Deferred[Any] = Deferred()
        plain.addCallback(record(trace, "plain"))
        kinds.append(plain)
        done = LeanDeferred()
        done.callback("earlier")
        kinds.append(done)
        two = LeanDeferred()
        two.addCallback(lambda r: ("two", r)).addCallback(record(trace, "two"))
        kinds.append(two)
        bare = LeanDeferred()
        kinds.append(bare)
        returns_deferred = LeanDeferred()
        returns_deferred.addCallback(lambda _: succeed("inner"))
        kinds.append(returns_deferred)
        return kinds

    traces: list[Trace] = []
    for fire in ("callback", "fire_each"):
        trace: Trace = []
        ds = batch(trace)
        if fire == "fire_each":
            fire_each(ds, None)
        else:
            for d in ds:
                if not d.called:
                    d.callback(None)
        trace.extend(state(d) for d in ds)
        ds[1].addErrback(lambda f: f.trap(ZeroDivisionError))
        traces.append(trace)
    assert traces[0] == traces[1]


def test_a_waiting_coroutine_is_resumed_by_the_fast_resumption(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where this Twisted allows it, _resume_coroutine resumes a coroutine (callback()
    and try_resolve), not _inlineCallbacks, else the "fast" runs above would only
    compare Twisted with itself; a generator under @inlineCallbacks still gets Twisted's."""
    from txamqp091.twisted import _deferred
    from txamqp091.twisted import runtime as runtime_module

    assert _deferred.FAST_RESUMPTION
    fast: list[Any] = []
    twisted_loop: list[Any] = []
    real_fast = _deferred._resume_coroutine
    real_loop = _deferred._RESUME

    def counting_fast(result: Any, args: Any) -> None:
        fast.append(result)
        real_fast(result, args)

    def counting_loop(result: Any, *rest: Any) -> None:
        twisted_loop.append(result)
        real_loop(result, *rest)

    for module in (_deferred, runtime_module):
        monkeypatch.setattr(module, "_resume_coroutine", counting_fast)
        monkeypatch.setattr(module, "_RESUME", counting_loop)
    trace: Trace = []
    awaited_in_a_loop(LeanDeferred, trace)
    assert fast == ["one", None] and twisted_loop == []  # the errback: Twisted's loop
    runtime = DeferredRuntime(Clock())
    resumed_in_a_loop(runtime.create_waiter, runtime_module.PURE_TRY_RESOLVE.__get__(runtime), [])
    assert len(fast) == 5  # and the three of the loop above
    fast.clear()
    # The C try_resolve (where it is built) resumes the coroutine itself: neither.
    resumed_in_a_loop(runtime.create_waiter, runtime.try_resolve, [])
    if DeferredRuntime.try_resolve is not runtime_module.PURE_TRY_RESOLVE:
        assert fast == [] and twisted_loop == []
    fast.clear()
    awaited_by_inline_callbacks(LeanDeferred, [])
    assert fast == [] and twisted_loop == ["one", "two"]


@pytest.mark.parametrize("value", [None, "message"])
def test_succeeded_makes_without_init_what_the_class_makes(value: Any) -> None:
    """runtime.succeeded() makes its LeanDeferred without Deferred.__init__ (_BARE_NEW,
    true on this Twisted): the same attributes, in the same order, as a LeanDeferred()
    fired with the value, and a list of callbacks of its own."""
    from twisted.internet.task import Clock

    from txamqp091.message import Message
    from txamqp091.twisted import runtime as runtime_module

    if value == "message":
        value = Message(1, "ctag", 1, False, "", "q", None, b"body")  # type: ignore[arg-type]
    assert runtime_module._BARE_NEW
    runtime = DeferredRuntime(Clock())
    ours, again = runtime.succeeded(value), runtime.succeeded(value)
    theirs: Deferred[Any] = LeanDeferred()
    theirs.callback(value)
    assert type(ours) is LeanDeferred
    assert layout(ours) == layout(theirs)
    assert ours._callbacks is not again._callbacks


def test_a_resumed_coroutine_waits_with_twisteds_no_keywords() -> None:
    """_resume_coroutine's pair on the next awaited Deferred takes Twisted's shared empty
    keywords (_NONE_KWARGS), not a new dict per await."""
    from twisted.internet import defer

    from txamqp091.twisted import _deferred

    first: Deferred[Any] = LeanDeferred()
    second: Deferred[Any] = LeanDeferred()

    async def waiter() -> Any:
        await first
        return await second

    done = ensureDeferred(waiter())
    first.callback(1)
    assert _deferred.FAST_RESUMPTION
    (call, _), *_ = second._callbacks
    assert call[2] is defer._NONE_KWARGS and not call[2]
    second.callback(2)
    assert done.result == 2


def _confirm_channel() -> Any:
    from tests.twisted_adapter.support import Wire, result_of

    wire = Wire()
    ch = wire.channel(wire.open())
    d = ch.confirm_delivery()
    wire.sent()
    wire.feed(wire.frames.confirm_select_ok(1))
    result_of(d)
    return wire, ch


def test_a_confirmed_publishs_waiter_is_what_the_class_makes() -> None:
    """With the C accelerator, basic_publish makes a confirmed publish's LeanDeferred
    without Deferred.__init__'s frame (_accel.install_bare_waiter): the same attributes,
    in the same order, as LeanDeferred(), a list of callbacks of its own, and fired by
    the broker's ack as any other."""
    from tests.twisted_adapter.support import result_of
    from txamqp091.core import _accel
    from txamqp091.twisted import runtime as runtime_module

    wire, ch = _confirm_channel()
    assert runtime_module._BARE_NEW
    made: list[Deferred[Any]] = []
    real_init = Deferred.__init__
    try:
        Deferred.__init__ = lambda self, canceller=None: (  # type: ignore[method-assign]
            made.append(self) or real_init(self, canceller)
        )
        # The class's __init__ is no longer the one installed for: the plain call.
        patched = ch.basic_publish("", "q", b"0")
    finally:
        Deferred.__init__ = real_init  # type: ignore[method-assign]
    assert made == [patched]
    inits: list[str] = []

    def profile(frame: Any, event: str, _arg: Any) -> None:
        if event == "call" and frame.f_code is real_init.__code__:
            inits.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        ours, again = ch.basic_publish("", "q", b"1"), ch.basic_publish("", "q", b"2")
    finally:
        sys.setprofile(None)
    # The C path does not run Deferred.__init__; the pure basic_publish does.
    assert inits == ([] if _accel.speedups is not None else ["__init__", "__init__"])
    theirs: Deferred[Any] = LeanDeferred()
    assert type(ours) is LeanDeferred
    assert layout(ours) == layout(theirs)
    assert ours._callbacks is not again._callbacks
    seen: list[Any] = []
    ours.addCallback(seen.append)
    wire.sent()
    wire.feed(wire.frames.ack(1, 3, multiple=True))
    assert seen == [None] and result_of(again) is None and result_of(patched) is None


def test_a_confirmed_publishs_waiter_under_deferred_debugging_has_its_creator() -> None:
    """Deferred debugging on (setDebugging sets Deferred.debug): the waiter is made by
    Deferred.__init__, which records where it was created, as Twisted does."""
    from twisted.internet import defer

    _wire, ch = _confirm_channel()
    defer.setDebugging(True)
    try:
        d = ch.basic_publish("", "q", b"x")
    finally:
        defer.setDebugging(False)
    assert type(d) is LeanDeferred
    assert d._debugInfo is not None and d._debugInfo.creator
