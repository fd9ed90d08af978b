"""The asyncio runtime on its own: waiters, cancellation, user callbacks, logging, imports."""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys

import pytest

from txamqp091 import ConnectionParameters
from txamqp091.exceptions import StreamLostError
from txamqp091.tornado import AMQPProtocol, Connection


def new_protocol() -> AMQPProtocol:
    return AMQPProtocol(ConnectionParameters())


def test_importing_the_tornado_adapter_never_imports_twisted() -> None:
    code = (
        "import sys\n"
        "import txamqp091.tornado, txamqp091.tornado.connect, txamqp091.tornado.protocol\n"
        "bad = sorted(m for m in sys.modules if m == 'twisted' or m.startswith('twisted.'))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "ok"


@pytest.mark.asyncio
async def test_waiters_are_futures_and_settle_once() -> None:
    p = new_protocol()
    w = p.create_waiter()
    assert isinstance(w, asyncio.Future) and not p.is_done(w)
    p.resolve(w, 1)
    p.resolve(w, 2)
    p.reject(w, ValueError("late"))
    assert p.is_done(w) and await w == 1
    assert await p.succeeded("x") == "x"
    with pytest.raises(KeyError):
        await p.failed(KeyError("k"))


@pytest.mark.asyncio
async def test_succeeded_none_is_one_done_future_that_nothing_changes() -> None:
    p = new_protocol()
    w = p.succeeded(None)
    assert p.succeeded(None) is w  # a publish outside confirm mode: no Future per publish
    assert isinstance(w, asyncio.Future) and w.done() and w.get_loop() is p._loop
    assert w.cancel() is False and not w.cancelled()
    with pytest.raises(asyncio.InvalidStateError):
        w.set_result(1)
    p.resolve(w, 2)
    p.reject(w, ValueError("late"))
    seen: list[object] = []
    w.add_done_callback(seen.append)
    w.add_done_callback(seen.append)
    await asyncio.sleep(0)
    assert seen == [w, w] and w.remove_done_callback(seen.append) == 0
    assert await w is None and await w is None and w.exception() is None
    assert p.succeeded(0) is not p.succeeded(0)  # any other value: a future of its own
    assert await asyncio.gather(w, w) == [None, None]


@pytest.mark.asyncio
async def test_try_resolve_settles_a_pending_future_once_and_says_so() -> None:
    p = new_protocol()
    w, cancelled = p.create_waiter(), p.create_waiter()
    cancelled.cancel()
    assert p.try_resolve(w, 1) is True
    assert p.try_resolve(w, 2) is False
    assert p.try_resolve(cancelled, 3) is False
    assert await w == 1 and cancelled.cancelled()


@pytest.mark.asyncio
async def test_resolve_all_settles_each_pending_future_and_skips_settled_ones() -> None:
    p = new_protocol()
    make = p.waiter_factory()
    a, b, c = make(), make(), make()
    b.cancel()
    p.resolve(c, "first")
    p.resolve_all([a, b, c], "batch")
    assert await a == "batch" and b.cancelled() and await c == "first"


@pytest.mark.asyncio
async def test_cancelling_a_waiter_runs_its_canceller_and_later_settling_is_ignored() -> None:
    p = new_protocol()
    calls: list[str] = []
    w = p.create_waiter(lambda: calls.append("cancelled"))
    done: list[str] = []
    p.add_done(w, lambda: done.append("done"))
    w.cancel()
    await asyncio.sleep(0)
    assert calls == ["cancelled"] and done == ["done"]
    p.resolve(w, 1)
    p.reject(w, ValueError())
    assert w.cancelled()
    finished = p.create_waiter(lambda: calls.append("never"))
    p.resolve(finished, None)
    await asyncio.sleep(0)
    assert calls == ["cancelled"]


@pytest.mark.asyncio
async def test_time_and_scheduling_use_the_running_loop() -> None:
    p = new_protocol()
    loop = asyncio.get_running_loop()
    assert abs(p.now() - loop.time()) < 0.5
    fired: list[str] = []
    p.call_soon(lambda: fired.append("soon"))
    handle = p.call_later(0.01, lambda: fired.append("later"))
    cancelled = p.call_later(0.01, lambda: fired.append("cancelled"))
    cancelled.cancel()
    assert handle is not None
    await asyncio.sleep(0.05)
    assert fired == ["soon", "later"]


@pytest.mark.asyncio
async def test_user_callback_errors_and_failing_coroutines_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    p = new_protocol()
    seen: list[int] = []

    def boom(n: int) -> None:
        raise RuntimeError(f"sync {n}")

    async def coro_fail(n: int) -> None:
        await asyncio.sleep(0)
        raise RuntimeError(f"async {n}")

    async def coro_ok(n: int) -> None:
        await asyncio.sleep(0)
        seen.append(n)

    with caplog.at_level(logging.ERROR, logger="txamqp091.tornado"):
        p.run_user_callback(boom, 1)
        p.run_user_callback(coro_fail, 2)
        p.run_user_callback(coro_ok, 3)
        p.run_user_callback(seen.append, 4)
        for _ in range(5):
            await asyncio.sleep(0)
    assert seen == [4, 3]
    messages = [
        (r.name, r.getMessage(), str(r.exc_info[1]) if r.exc_info else "") for r in caplog.records
    ]
    assert any("raised" in m and err == "sync 1" for _, m, err in messages), messages
    assert any("failed" in m and err == "async 2" for _, m, err in messages), messages
    assert all(name == "txamqp091.tornado" for name, _, _ in messages)
    assert not p._tasks  # finished coroutines are not kept


@pytest.mark.asyncio
async def test_log_formats_fields_and_maps_levels(caplog: pytest.LogCaptureFixture) -> None:
    p = new_protocol()
    with caplog.at_level(logging.DEBUG, logger="txamqp091.tornado"):
        p.log("warn", "broker blocked the connection: {reason}", reason="low on memory")
        p.log("info", "odd {missing}", other=1)
    assert caplog.records[0].levelno == logging.WARNING
    assert caplog.records[0].getMessage() == "broker blocked the connection: low on memory"
    assert caplog.records[1].levelno == logging.INFO
    assert "odd {missing}" in caplog.records[1].getMessage()


@pytest.mark.asyncio
async def test_an_unawaited_failed_handshake_does_not_log(caplog: pytest.LogCaptureFixture) -> None:
    def never_retrieved() -> list[str]:
        return [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        # The control: a failed future nobody looks at is reported by asyncio...
        control = asyncio.get_running_loop().create_future()
        control.set_exception(StreamLostError("control"))
        del control
        gc.collect()
        assert len(never_retrieved()) == 1
        # ... but the connection's internal handshake waiter is not.
        p = new_protocol()
        assert isinstance(p.connection, Connection)
        p.connection.connection_lost("gone")
        assert p.ready.done() and not p.connection.is_open
        del p
        gc.collect()
        await asyncio.sleep(0)
    assert len(never_retrieved()) == 1
