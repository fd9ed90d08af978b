"""DeferredRuntime.resolve_all: an ack's Deferreds settled as one batch.

Inside a read (``dispatch_read``) the batch is held like any single waiter and its
Deferreds fire after the read, in order, in the batch's place among the read's other
settled waiters; outside a read they fire at once. A Deferred of the batch that an
earlier callback cancelled is skipped, never fired twice.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock

from txamqp091.testing.twisted import FakeBroker
from txamqp091.twisted.runtime import DeferredRuntime
from txamqp091.twisted.testing import connected


def recorder(fired: list[Any], name: str) -> Deferred[Any]:
    d: Deferred[Any] = Deferred()
    d.addCallbacks(
        lambda value: fired.append((name, value)),
        lambda failure: fired.append((name, failure.type)),
    )
    return d


def test_a_batch_fires_after_the_read_in_its_place() -> None:
    runtime = DeferredRuntime(Clock())
    fired: list[Any] = []
    first, a, b, last, failed = (recorder(fired, n) for n in ("first", "a", "b", "last", "x"))

    def dispatch(events: list[Any]) -> None:
        runtime.resolve(first, 1)
        runtime.resolve_all([a, b], None)
        runtime.reject(failed, ValueError("no"))
        runtime.resolve(last, 2)
        assert fired == []  # nothing fires during the read
        assert not a.called and not b.called

    runtime.dispatch_read(dispatch, [object()])
    assert fired == [("first", 1), ("a", None), ("b", None), ("x", ValueError), ("last", 2)]


def test_outside_a_read_a_batch_fires_at_once_skipping_settled_ones() -> None:
    runtime = DeferredRuntime(Clock())
    fired: list[Any] = []
    a, b, c = (recorder(fired, n) for n in "abc")
    b.cancel()
    runtime.resolve_all([a, b, c], "ok")
    assert fired == [("b", CancelledError), ("a", "ok"), ("c", "ok")]


def test_a_deferred_cancelled_by_an_earlier_callback_of_its_batch_is_skipped() -> None:
    runtime = DeferredRuntime(Clock())
    fired: list[Any] = []
    a, b, c = (recorder(fired, n) for n in "abc")
    a.addCallback(lambda _: c.cancel())

    runtime.dispatch_read(lambda events: runtime.resolve_all([a, b, c], None), [object()])
    # c fired once, by the cancel (a second firing would raise AlreadyCalledError here).
    assert fired == [("a", None), ("c", CancelledError), ("b", None)]


def test_a_multiple_ack_fires_its_publishes_in_order_after_the_read() -> None:
    broker = FakeBroker()
    conn, pump = connected(broker)
    ch = pump.result(conn.channel())
    pump.result(ch.confirm_delivery())
    pump.server.hold_confirms = True
    fired: list[Any] = []
    publishes = [ch.basic_publish("", "nowhere", b"%d" % i) for i in range(4)]
    for i, d in enumerate(publishes):
        d.addCallback(lambda value, i=i: fired.append((i, value, [p.called for p in publishes])))
    pump.flush()
    assert fired == [] and len(ch._unconfirmed) == 4
    pump.server.release_confirms()  # one Basic.Ack, multiple=True
    pump.flush()
    # One after the other, oldest first.
    assert [(i, v) for i, v, _ in fired] == [(0, None), (1, None), (2, None), (3, None)]
    assert fired[0][2] == [True, False, False, False]
    assert len(ch._unconfirmed) == 0


def test_try_resolve_settles_a_pending_deferred_once_and_says_so() -> None:
    """try_resolve is is_done then resolve in one call, held inside a read like resolve."""
    runtime = DeferredRuntime(Clock())
    fired: list[Any] = []
    a, b, cancelled = (recorder(fired, n) for n in ("a", "b", "c"))
    cancelled.cancel()
    assert runtime.try_resolve(a, 1) is True
    assert runtime.try_resolve(a, 2) is False  # fired already
    assert runtime.try_resolve(cancelled, 3) is False
    assert fired == [("c", CancelledError), ("a", 1)]
    results: list[bool] = []

    def dispatch(events: list[Any]) -> None:
        results.append(runtime.try_resolve(b, "first"))
        results.append(runtime.try_resolve(b, "second"))  # held: counts as done
        assert runtime.is_done(b) and not b.called

    runtime.dispatch_read(dispatch, [object(), object()])
    assert results == [True, False]
    assert fired[-1] == ("b", "first") and len(fired) == 3


def test_in_loop_thread_is_the_reactors_thread_or_any_before_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """message.ack() asks this once per message: True in the reactor's I/O thread, or in
    any thread while none is registered (a Clock-driven program), else False."""
    import threading

    from twisted.python import threadable

    runtime = DeferredRuntime(Clock())
    monkeypatch.setattr(threadable, "ioThread", None)
    assert runtime.in_loop_thread() is True
    monkeypatch.setattr(threadable, "ioThread", threading.get_ident())
    assert runtime.in_loop_thread() is True
    seen: list[bool] = []
    other = threading.Thread(target=lambda: seen.append(runtime.in_loop_thread()))
    other.start()
    other.join()
    assert seen == [False]
