"""FutureRuntime.resolve_all runs the settled futures' done callbacks from one loop Handle
(no broker): what they see and when they run must be what the loop's own Handle per
callback gives them. Each scenario runs three ways, the batch with its loop in C
(``_c_settle_all``, with the accelerator) and in Python, and the loop's way (the runtime
of a loop whose futures hide their callbacks), and the logs are compared."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from txamqp091.tornado import runtime as runtime_module
from txamqp091.tornado.runtime import FutureRuntime

tag: contextvars.ContextVar[str] = contextvars.ContextVar("tag", default="-")

# A scenario: futures (each with its callbacks: (name, context tag or None, raises,
# schedules a call_soon), a name added twice counts as the same function twice), then
# steps run from loop callbacks: ("all", [future indices]), ("soon", name),
# ("cancel", index), ("late", index) (add a callback to a settled future), ("turn",).
callback_spec = st.tuples(
    st.sampled_from("abcd"), st.sampled_from([None, "x", "y"]), st.booleans(), st.booleans()
)
futures_spec = st.lists(st.lists(callback_spec, max_size=3), min_size=1, max_size=6)
step_spec = st.one_of(
    st.tuples(st.just("all"), st.lists(st.integers(0, 5), max_size=6)),
    st.tuples(st.just("soon"), st.sampled_from("pqr")),
    st.tuples(st.just("cancel"), st.integers(0, 5)),
    st.tuples(st.just("late"), st.integers(0, 5)),
    st.tuples(st.just("turn"), st.just(0)),
)


#: The batch's loop: in C when the accelerator is built, and in Python.
SETTLERS = ["python"] + (["c"] if runtime_module._c_settle_all is not None else [])


def use_settler(m: pytest.MonkeyPatch, settler: str) -> None:
    if settler == "python":
        m.setattr(runtime_module, "_c_settle_all", None)


def run_scenario(
    futures: list[list[tuple[str, str | None, bool, bool]]],
    steps: list[tuple[str, Any]],
    batch: bool,
    monkeypatch: pytest.MonkeyPatch,
    settler: str = "c",
) -> list[Any]:
    log: list[Any] = []
    with monkeypatch.context() as m:
        use_settler(m, settler)
        if not batch:
            m.setattr(runtime_module, "_callbacks_visible", lambda loop: False)
        loop = asyncio.new_event_loop()
        try:
            runtime = FutureRuntime(loop)
            assert runtime._can_wake is batch
            loop.set_exception_handler(lambda _, ctx: log.append(("error", str(ctx["exception"]))))
            made: list[asyncio.Future[Any]] = []
            for i, callbacks in enumerate(futures):
                f: asyncio.Future[Any] = runtime.waiter_factory()()
                made.append(f)
                functions: dict[str, Callable[[asyncio.Future[Any]], None]] = {}
                for name, ctx_tag, raises, schedules in callbacks:
                    fn = functions.get(name)
                    if fn is None:
                        fn = functions[name] = _callback(log, loop, f"{i}{name}", raises, schedules)
                    if ctx_tag is None:
                        f.add_done_callback(fn)
                    else:
                        context = contextvars.copy_context()
                        context.run(tag.set, ctx_tag)
                        f.add_done_callback(fn, context=context)
            todo = list(steps)
            finished: asyncio.Future[None] = loop.create_future()

            def drive() -> None:
                while todo:
                    kind, arg = todo.pop(0)
                    if kind == "turn":
                        loop.call_soon(drive)
                        return
                    if kind == "all":
                        runtime.resolve_all([made[i % len(made)] for i in arg], f"v{len(todo)}")
                    elif kind == "soon":
                        loop.call_soon(log.append, ("soon", arg))
                    elif kind == "cancel":
                        made[arg % len(made)].cancel()
                    else:
                        made[arg % len(made)].add_done_callback(
                            _callback(log, loop, f"late{arg}", False, False)
                        )
                finished.set_result(None)

            loop.call_soon(drive)
            loop.run_until_complete(finished)
            for _ in range(4):  # what the last steps queued (callbacks, their call_soon)
                loop.run_until_complete(asyncio.sleep(0))
        finally:
            loop.close()
    return log


def _callback(
    log: list[Any], loop: asyncio.AbstractEventLoop, name: str, raises: bool, schedules: bool
) -> Callable[[asyncio.Future[Any]], None]:
    def callback(f: asyncio.Future[Any]) -> None:
        outcome = "cancelled" if f.cancelled() else f.result()
        log.append((name, tag.get(), outcome))
        if schedules:
            loop.call_soon(log.append, ("after", name))
        if raises:
            raise ValueError(name)

    return callback


@settings(max_examples=300, deadline=None)
@given(futures=futures_spec, steps=st.lists(step_spec, max_size=12))
def test_the_batch_runs_what_the_loop_would_in_its_order(
    futures: list[list[tuple[str, str | None, bool, bool]]],
    steps: list[tuple[str, Any]],
) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        reference = run_scenario(futures, steps, False, monkeypatch)
        for settler in SETTLERS:
            assert run_scenario(futures, steps, True, monkeypatch, settler) == reference, settler


@pytest.fixture(params=SETTLERS)
def settler(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    use_settler(monkeypatch, request.param)
    return str(request.param)


def test_one_handle_runs_the_callbacks_of_consecutive_batches(settler: str) -> None:
    loop = asyncio.new_event_loop()
    try:
        runtime = FutureRuntime(loop)
        ran: list[int] = []
        waiters = []
        for i in range(6):
            f = runtime.waiter_factory()()
            f.add_done_callback(lambda _, i=i: ran.append(i))
            waiters.append(f)
        runtime.resolve_all(waiters[:3], None)
        runtime.resolve_all(waiters[3:], None)
        assert len(loop._ready) == 1  # type: ignore[attr-defined]
        loop.run_until_complete(asyncio.sleep(0))
        assert ran == [0, 1, 2, 3, 4, 5]
    finally:
        loop.close()


def test_a_debug_loop_keeps_a_handle_per_callback() -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.set_debug(True)
        runtime = FutureRuntime(loop)
        waiters = [runtime.waiter_factory()() for _ in range(3)]
        for f in waiters:
            f.add_done_callback(lambda _: None)
        runtime.resolve_all(waiters, None)
        assert len(loop._ready) == 3  # type: ignore[attr-defined]
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()


@pytest.mark.parametrize("batch", [True, False])
def test_keyboard_interrupt_leaves_the_remaining_callbacks_queued_in_order(
    batch: bool, monkeypatch: pytest.MonkeyPatch, settler: str
) -> None:
    if not batch:
        monkeypatch.setattr(runtime_module, "_callbacks_visible", lambda loop: False)
    loop = asyncio.new_event_loop()
    try:
        runtime = FutureRuntime(loop)
        ran: list[str] = []

        def interrupt(_: object) -> None:
            ran.append("interrupt")
            raise KeyboardInterrupt

        waiters = [runtime.waiter_factory()() for _ in range(3)]
        waiters[0].add_done_callback(lambda _: ran.append("first"))
        waiters[1].add_done_callback(interrupt)
        waiters[2].add_done_callback(lambda _: ran.append("last"))
        runtime.resolve_all(waiters, None)
        loop.call_soon(ran.append, "other")
        with pytest.raises(KeyboardInterrupt):
            loop.run_forever()
        assert ran == ["first", "interrupt"]
        loop.run_until_complete(asyncio.sleep(0))
        assert ran == ["first", "interrupt", "last", "other"]
    finally:
        loop.close()


def test_a_task_awaiting_a_confirmed_future_resumes_with_its_result() -> None:
    async def main() -> str:
        runtime = FutureRuntime()
        f = runtime.waiter_factory()()
        task = asyncio.ensure_future(_wait(f))
        await asyncio.sleep(0)  # the task waits on f
        runtime.resolve_all([f], "acked")
        return await task

    assert asyncio.run(main()) == "acked"


async def _wait(f: asyncio.Future[Any]) -> Any:
    return await f


def _settled_by_c(runtime: FutureRuntime, waiters: Any) -> bool:
    """Whether the C loop takes ``waiters`` (it declines anything but a list of plain
    asyncio Futures, before touching them)."""
    settle = runtime_module._c_settle_all
    assert settle is not None
    return bool(settle(waiters, None, None, runtime._queue_calls))


class _Future(asyncio.Future):  # type: ignore[type-arg]
    pass


@pytest.mark.parametrize(
    "odd",
    ["instance attribute", "subclass", "tuple of futures"],
)
def test_what_the_c_loop_declines_the_python_loop_settles_alike(
    odd: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if runtime_module._c_settle_all is None:
        pytest.skip("no accelerator")
    outcomes = []
    for settler in ("c", "python"):
        with monkeypatch.context() as m:
            use_settler(m, settler)
            loop = asyncio.new_event_loop()
            try:
                runtime = FutureRuntime(loop)
                ran: list[Any] = []
                waiters: Any = [runtime.waiter_factory()() for _ in range(3)]
                if odd == "instance attribute":
                    waiters[1].note = "x"
                elif odd == "subclass":
                    waiters[1] = _Future(loop=loop)
                for i, f in enumerate(waiters):
                    f.add_done_callback(lambda f, i=i, ran=ran: ran.append((i, f.result())))
                if odd == "tuple of futures":
                    waiters = tuple(waiters)
                if settler == "c":
                    probe = [runtime.waiter_factory()()]
                    if odd == "instance attribute":
                        probe[0].note = "x"
                    elif odd == "subclass":
                        probe = [_Future(loop=loop)]
                    assert not _settled_by_c(runtime, tuple(probe) if odd[0] == "t" else probe)
                    assert not any(f.done() for f in probe)
                runtime.resolve_all(waiters, "ok")
                assert len(loop._ready) == 1  # type: ignore[attr-defined]
                loop.run_until_complete(asyncio.sleep(0))
                outcomes.append(ran)
            finally:
                loop.close()
    assert outcomes[0] == outcomes[1] == [(0, "ok"), (1, "ok"), (2, "ok")]


class _Loud:
    """A callback whose comparison raises: remove_done_callback compares callbacks."""

    def __call__(self, f: object) -> None:
        pass

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("compared")

    __hash__ = object.__hash__


def test_an_error_while_taking_callbacks_propagates_with_what_came_before_settled(
    settler: str,
) -> None:
    loop = asyncio.new_event_loop()
    try:
        runtime = FutureRuntime(loop)
        waiters = [runtime.waiter_factory()() for _ in range(3)]
        waiters[0].add_done_callback(lambda _: None)
        waiters[1].add_done_callback(_Loud())
        waiters[1].add_done_callback(lambda _: None)
        with pytest.raises(RuntimeError, match="compared"):
            runtime.resolve_all(waiters, None)
        assert [f.done() for f in waiters] == [True, False, False]
    finally:
        loop.close()
