"""Run one hostile scenario against one adapter, and check everything the issue asks.

:func:`run_scenario` is a coroutine that uses only a :class:`Driver`, so the
same checks run under Twisted (``pytest_twisted.ensureDeferred``) and under
asyncio (``pytest-asyncio``):

- the client fails with the scenario's typed error (a ``txamqp091.exceptions``
  type) within the scenario's deadline, counted from the hostile bytes;
- for malformed input a ``ProtocolError`` is the error or in its cause chain;
- Connection.Close with the expected reply code was the last thing the client
  sent, and the client then closed the socket (no Close where none is due);
- every operation the client step left pending ended with a typed error, and
  nothing was delivered to the application;
- no timer the client scheduled is left behind.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from tests.hostile.scenarios import ClientContext, Scenario
from tests.hostile.server import HostileServer
from txamqp091.core import spec
from txamqp091.exceptions import AMQPError, ProtocolError

__all__ = ["Driver", "Outcome", "run_scenario"]


class Driver(Protocol):
    """What the runner needs of an adapter and its event loop."""

    name: str

    async def connect(self, url: str) -> Any: ...

    async def sleep(self, seconds: float) -> None: ...

    async def wait(self, awaitable: Any, timeout: float) -> Any:
        """``awaitable``'s result, or TimeoutError after ``timeout`` seconds."""

    async def in_thread(self, fn: Any, *args: Any) -> Any: ...

    def settled(self, waiter: Any) -> tuple[bool, BaseException | None]:
        """Whether ``waiter`` has ended and with what error (its failure is consumed)."""

    def timers(self) -> set[Any]:
        """The loop's live scheduled calls."""


class Outcome:
    """What happened, for the checks and for the report."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.elapsed: float | None = None
        self.close_codes: list[int] = []


def cause_chain(error: BaseException | None) -> list[BaseException]:
    chain: list[BaseException] = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


async def run_scenario(driver: Driver, scenario: Scenario) -> Outcome:
    outcome = Outcome()
    ctx = ClientContext()
    timers_before = driver.timers()
    with HostileServer(scenario.server) as server:
        url = server.url(**scenario.url_options)
        conn = None
        if scenario.handshake:
            try:
                conn = await driver.wait(driver.connect(url), 5.0)
            except BaseException as exc:
                failed_at = time.monotonic()
                outcome.error = exc
            else:
                raise AssertionError(f"{scenario.name}: connect() succeeded")
        else:
            conn = await driver.wait(driver.connect(url), 5.0)
            assert scenario.client is not None
            await scenario.client(conn, ctx)
            outcome.error = await driver.wait(conn.closed, 5.0)
            failed_at = time.monotonic()
        # Let the server see the end of the stream.
        await driver.in_thread(server.done.wait, 6.0)
        assert server.done.is_set(), f"{scenario.name}: the server never saw the client close"
    assert server.error is None, f"{scenario.name}: server script failed: {server.error!r}"
    peer = server.peer
    assert peer is not None and peer.hostile_at is not None
    outcome.elapsed = failed_at - peer.hostile_at

    # The typed error, in time.
    error = outcome.error
    chain = cause_chain(error)
    # connect() reports the attempts it made; what ended them is in its cause chain.
    assert any(isinstance(e, scenario.error) for e in chain), f"{scenario.name}: got {chain!r}"
    assert isinstance(error, AMQPError)
    assert outcome.elapsed <= scenario.deadline, (
        f"{scenario.name}: failed after {outcome.elapsed:.3f} s (deadline {scenario.deadline} s)"
    )
    if scenario.protocol_error:
        assert any(isinstance(e, ProtocolError) for e in chain), (
            f"{scenario.name}: no ProtocolError in {chain!r}"
        )

    # Connection.Close with the spec's code, last, then the socket closed.
    closes = peer.connection_closes()
    outcome.close_codes = [c.reply_code for c in closes]
    assert peer.eof_at is not None, f"{scenario.name}: the client never closed the socket"
    if scenario.close_code is None:
        assert closes == [], f"{scenario.name}: unexpected Connection.Close {closes!r}"
    else:
        assert outcome.close_codes == [scenario.close_code], (
            f"{scenario.name}: Connection.Close codes {outcome.close_codes}, "
            f"expected [{scenario.close_code}]"
        )
        assert isinstance(peer.last_method(), spec.ConnectionClose)
        codes = {e.reply_code for e in chain if isinstance(e, ProtocolError)}
        assert scenario.close_code in codes

    # Nothing left hanging, nothing malformed delivered.
    await driver.sleep(0.05)  # a flush or a callback scheduled for the next turn
    for waiter in ctx.pending:
        done, failure = driver.settled(waiter)
        assert done, f"{scenario.name}: an operation was left pending"
        assert isinstance(failure, AMQPError), (
            f"{scenario.name}: a pending operation ended with {failure!r}"
        )
    assert ctx.delivered == []
    if conn is not None:
        assert conn.is_closed
    left = driver.timers() - timers_before
    assert not left, f"{scenario.name}: timers left behind: {left!r}"
    return outcome
