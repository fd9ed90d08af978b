"""What the recovery scenarios need, the same on both adapters.

A scenario is written once, as ``async def test_...(clients, ...)`` decorated with
:func:`on_each_adapter`; the ``clients`` fixture is parametrised over the adapters
(``twisted``: ``AMQPClientService`` on the reactor; ``tornado``: ``AMQPClient`` on
a fresh asyncio loop). The decorator runs the scenario on that adapter's loop,
makes it the current one for the helpers below (:func:`within`, :func:`sleep`,
:func:`to_thread`, :func:`spawn`...), and stops the clients and deletes the queues
the scenario named, on the same loop, whatever the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

from tests.integration.faults import close_named_connections, rabbitmqctl
from txamqp091 import BasicProperties
from txamqp091.exceptions import ChannelClosedByBroker

AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
#: Named queues get this as a safety net: gone 10 minutes after their last use.
EXPIRES = {"x-expires": 600_000}
PERSISTENT = BasicProperties(delivery_mode=2)

T = TypeVar("T")


# -- the adapters --------------------------------------------------------------------------------


class Adapter:
    """One adapter's loop primitives and client class."""

    name = ""

    def run(self, scenario: Coroutine[Any, Any, None]) -> Any:
        """Run ``scenario`` to the end on this adapter's loop (or hand pytest its Deferred)."""
        raise NotImplementedError

    async def sleep(self, seconds: float) -> None:
        raise NotImplementedError

    async def within(self, seconds: float, awaitable: Awaitable[T]) -> T:
        """``awaitable``'s result; ``TimeoutError`` after ``seconds``."""
        raise NotImplementedError

    async def to_thread(self, fn: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coroutine`` in the background; the handle is awaitable and :meth:`done`."""
        raise NotImplementedError

    def done(self, waitable: Any) -> bool:
        raise NotImplementedError

    def on_settled(self, waitable: Any, callback: Callable[[BaseException | None], None]) -> None:
        """Call ``callback(error or None)`` once ``waitable`` has an outcome."""
        raise NotImplementedError

    def client(self, url: str, **kwargs: Any) -> Any:
        """A reconnecting client (not started)."""
        raise NotImplementedError

    async def start(self, client: Any) -> None:
        raise NotImplementedError

    async def stop(self, client: Any) -> None:
        raise NotImplementedError

    async def connect(self, url: str) -> Any:
        """A plain connection (no recovery)."""
        raise NotImplementedError


class TwistedAdapter(Adapter):
    name = "twisted"

    def __init__(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor

    def run(self, scenario: Coroutine[Any, Any, None]) -> Any:
        from twisted.internet import defer

        return defer.ensureDeferred(scenario)  # pytest-twisted waits for it

    async def sleep(self, seconds: float) -> None:
        from twisted.internet.task import deferLater

        await deferLater(self.reactor, seconds, lambda: None)

    async def within(self, seconds: float, awaitable: Awaitable[T]) -> T:
        from twisted.internet import defer

        async def wrap() -> T:
            return await awaitable

        d: defer.Deferred[T] = defer.ensureDeferred(wrap())
        d.addTimeout(seconds, self.reactor)
        try:
            return await d
        except defer.TimeoutError:
            raise TimeoutError from None

    async def to_thread(self, fn: Callable[..., T], *args: Any) -> T:
        from twisted.internet.threads import deferToThread

        return await deferToThread(fn, *args)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        from twisted.internet import defer

        return defer.ensureDeferred(coroutine)

    def done(self, waitable: Any) -> bool:
        return bool(waitable.called)

    def on_settled(self, waitable: Any, callback: Callable[[BaseException | None], None]) -> None:
        waitable.addCallbacks(lambda _: callback(None), lambda failure: callback(failure.value))

    def client(self, url: str, **kwargs: Any) -> Any:
        from txamqp091.twisted import AMQPClientService

        return AMQPClientService(self.reactor, url, **kwargs)

    async def start(self, client: Any) -> None:
        client.startService()

    async def stop(self, client: Any) -> None:
        if client.running:
            await client.stopService()

    async def connect(self, url: str) -> Any:
        from txamqp091.twisted import connect

        return await connect(self.reactor, url)


class TornadoAdapter(Adapter):
    name = "tornado"

    def run(self, scenario: Coroutine[Any, Any, None]) -> Any:
        asyncio.run(scenario)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def within(self, seconds: float, awaitable: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(awaitable, seconds)
        except asyncio.TimeoutError:
            raise TimeoutError from None

    async def to_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.ensure_future(coroutine)

    def done(self, waitable: Any) -> bool:
        return bool(waitable.done())

    def on_settled(self, waitable: Any, callback: Callable[[BaseException | None], None]) -> None:
        def settled(future: asyncio.Future[Any]) -> None:
            if future.cancelled():
                callback(asyncio.CancelledError())
            else:
                callback(future.exception())

        waitable.add_done_callback(settled)

    def client(self, url: str, **kwargs: Any) -> Any:
        from txamqp091.tornado import AMQPClient

        return AMQPClient(url, **kwargs)

    async def start(self, client: Any) -> None:
        await client.start()

    async def stop(self, client: Any) -> None:
        await client.stop()

    async def connect(self, url: str) -> Any:
        from txamqp091.tornado import connect

        return await connect(url)


ADAPTERS: dict[str, Callable[[], Adapter]] = {"twisted": TwistedAdapter, "tornado": TornadoAdapter}

_current: list[Adapter] = []


def current() -> Adapter:
    """The adapter the running scenario is on."""
    return _current[-1]


# -- running a scenario on each adapter ----------------------------------------------------------


class Clients:
    """Makes started clients; stops them (and deletes the named queues) after the scenario."""

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter
        self.made: list[Any] = []
        self.queues: list[tuple[str, str]] = []  # (url, queue)

    async def start(self, url: str, **kwargs: Any) -> tuple[Any, Watch]:
        client = self.adapter.client(url, **kwargs)
        watch = Watch(client)  # hooks first: the first connection is watched too
        self.made.append(client)
        await within(30, self.adapter.start(client), "start")
        return client, watch

    def delete_later(self, queue: str, url: str = AMQP) -> str:
        self.queues.append((url, queue))
        return queue

    async def close(self) -> None:
        for client in self.made:
            await within(20, self.adapter.stop(client), "stop")
        by_url: dict[str, list[str]] = {}
        for url, queue in self.queues:
            by_url.setdefault(url, []).append(queue)
        for url, queues in by_url.items():
            try:
                conn = await within(20, self.adapter.connect(url), "cleanup connect")
            except Exception:
                continue  # a private node already gone takes its queues with it
            try:
                for queue in queues:
                    ch = await within(10, conn.channel(), "cleanup channel")
                    await within(10, ch.queue_delete(queue), "queue_delete")
            finally:
                await within(15, conn.close(), "cleanup close")


def on_each_adapter(
    test: Callable[..., Coroutine[Any, Any, None]],
) -> Callable[..., Any]:
    """Run the ``async def`` scenario ``test`` on the adapter its ``clients`` fixture is for."""

    @functools.wraps(test)
    def run(**fixtures: Any) -> Any:
        clients: Clients = fixtures["clients"]
        adapter = clients.adapter

        async def scenario() -> None:
            _current.append(adapter)
            try:
                await test(**fixtures)
            finally:
                try:
                    await clients.close()
                finally:
                    _current.pop()

        return adapter.run(scenario())

    return run


# -- helpers on the current adapter --------------------------------------------------------------


def unique(kind: str) -> str:
    return f"txamqp091-rec-{current().name[:3]}-{kind}-{uuid.uuid4().hex[:10]}"


async def within(seconds: float, awaitable: Awaitable[T], what: str = "operation") -> T:
    """Await ``awaitable`` for at most ``seconds`` (a test must never hang)."""
    try:
        return await current().within(seconds, awaitable)
    except TimeoutError:
        raise AssertionError(f"{what} did not finish within {seconds} s") from None


async def sleep(seconds: float) -> None:
    await current().sleep(seconds)


async def to_thread(fn: Callable[..., T], *args: Any) -> T:
    return await current().to_thread(fn, *args)


def spawn(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return current().spawn(coroutine)


def done(waitable: Any) -> bool:
    return current().done(waitable)


async def outcomes(waitables: Iterable[Any]) -> list[BaseException | None]:
    """Each waitable's error, or None where it succeeded (all of them awaited)."""
    found: list[BaseException | None] = []
    for waitable in waitables:
        try:
            await waitable
        except Exception as exc:
            found.append(exc)
        else:
            found.append(None)
    return found


async def eventually(
    predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true within {timeout} s")
        await sleep(0.02)


async def kill(name: str, node: str | None = None) -> None:
    """Broker-side close of the client's connection (by connection_name), retried until one closed."""
    for _ in range(20):
        closed = await to_thread(close_named_connections, name, "test kill", node)
        if closed:
            return
        await sleep(0.1)
    raise AssertionError(f"no connection named {name} to close")


def metric(text: str) -> None:
    print(f"\nMETRIC {current().name} {text}", flush=True)


class Watch:
    """What a client went through, with monotonic timestamps (made before it starts)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.connected: list[float] = []
        self.lost: list[tuple[float, BaseException | None]] = []
        self.recovered: list[float] = []
        client.on_connected.append(lambda conn: self.connected.append(time.monotonic()))
        client.on_disconnected.append(lambda why: self.lost.append((time.monotonic(), why)))
        client.on_recovered.append(lambda channel: self.recovered.append(time.monotonic()))

    async def recovered_after(self, count: int, timeout: float = 20.0) -> None:
        await eventually(lambda: len(self.recovered) > count, timeout, "channel recovery")

    async def lost_after(self, count: int, timeout: float = 20.0) -> None:
        await eventually(lambda: len(self.lost) > count, timeout, "connection loss")


class Collector:
    """Iterates a consumer (``async for``) in the background, acking every message."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.bodies: list[bytes] = []
        self.ended: BaseException | None = None
        self.done = spawn(self._run())

    async def _run(self) -> None:
        try:
            async for message in self.consumer:
                self.bodies.append(message.body)
                message.ack()
        except Exception as exc:  # recorded for the test's assertions
            self.ended = exc

    def ids(self) -> set[int]:
        return {int(b) for b in self.bodies}

    @property
    def duplicates(self) -> int:
        return len(self.bodies) - len(set(self.bodies))


class Publisher:
    """Confirmed publishes of ``b"<id>"``, at most ``window`` awaited at a time.

    With ``client``, it also counts, by connection, the publishes issued while that
    connection was the client's latest and confirmed on a later one (:attr:`carried`):
    those a fault caught unconfirmed, or that waited through the outage after it.
    """

    def __init__(
        self,
        channel: Any,
        exchange: str,
        routing_key: str,
        window: int = 1,
        client: Any = None,
    ) -> None:
        self.channel = channel
        self.client = client
        #: Connection number -> publishes issued on it and confirmed on a later one.
        self.carried: Counter[int] = Counter()
        self.exchange = exchange
        self.routing_key = routing_key
        self.window = window
        self.confirmed: set[int] = set()
        self.failed: list[tuple[int, BaseException]] = []
        #: (monotonic time, id) of each confirm, in order.
        self.times: list[tuple[float, int]] = []
        self.inflight: deque[Any] = deque()

    def unsettled(self) -> int:
        """Publishes issued and not yet confirmed (or failed)."""
        return sum(1 for waitable in self.inflight if not done(waitable))

    async def run(
        self,
        ids: Iterable[int],
        before: Callable[[int], Awaitable[None]] | None = None,
        properties: BasicProperties | None = None,
    ) -> None:
        inflight = self.inflight
        adapter = current()
        for i in ids:
            if before is not None:
                await before(i)
            waitable = self.channel.basic_publish(
                self.exchange, self.routing_key, b"%d" % i, properties=properties
            )
            issued_on = self.client.connections if self.client is not None else 0
            adapter.on_settled(waitable, lambda error, i=i, c=issued_on: self._settled(error, i, c))
            inflight.append(waitable)
            if len(inflight) >= self.window:
                await self._settle(inflight.popleft())
        while inflight:
            await self._settle(inflight.popleft())

    @staticmethod
    async def _settle(waitable: Any) -> None:
        with contextlib.suppress(Exception):  # recorded by _settled
            await waitable

    def _settled(self, error: BaseException | None, i: int, issued_on: int) -> None:
        if error is not None:
            self.failed.append((i, error))
            return
        self.confirmed.add(i)
        self.times.append((time.monotonic(), i))
        if self.client is not None and self.client.connections > issued_on:
            self.carried[issued_on] += 1


async def open_channel(client: Any, queue: str, prefetch: int = 0, **queue_args: Any) -> Any:
    """A surviving channel with ``queue`` declared, QoS set and confirms on."""
    channel = await within(20, client.channel(), "channel")
    await within(20, channel.queue_declare(queue, **queue_args), "queue_declare")
    if prefetch:
        await within(20, channel.basic_qos(prefetch_count=prefetch), "basic_qos")
    await within(20, channel.confirm_delivery(), "confirm_delivery")
    return channel


async def drain_check(collector: Collector, expected: set[int], timeout: float = 60.0) -> None:
    """Wait until the collector saw every id in ``expected``; fail naming what is missing."""
    deadline = time.monotonic() + timeout
    while not expected <= collector.ids():
        if collector.ended is not None:
            raise AssertionError(f"the consumer stopped: {collector.ended!r}")
        if time.monotonic() > deadline:
            missing = sorted(expected - collector.ids())
            raise AssertionError(f"{len(missing)} confirmed messages lost, e.g. {missing[:20]}")
        await sleep(0.05)


async def queue_counts(queue: str, node: str | None = None) -> tuple[int, int]:
    """(ready, unacknowledged) for ``queue``, from rabbitmqctl."""
    result = await to_thread(
        functools.partial(
            rabbitmqctl,
            "list_queues",
            "name",
            "messages_ready",
            "messages_unacknowledged",
            "-q",
            node=node,
        )
    )
    for line in result.stdout.splitlines():
        parts = line.split("\t")
        if parts[0] == queue:
            return int(parts[1]), int(parts[2])
    raise AssertionError(f"queue {queue} not listed")


async def exists(queue: str | None = None, exchange: str | None = None) -> bool:
    """Whether a queue or exchange exists, asked on a connection of its own (passively)."""
    conn = await within(20, current().connect(AMQP), "connect")
    try:
        ch = await within(10, conn.channel(), "channel")
        try:
            if queue is not None:
                await within(10, ch.queue_declare(queue, passive=True), "passive declare")
            else:
                assert exchange is not None
                await within(10, ch.exchange_declare(exchange, passive=True), "passive declare")
        except ChannelClosedByBroker as exc:
            assert exc.reply_code == 404
            return False
        return True
    finally:
        await within(15, conn.close(), "close")
