"""The reconnect loop both adapters run, on each adapter's own runtime (Deferreds on
``task.Clock``, Futures on a manual clock): the same scenario, the same outcome.

Attempts go to a scripted network (each ``connect_once`` waiter is settled by the
test), so what is checked is the loop itself: which node, when, how failures are
counted, when it gives up, what waiters see, and that ``stop()`` ends it cleanly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from twisted.internet.task import Clock

from tests.manual_clock import ManualClock
from txamqp091 import ConnectionParameters
from txamqp091.client.reconnecting import ReconnectingClient
from txamqp091.client.runtime import Runtime
from txamqp091.exceptions import (
    AMQPConnectionError,
    ConnectionClosedByBroker,
    ConnectionWrongStateError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    StreamLostError,
)
from txamqp091.tornado.runtime import FutureRuntime
from txamqp091.twisted.runtime import DeferredRuntime

pytestmark = pytest.mark.asyncio

REFUSED = ProbableAuthenticationError("(403) ACCESS_REFUSED - Login was refused", reply_code=403)


class Adapter:
    """One adapter's runtime on a clock the test moves, and a way to read a waiter."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.runtime: Runtime[Any]
        if name == "twisted":
            self.twisted_clock = Clock()
            self.runtime = DeferredRuntime(self.twisted_clock)
        else:
            self.manual_clock = ManualClock()
            self.runtime = FutureRuntime(asyncio.get_running_loop(), self.manual_clock)

    async def settle(self) -> None:
        """Run what is ready: the loop's callbacks, and calls due now on the clock."""
        for _ in range(5):
            await asyncio.sleep(0)
            if self.name == "twisted":
                self.twisted_clock.advance(0)
            else:
                self.manual_clock.advance(0)

    async def advance(self, seconds: float) -> None:
        await self.settle()
        if self.name == "twisted":
            self.twisted_clock.advance(seconds)
        else:
            self.manual_clock.advance(seconds)
        await self.settle()

    def now(self) -> float:
        return self.runtime.now()

    def outcome(self, waiter: Any) -> tuple[str, Any]:
        """("pending", None), ("ok", value) or ("failed", error), without consuming it."""
        if not self.runtime.is_done(waiter):
            return ("pending", None)
        seen: list[tuple[str, Any]] = []
        self.runtime.on_result(
            waiter, lambda v: seen.append(("ok", v)), lambda e: seen.append(("failed", e))
        )
        if isinstance(waiter, asyncio.Future):
            return (
                ("ok", waiter.result())
                if waiter.exception() is None
                else (
                    "failed",
                    waiter.exception(),
                )
            )
        assert seen
        return seen[0]


class FakeConnection:
    """What the loop needs of a connection: open, closable, ``closed`` when it ends."""

    def __init__(self, runtime: Runtime[Any], host: str) -> None:
        self.runtime = runtime
        self.host = host
        self.is_open = True
        self.is_closed = False
        self.close_asked = 0
        self.reason: BaseException | None = None
        self._closed: list[Any] = []

    @property
    def closed(self) -> Any:
        if self.is_closed:
            return self.runtime.succeeded(self.reason)
        waiter = self.runtime.create_waiter()
        self._closed.append(waiter)
        return waiter

    def end(self, reason: BaseException | None) -> None:
        self.is_open = False
        self.is_closed = True
        self.reason = reason
        for waiter in self._closed:
            self.runtime.resolve(waiter, reason)

    def close(self) -> Any:
        self.close_asked += 1
        self.runtime.call_soon(lambda: self.end(None))
        return self.runtime.succeeded(None)


class Network:
    """Each attempt is a pending waiter the test settles: ``accept`` or ``fail``."""

    def __init__(self, runtime: Runtime[Any]) -> None:
        self.runtime = runtime
        self.attempts: list[tuple[str, Any]] = []
        self.cancelled: list[str] = []

    def connect_once(self, params: ConnectionParameters) -> Any:
        waiter = self.runtime.create_waiter()
        self.attempts.append((params.host, waiter))
        return waiter

    def cancel(self, waiter: Any) -> None:
        for host, w in self.attempts:
            if w is waiter:
                self.cancelled.append(host)
        self.runtime.reject(waiter, asyncio.CancelledError())

    @property
    def hosts(self) -> list[str]:
        return [host for host, _ in self.attempts]

    def accept(self) -> FakeConnection:
        host, waiter = self.attempts[-1]
        conn = FakeConnection(self.runtime, host)
        self.runtime.resolve(waiter, conn)
        return conn

    def fail(self, error: BaseException) -> None:
        self.runtime.reject(self.attempts[-1][1], error)


class Session:
    def __init__(self) -> None:
        self.stopping = False
        self.events: list[Any] = []

    def attach(self, conn: Any) -> None:
        self.events.append(("attach", conn.host))

    def detach(self) -> None:
        self.events.append("detach")

    def stop(self, error: BaseException) -> None:
        self.stopping = True
        self.events.append(("stop", error))

    def halt(self, error: BaseException) -> None:
        self.stopping = True
        self.events.append(("halt", error))


