"""The loop thread's direct path: a caller runs an operation itself only when that keeps
the order of everything submitted before it, and wakes the loop for what it queued."""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any

import pytest

from txamqp091.blocking import _loop
from txamqp091.blocking._loop import _thread_pipe, loop_thread, wake_later


def test_a_direct_call_runs_in_the_calling_thread_when_the_loop_is_idle() -> None:
    lt = loop_thread()
    if not lt.loop.direct:
        pytest.skip("no epoll: every operation goes through the queue")
    lt.barrier(5.0)  # nothing queued any more
    assert lt.call(threading.get_ident, 5.0, "ident", direct=True) == threading.get_ident()
    assert lt.call(threading.get_ident, 5.0, "ident") == lt.ident


def test_a_direct_call_waits_its_turn_behind_queued_operations() -> None:
    lt = loop_thread()
    gate = threading.Event()
    order: list[str] = []
    lt.submit(lambda: None if gate.wait(5.0) else None)  # the loop is busy, holding its lock
    lt.submit(lambda: order.append("queued"))
    result: list[Any] = []

    def direct() -> int:
        order.append("direct")
        return threading.get_ident()

    caller = threading.Thread(target=lambda: result.append(lt.call(direct, 5.0, "x", True)))
    caller.start()
    gate.set()
    caller.join(5.0)
    assert order == ["queued", "direct"]
    assert result == [lt.ident]  # it went through the queue, run by the loop


def test_what_a_direct_call_schedules_on_the_loop_runs_promptly() -> None:
    lt = loop_thread()
    lt.barrier(5.0)
    ran = threading.Event()
    loop = lt.loop
    lt.call(lambda: loop.call_soon(ran.set), 5.0, "call_soon", direct=True)
    assert ran.wait(5.0)
    ran.clear()
    lt.call(lambda: loop.call_later(0.01, ran.set), 5.0, "call_later", direct=True)
    assert ran.wait(5.0)


def test_an_error_in_a_direct_call_reaches_the_caller_and_frees_the_loop() -> None:
    lt = loop_thread()
    lt.barrier(5.0)

    def fail() -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        lt.call(fail, 5.0, "fail", direct=True)
    assert lt.call(lambda: 42, 5.0, "after") == 42


def test_wake_later_runs_at_once_outside_the_loop_and_before_the_next_poll_inside() -> None:
    lt = loop_thread()
    woken: list[int] = []
    wake_later(woken.append, 1)
    assert woken == [1]
    seen_inside: list[list[int]] = []

    def in_loop() -> None:
        wake_later(woken.append, 2)
        seen_inside.append(list(woken))  # not yet: the loop has not polled since

    lt.call(in_loop, 5.0, "wake_later")  # returns once the loop polled, so after the wake
    assert woken == [1, 2]
    if lt.loop.direct:
        assert seen_inside == [[1]]


def test_a_threads_wake_up_pipe_is_closed_when_the_thread_ends() -> None:
    made: list[Any] = []

    def work() -> None:
        _thread_pipe()
        made.append(weakref.ref(_loop._pipes.pipe))

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(5.0)
    gc.collect()
    assert made and made[0]() is None  # dropped with the thread: its __del__ closed both ends
