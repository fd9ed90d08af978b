"""The two adapters behind :class:`~tests.hostile.harness.Driver`: Twisted and asyncio."""

from __future__ import annotations

import asyncio
from typing import Any

from twisted.internet import defer, reactor, threads
from twisted.python.failure import Failure

import txamqp091.tornado
import txamqp091.twisted

__all__ = ["AsyncioDriver", "TwistedDriver"]


class TwistedDriver:
    """The real reactor, as pytest-twisted runs it."""

    name = "twisted"

    async def connect(self, url: str) -> Any:
        return await txamqp091.twisted.connect(reactor, url)

    async def sleep(self, seconds: float) -> None:
        d: defer.Deferred[None] = defer.Deferred()
        reactor.callLater(seconds, d.callback, None)  # type: ignore[attr-defined]
        await d

    async def wait(self, awaitable: Any, timeout: float) -> Any:
        d = (
            defer.ensureDeferred(awaitable)
            if not isinstance(awaitable, defer.Deferred)
            else awaitable
        )
        d.addTimeout(timeout, reactor)
        return await d

    async def in_thread(self, fn: Any, *args: Any) -> Any:
        return await threads.deferToThread(fn, *args)

    def settled(self, waiter: Any) -> tuple[bool, BaseException | None]:
        if not waiter.called:
            return False, None
        failures: list[BaseException] = []

        def failed(failure: Failure) -> None:
            failures.append(failure.value)

        waiter.addErrback(failed)
        return True, (failures[0] if failures else None)

    def timers(self) -> set[Any]:
        return {call for call in reactor.getDelayedCalls() if call.active()}  # type: ignore[attr-defined]


class AsyncioDriver:
    """The running asyncio loop (Tornado's IOLoop is one)."""

    name = "tornado"

    async def connect(self, url: str) -> Any:
        return await txamqp091.tornado.connect(url)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait(self, awaitable: Any, timeout: float) -> Any:
        return await asyncio.wait_for(awaitable, timeout)

    async def in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    def settled(self, waiter: Any) -> tuple[bool, BaseException | None]:
        if not waiter.done():
            return False, None
        if waiter.cancelled():
            return True, asyncio.CancelledError()
        return True, waiter.exception()

    def timers(self) -> set[Any]:
        loop = asyncio.get_running_loop()
        scheduled = getattr(loop, "_scheduled", [])
        return {handle for handle in scheduled if not handle.cancelled()}