class Rig:
    def __init__(self, adapter: Adapter, hosts: list[str], policy: dict[int, float]) -> None:
        self.adapter = adapter
        self.network = Network(adapter.runtime)
        self.session = Session()
        self.asked: list[int] = []

        def retry_policy(attempt: int) -> float:
            self.asked.append(attempt)
            return policy.get(attempt, 1.0)

        self.client: ReconnectingClient[Any] = ReconnectingClient(
            adapter.runtime,
            [ConnectionParameters(host=h) for h in hosts],
            self.network.connect_once,
            self.network.cancel,
            self.session,
            retry_policy,
        )
        self.failed: list[tuple[str, BaseException]] = []
        self.client.on_attempt_failed.append(lambda p, e: self.failed.append((p.host, e)))


@pytest_asyncio.fixture(params=["twisted", "asyncio"])
async def adapter(request: pytest.FixtureRequest) -> AsyncIterator[Adapter]:
    yield Adapter(request.param)


def rig(adapter: Adapter, hosts: list[str], policy: dict[int, float] | None = None) -> Rig:
    return Rig(adapter, hosts, policy or {})


# -- tests ---------------------------------------------------------------------------------


async def test_backoff_follows_the_policy_and_a_lost_connection_starts_over(
    adapter: Adapter,
) -> None:
    r = rig(adapter, ["a"], {1: 0.5, 2: 1.0, 3: 2.0})
    first = r.client.start()
    assert r.network.hosts == ["a"]
    r.network.fail(ConnectionRefusedError("refused"))
    await adapter.settle()
    assert adapter.outcome(first) == ("ok", None)  # the first attempt ended
    for delay in (0.5, 1.0):
        await adapter.advance(delay - 0.01)
        attempts = len(r.network.attempts)
        await adapter.advance(0.01)
        assert len(r.network.attempts) == attempts + 1
        r.network.fail(StreamLostError("cut mid-handshake"))
        await adapter.settle()
    assert r.asked == [1, 2, 3]
    await adapter.advance(2.0)
    conn = r.network.accept()
    await adapter.settle()
    assert r.client.connection is conn and r.client.connections == 1
    assert r.session.events == [("attach", "a")]
    conn.end(ConnectionClosedByBroker(320, "CONNECTION_FORCED"))
    await adapter.settle()
    assert r.client.connection is None and r.session.events[-1] == "detach"
    assert r.asked == [1, 2, 3, 1]
    await adapter.advance(0.5)
    assert len(r.network.attempts) == 5
    await adapter.advance(0)
    r.client.stop()
    await adapter.settle()


async def test_a_reconnect_goes_to_another_node_than_the_one_that_failed(
    adapter: Adapter,
) -> None:
    r = rig(adapter, ["a", "b", "c"], {})
    r.client.start()
    a = r.network.accept()
    await adapter.settle()
    a.end(ConnectionClosedByBroker(320, "CONNECTION_FORCED - node a stopped"))
    await adapter.advance(1.0)
    # b is booting: its vhost is not up yet (530), an ordinary failed attempt.
    assert r.network.hosts == ["a", "b"]
    r.network.fail(ProbableAccessDeniedError("(530) NOT_ALLOWED - vhost '/' is down", 530))
    await adapter.advance(1.0)
    # c is in maintenance mode: it refuses TCP, also ordinary.
    assert r.network.hosts == ["a", "b", "c"]
    r.network.fail(ConnectionRefusedError("connection refused"))
    await adapter.advance(1.0)
    # a again: it blocks us during the handshake until stack_timeout, ordinary too.
    assert r.network.hosts == ["a", "b", "c", "a"]
    r.network.fail(AMQPConnectionError("no AMQP connection to a:5672 within stack_timeout"))
    await adapter.advance(1.0)
    assert r.network.hosts[-1] == "b"
    b = r.network.accept()
    await adapter.settle()
    assert r.client.connection is b and r.client.failure is None
    assert [host for host, _ in r.failed] == ["b", "c", "a"]
    r.client.stop()
    await adapter.settle()


async def test_three_refusals_in_a_row_give_up_and_every_waiter_learns_why(
    adapter: Adapter,
) -> None:
    r = rig(adapter, ["a"], {})
    waiting = r.client.when_connected()
    r.client.start()
    for _ in range(3):
        r.network.fail(REFUSED)
        await adapter.advance(1.0)
    assert len(r.network.attempts) == 3
    assert r.client.failure is REFUSED and not r.client.running
    assert r.asked == [1, 2]  # no backoff after the last refusal
    assert adapter.outcome(waiting) == ("failed", REFUSED)
    assert adapter.outcome(r.client.when_connected()) == ("failed", REFUSED)
    kind, stopped_with = r.session.events[-1]
    assert kind == "stop" and stopped_with.__cause__ is REFUSED
    await adapter.advance(100)
    assert len(r.network.attempts) == 3


