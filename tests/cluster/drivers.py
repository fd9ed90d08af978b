"""One scenario, both adapters: what a cluster test needs of an event loop and a client.

A scenario is an ``async def scenario(loop: Loop)`` that awaits only what ``loop``
hands it. The test itself runs on the reactor (pytest-twisted). :class:`TwistedLoop`
runs the scenario there (``ensureDeferred``) with ``AMQPClientService``;
:class:`AsyncioLoop` runs it in ``asyncio.run`` on a worker thread (``deferToThread``;
the reactor waits meanwhile) with Tornado's ``AMQPClient``. So a failover round is written once and
parametrised over the adapters, instead of being mirrored in two files that drift.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

T = TypeVar("T")

Scenario = Callable[["Loop"], Coroutine[Any, Any, T]]


class Loop:
    """The event loop and the client of one adapter, as a scenario uses them."""

    name = ""

    def run(self, scenario: Scenario[T]) -> Deferred[T]:
        """Run ``scenario(self)``; a Deferred for its result (the test awaits it on the
        reactor)."""
        raise NotImplementedError

    async def sleep(self, seconds: float) -> None:
        raise NotImplementedError

    async def within(self, seconds: float, awaitable: Awaitable[T], what: str) -> T:
        """Await ``awaitable`` for at most ``seconds`` (a test must never hang)."""
        raise NotImplementedError

    async def to_thread(self, fn: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> Awaitable[Any]:
        """Start ``coroutine`` now; await the result later."""
        raise NotImplementedError

    def on_result(
        self, waitable: Any, ok: Callable[[Any], None], failed: Callable[[BaseException], None]
    ) -> None:
        """Call ``ok(value)`` or ``failed(error)`` when a Deferred/future settles."""
        raise NotImplementedError

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        raise NotImplementedError

    def event(self) -> Event:
        raise NotImplementedError

    async def connect(self, url: str) -> Any:
        """A plain connection (``twisted.connect`` / ``tornado.connect``)."""
        raise NotImplementedError

    def client(self, urls: list[str], **kwargs: Any) -> Client:
        """The adapter's recovering client over ``urls`` (cluster nodes)."""
        raise NotImplementedError

    async def eventually(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not true within {timeout} s")
            await self.sleep(0.02)


class Event:
    """A one-shot wake-up that can be cleared and waited for again."""

    def set(self) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError

    async def wait(self) -> None:
        raise NotImplementedError


class Client:
    """``AMQPClientService`` or ``AMQPClient``, with one spelling."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def connections(self) -> int:
        return int(self.inner.connections)

    def channel(self) -> Any:
        return self.inner.channel()

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError


# -- Twisted ------------------------------------------------------------------------------------


class TwistedLoop(Loop):
    name = "twisted"

    def __init__(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor

    def run(self, scenario: Scenario[T]) -> Deferred[T]:
        from twisted.internet import defer

        return defer.ensureDeferred(scenario(self))

    async def sleep(self, seconds: float) -> None:
        from twisted.internet.task import deferLater

        await deferLater(self.reactor, seconds, lambda: None)

    async def within(self, seconds: float, awaitable: Awaitable[T], what: str) -> T:
        from twisted.internet import defer

        async def wrap() -> T:
            return await awaitable

        d = defer.ensureDeferred(wrap())
        d.addTimeout(seconds, self.reactor)
        try:
            return await d
        except defer.TimeoutError:
            raise AssertionError(f"{what} did not finish within {seconds} s") from None

    async def to_thread(self, fn: Callable[..., T], *args: Any) -> T:
        from twisted.internet.threads import deferToThread

        result: T = await deferToThread(fn, *args)
        return result

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> Awaitable[Any]:
        from twisted.internet import defer

        return defer.ensureDeferred(coroutine)

    def on_result(
        self, waitable: Any, ok: Callable[[Any], None], failed: Callable[[BaseException], None]
    ) -> None:
        waitable.addCallbacks(ok, lambda failure: failed(failure.value))

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        self.reactor.callLater(delay, fn, *args)

    def event(self) -> Event:
        return _TwistedEvent()

    async def connect(self, url: str) -> Any:
        from txamqp091.twisted import connect

        return await connect(self.reactor, url)

    def client(self, urls: list[str], **kwargs: Any) -> Client:
        from txamqp091.twisted import AMQPClientService

        return _TwistedClient(AMQPClientService(self.reactor, urls, **kwargs))


class _TwistedEvent(Event):
    def __init__(self) -> None:
        self._is_set = False
        self._waiters: list[Any] = []

    def set(self) -> None:
        self._is_set = True
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    def clear(self) -> None:
        self._is_set = False

    async def wait(self) -> None:
        from twisted.internet.defer import Deferred

        if self._is_set:
            return
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        await d


class _TwistedClient(Client):
    async def start(self) -> None:
        self.inner.startService()

    async def stop(self) -> None:
        await self.inner.stopService()


# -- Tornado / asyncio ----------------------------------------------------------------------------


class AsyncioLoop(Loop):
    name = "tornado"

    def run(self, scenario: Scenario[T]) -> Deferred[T]:
        from twisted.internet.threads import deferToThread

        return deferToThread(lambda: asyncio.run(scenario(self)))

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def within(self, seconds: float, awaitable: Awaitable[T], what: str) -> T:
        try:
            return await asyncio.wait_for(awaitable, seconds)
        except asyncio.TimeoutError:
            raise AssertionError(f"{what} did not finish within {seconds} s") from None

    async def to_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> Awaitable[Any]:
        return asyncio.ensure_future(coroutine)

    def on_result(
        self, waitable: Any, ok: Callable[[Any], None], failed: Callable[[BaseException], None]
    ) -> None:
        def done(future: asyncio.Future[Any]) -> None:
            if future.cancelled():
                failed(asyncio.CancelledError())
            elif future.exception() is not None:
                failed(future.exception())  # type: ignore[arg-type]
            else:
                ok(future.result())

        waitable.add_done_callback(done)

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        asyncio.get_running_loop().call_later(delay, fn, *args)

    def event(self) -> Event:
        return _AsyncioEvent()

    async def connect(self, url: str) -> Any:
        from txamqp091.tornado import connect

        return await connect(url)

    def client(self, urls: list[str], **kwargs: Any) -> Client:
        from txamqp091.tornado import AMQPClient

        return _AsyncioClient(AMQPClient(urls, **kwargs))


class _AsyncioEvent(Event):
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    async def wait(self) -> None:
        await self._event.wait()


class _AsyncioClient(Client):
    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()


LOOPS: dict[str, Callable[[], Loop]] = {"twisted": TwistedLoop, "tornado": AsyncioLoop}