async def test_a_cut_during_authentication_is_retried_for_ever(adapter: Adapter) -> None:
    r = rig(adapter, ["a"], {})
    r.client.start()
    for _ in range(10):
        r.network.fail(ProbableAuthenticationError("connection lost during authentication"))
        await adapter.advance(1.0)
    assert len(r.network.attempts) == 11 and r.client.failure is None
    r.client.stop()
    await adapter.settle()


async def test_a_programming_error_is_not_retried(adapter: Adapter) -> None:
    r = rig(adapter, ["a", "b"], {})
    waiting = r.client.when_connected()
    r.client.start()
    bug = TypeError("a bug in connect_once")
    r.network.fail(bug)
    await adapter.advance(10)
    assert r.network.hosts == ["a"] and r.client.failure is bug
    assert adapter.outcome(waiting) == ("failed", bug)


async def test_when_connected_fails_after_failures_in_a_row(adapter: Adapter) -> None:
    r = rig(adapter, ["a"], {})
    patient = r.client.when_connected()
    impatient = r.client.when_connected(2)
    r.client.start()
    r.network.fail(ConnectionRefusedError("1"))
    await adapter.advance(1.0)
    assert adapter.outcome(impatient)[0] == "pending"
    second = ConnectionRefusedError("2")
    r.network.fail(second)
    await adapter.settle()
    assert adapter.outcome(impatient) == ("failed", second)
    assert adapter.outcome(patient)[0] == "pending"
    await adapter.advance(1.0)
    conn = r.network.accept()
    await adapter.settle()
    assert adapter.outcome(patient) == ("ok", conn)
    assert adapter.outcome(r.client.when_connected()) == ("ok", conn)
    r.client.stop()
    await adapter.settle()


async def test_stop_while_backing_off_cancels_the_timer(adapter: Adapter) -> None:
    r = rig(adapter, ["a"], {1: 10.0})
    waiting = r.client.when_connected()
    r.client.start()
    r.network.fail(ConnectionRefusedError("refused"))
    await adapter.settle()
    stopped = r.client.stop()
    await adapter.settle()
    assert adapter.outcome(stopped) == ("ok", None)
    kind, error = adapter.outcome(waiting)
    assert kind == "failed" and isinstance(error, ConnectionWrongStateError)
    await adapter.advance(100)
    assert len(r.network.attempts) == 1
    kind, error = adapter.outcome(r.client.when_connected())
    assert kind == "failed" and isinstance(error, ConnectionWrongStateError)


async def test_stop_during_an_attempt_cancels_it(adapter: Adapter) -> None:
    r = rig(adapter, ["a"], {})
    r.client.start()
    r.client.stop()
    await adapter.advance(100)
    assert r.network.cancelled == ["a"] and len(r.network.attempts) == 1
    assert r.failed == [] and r.client.failure is None


async def test_stop_while_connected_closes_and_fires_once_closed_then_start_again(
    adapter: Adapter,
) -> None:
    r = rig(adapter, ["a", "b"], {})
    lost: list[BaseException | None] = []
    r.client.on_disconnected.append(lost.append)
    r.client.start()
    conn = r.network.accept()
    await adapter.settle()
    stopped = r.client.stop()
    assert conn.close_asked == 1
    await adapter.settle()
    assert adapter.outcome(stopped) == ("ok", None)
    assert lost == [None] and r.session.stopping
    await adapter.advance(100)
    assert len(r.network.attempts) == 1

    # Started again: connecting anew, the session no longer stopping.
    r.client.start()
    assert not r.session.stopping and len(r.network.attempts) == 2
    again = r.network.accept()
    await adapter.settle()
    assert r.client.connection is again and r.client.connections == 2
    r.client.stop()
    await adapter.settle()


async def test_a_connection_that_died_before_the_loop_saw_it_is_lost_after_it_arrived(
    adapter: Adapter,
) -> None:
    r = rig(adapter, ["a", "b"], {1: 0.5})
    events: list[str] = []
    r.client.on_connected.append(lambda conn: events.append("connected"))
    r.client.on_disconnected.append(lambda reason: events.append("disconnected"))
    r.client.start()
    host, waiter = r.network.attempts[-1]
    dead = FakeConnection(adapter.runtime, host)
    dead.end(StreamLostError("reset right after Open-Ok"))
    adapter.runtime.resolve(waiter, dead)
    await adapter.settle()
    assert r.session.events == [("attach", "a"), "detach"]
    assert events == ["connected", "disconnected"]
    assert r.client.connection is None and r.asked == [1]
    await adapter.advance(0.5)
    assert r.network.hosts == ["a", "b"]
    r.client.stop()
    await adapter.settle()


async def test_connect_once_raising_a_bug_gives_up_instead_of_stalling(adapter: Adapter) -> None:
    r = rig(adapter, ["a"], {})
    bug = AttributeError("a bug in building the endpoint")

    def broken(params: ConnectionParameters) -> Any:
        raise bug

    r.client._connect_once = broken
    waiting = r.client.when_connected()
    r.client.start()
    await adapter.settle()
    assert r.client.failure is bug and not r.client.running
    assert adapter.outcome(waiting) == ("failed", bug)
