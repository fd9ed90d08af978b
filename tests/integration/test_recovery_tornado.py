"""Tornado/asyncio ``AMQPClient`` against RabbitMQ while things break: kills, stalls, resets,
restarts. The asyncio twin of ``test_recovery_twisted.py``, test for test.

The promise under test (docs: "Staying connected"): a surviving channel brings
its topology and consumers back on every new connection, and a publish in
confirm mode succeeds only once a broker has the message, so whatever the
faults, every publish that succeeded is in the queue (duplicates allowed,
losses not).

Faults come from :mod:`tests.integration.faults`: broker-side kills with
``rabbitmqctl`` (by ``connection_name``), network faults through a loopback
:class:`~tests.integration.faults.TcpProxy`, and broker restarts and memory
alarms on a private node (never the shared broker). Everything in ``faults``
blocks, so it runs through ``asyncio.to_thread`` (the proxy's control methods
return within milliseconds and are called directly). Tests print their figures
(``-s`` shows them): kill-to-first-publish times, publish rates, duplicates.

Hooks are registered before ``start()``: :class:`Watch` is made first.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from tests.integration import faults
from tests.integration.faults import BrokerKiller, TcpProxy, close_named_connections, rabbitmqctl
from txamqp091 import BasicProperties
from txamqp091.exceptions import (
    AMQPHeartbeatTimeout,
    ChannelClosedByBroker,
    ConnectionClosedByBroker,
    PublishTimeout,
    StreamLostError,
    UnroutableError,
)
from txamqp091.message import Message
from txamqp091.tornado import AMQPClient, RecoveringChannel, RecoveringConsumer, connect

pytestmark = [pytest.mark.asyncio, pytest.mark.broker]

#: The private node fixture (opt-in, module scope), for the restart and alarm tests.
private_broker = faults.private_broker

AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
#: Named queues get this as a safety net: gone 10 minutes after their last use.
EXPIRES = {"x-expires": 600_000}
PERSISTENT = BasicProperties(delivery_mode=2)

T = TypeVar("T")


# -- helpers ---------------------------------------------------------------------------------------


def unique(kind: str) -> str:
    return f"txamqp091-rec-tor-{kind}-{uuid.uuid4().hex[:10]}"


async def within(seconds: float, awaitable: Awaitable[T], what: str = "operation") -> T:
    """Await ``awaitable`` for at most ``seconds`` (a test must never hang)."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except asyncio.TimeoutError:
        raise AssertionError(f"{what} did not finish within {seconds} s") from None


async def eventually(
    predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true within {timeout} s")
        await asyncio.sleep(0.02)


async def kill(name: str, node: str | None = None) -> None:
    """Broker-side close of the client's connection (by connection_name), retried until one closed."""
    for _ in range(20):
        closed = await asyncio.to_thread(close_named_connections, name, "test kill", node)
        if closed:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no connection named {name} to close")


class Watch:
    """What a client went through, with monotonic timestamps (made before ``start()``)."""

    def __init__(self, client: AMQPClient) -> None:
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


class Clients:
    """Makes started clients; stops them (and deletes the named queues) after the test."""

    def __init__(self) -> None:
        self.made: list[AMQPClient] = []
        self.queues: list[tuple[str, str]] = []  # (url, queue)

    async def start(self, url: str, **kwargs: Any) -> tuple[AMQPClient, Watch]:
        client = AMQPClient(url, **kwargs)
        watch = Watch(client)
        self.made.append(client)
        await within(30, client.start(), "start")
        return client, watch

    def delete_later(self, queue: str, url: str = AMQP) -> str:
        self.queues.append((url, queue))
        return queue

    async def close(self) -> None:
        for client in self.made:
            await within(20, client.stop(), "stop")
        by_url: dict[str, list[str]] = {}
        for url, queue in self.queues:
            by_url.setdefault(url, []).append(queue)
        for url, queues in by_url.items():
            try:
                conn = await within(20, connect(url), "cleanup connect")
            except Exception:
                continue  # a private node already gone takes its queues with it
            try:
                for queue in queues:
                    ch = await within(10, conn.channel(), "cleanup channel")
                    await within(10, ch.queue_delete(queue), "queue_delete")
            finally:
                await within(15, conn.close(), "cleanup close")


@pytest_asyncio.fixture
async def clients() -> AsyncIterator[Clients]:
    made = Clients()
    yield made
    await made.close()


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with TcpProxy() as p:
        yield p


class Collector:
    """Iterates a consumer (``async for``) in a task, acking every message."""

    def __init__(self, consumer: RecoveringConsumer) -> None:
        self.consumer = consumer
        self.bodies: list[bytes] = []
        self.ended: BaseException | None = None
        self.done = asyncio.ensure_future(self._run())

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
        channel: RecoveringChannel,
        exchange: str,
        routing_key: str,
        window: int = 1,
        client: AMQPClient | None = None,
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
        self.inflight: deque[asyncio.Future[Any]] = deque()

    def unsettled(self) -> int:
        """Publishes issued and not yet confirmed (or failed)."""
        return sum(1 for f in self.inflight if not f.done())

    async def run(
        self,
        ids: Iterable[int],
        before: Callable[[int], Awaitable[None]] | None = None,
        properties: BasicProperties | None = None,
    ) -> None:
        inflight = self.inflight
        for i in ids:
            if before is not None:
                await before(i)
            future = self.channel.basic_publish(
                self.exchange, self.routing_key, b"%d" % i, properties=properties
            )
            issued_on = self.client.connections if self.client is not None else 0
            future.add_done_callback(lambda f, i=i, c=issued_on: self._settled(f, i, c))
            inflight.append(future)
            if len(inflight) >= self.window:
                await self._settle(inflight.popleft())
        while inflight:
            await self._settle(inflight.popleft())

    @staticmethod
    async def _settle(future: asyncio.Future[Any]) -> None:
        with contextlib.suppress(Exception):  # recorded by _settled
            await future

    def _settled(self, future: asyncio.Future[Any], i: int, issued_on: int) -> None:
        if future.cancelled():
            self.failed.append((i, asyncio.CancelledError()))
        elif future.exception() is not None:
            error = future.exception()
            assert error is not None
            self.failed.append((i, error))
        else:
            self.confirmed.add(i)
            self.times.append((time.monotonic(), i))
            if self.client is not None and self.client.connections > issued_on:
                self.carried[issued_on] += 1


async def open_channel(
    client: AMQPClient, queue: str, prefetch: int = 0, **queue_args: Any
) -> RecoveringChannel:
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
        if time.monotonic() > deadline:
            missing = sorted(expected - collector.ids())
            raise AssertionError(f"{len(missing)} confirmed messages lost, e.g. {missing[:20]}")
        await asyncio.sleep(0.05)


async def queue_counts(queue: str, node: str | None = None) -> tuple[int, int]:
    """(ready, unacknowledged) for ``queue``, from rabbitmqctl."""
    result = await asyncio.to_thread(
        rabbitmqctl,
        "list_queues",
        "name",
        "messages_ready",
        "messages_unacknowledged",
        "-q",
        node=node,
    )
    for line in result.stdout.splitlines():
        parts = line.split("\t")
        if parts[0] == queue:
            return int(parts[1]), int(parts[2])
    raise AssertionError(f"queue {queue} not listed")


async def exists(queue: str | None = None, exchange: str | None = None) -> bool:
    """Whether a queue or exchange exists, asked on a connection of its own (passively)."""
    conn = await within(20, connect(AMQP), "connect")
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


def metric(text: str) -> None:
    print(f"\nMETRIC {text}", flush=True)


# -- broker-side kills -------------------------------------------------------------------------------


async def test_kills_during_confirmed_publishes_lose_nothing(clients: Clients) -> None:
    name = unique("kill")
    queue = clients.delete_later(unique("q"))
    client, watch = await clients.start(
        f"{AMQP}?connection_name={name}&heartbeat=10", retry_policy=lambda a: 0.2
    )
    channel = await open_channel(client, queue, prefetch=200, arguments=EXPIRES)
    consumer = await within(20, channel.basic_consume(queue), "basic_consume")
    collector = Collector(consumer)
    publisher = Publisher(channel, "", queue, window=10, client=client)
    at_loss: list[int] = []
    client.on_disconnected.append(lambda why: at_loss.append(publisher.unsettled()))
    # Each connection is closed by the broker once it has received 40 kB (about 500
    # publishes): three kills in the middle of the stream.
    killer = BrokerKiller(name, [40_000] * 3)
    await asyncio.to_thread(killer.arm)

    await within(90, publisher.run(range(3000)), "publishing")
    assert await asyncio.to_thread(killer.join, 60) == 3
    assert publisher.failed == []
    assert len(publisher.confirmed) == 3000
    assert len(watch.lost) == 3 and all(
        isinstance(why, ConnectionClosedByBroker) and why.reply_code == 320 for _, why in watch.lost
    )
    assert client.connections == 4
    # Every kill hit traffic: publishes of each killed connection were confirmed on a later
    # one. (How many were unconfirmed when the client saw the Close, ``at_loss``, varies:
    # the broker may have confirmed all it had received before closing.)
    assert sorted(publisher.carried) == [1, 2, 3], publisher.carried

    # One more after the last kill: the same consumer object delivers it.
    await within(20, channel.basic_publish("", queue, b"3000"), "last publish")
    await drain_check(collector, publisher.confirmed | {3000})
    assert collector.ended is None and consumer.is_active
    metric(
        f"tornado kills: 3 mid-stream (unconfirmed at each kill: {at_loss}; carried over "
        f"per connection: {dict(sorted(publisher.carried.items()))}), 3000 confirmed, "
        f"0 lost, {collector.duplicates} duplicates delivered"
    )


async def test_topology_is_back_after_a_kill(clients: Clients, proxy: TcpProxy) -> None:
    name = unique("topo")
    source, middle, queue = unique("src"), unique("mid"), unique("q")
    # Through the proxy, so that the test can hold the reconnect off and look at the broker
    # in between: with an exclusive queue at the end of auto-delete exchanges, the kill
    # takes the whole chain away, and only the replay can bring it back.
    client, watch = await clients.start(
        proxy.url(f"connection_name={name}"), retry_policy=lambda a: 0.2
    )
    ch = await within(20, client.channel(), "channel")
    await within(10, ch.exchange_declare(source, "direct", auto_delete=True), "x")
    await within(10, ch.exchange_declare(middle, "fanout", auto_delete=True), "x")
    await within(10, ch.exchange_bind(middle, source, routing_key="rk"), "x2x bind")
    await within(10, ch.queue_declare(queue, exclusive=True), "queue")
    await within(10, ch.queue_bind(queue, middle), "queue bind")
    await within(10, ch.basic_qos(prefetch_count=3), "qos")
    await within(10, ch.confirm_delivery(), "confirm")
    consumer = await within(10, ch.basic_consume(queue), "consume")
    recovered = len(watch.recovered)

    proxy.refuse(reset=False)  # new connections are refused until resume()
    await kill(name)
    await watch.lost_after(0)
    for what in ({"queue": queue}, {"exchange": middle}, {"exchange": source}):
        for _ in range(50):
            if not await exists(**what):
                break
            await asyncio.sleep(0.1)
        assert not await exists(**what), f"{what} outlived the connection"

    proxy.resume()
    await watch.recovered_after(recovered)
    # A mandatory publish routed source -> middle -> queue proves both bindings are back.
    for i in range(5):
        await within(10, ch.basic_publish(source, "rk", b"%d" % i, mandatory=True), "publish")
    with pytest.raises(UnroutableError):
        await within(10, ch.basic_publish(source, "other-key", b"x", mandatory=True), "publish")
    # prefetch_count=3 is back: three deliveries, then nothing until one is acked.
    got = [await within(10, consumer.get(), "get") for _ in range(3)]
    assert [m.body for m in got] == [b"0", b"1", b"2"]
    assert await within(10, consumer.get(timeout=0.5), "get") is None
    got[0].ack()
    fourth = await within(10, consumer.get(timeout=5), "get")
    assert fourth is not None and fourth.body == b"3"
    # Confirm mode is back: the channel on the new connection has it selected.
    assert ch._inner is not None and ch._inner.publisher_confirms
    assert consumer.is_active and client.connections == 2


async def test_server_named_queue_is_renamed_and_the_consumer_follows(clients: Clients) -> None:
    name = unique("named")
    exchange = unique("x")
    client, watch = await clients.start(
        f"{AMQP}?connection_name={name}", retry_policy=lambda a: 0.2
    )
    ch = await within(20, client.channel(), "channel")
    await within(10, ch.exchange_declare(exchange, "fanout", auto_delete=True), "x")
    ok = await within(10, ch.queue_declare("", exclusive=True), "queue")
    original = ok.queue
    await within(10, ch.queue_bind(original, exchange), "bind")
    consumer = await within(10, ch.basic_consume(original), "consume")
    await within(10, ch.basic_publish(exchange, "", b"before"), "publish")
    assert (await within(10, consumer.get(), "get")).body == b"before"
    recovered = len(watch.recovered)

    await kill(name)
    await watch.recovered_after(recovered)
    renamed = (await within(10, ch.queue_declare(original, passive=True), "passive")).queue
    assert renamed != original and renamed.startswith("amq.gen-")
    assert not await exists(queue=original)  # exclusive: it died with the old connection
    # Through the exchange, and through the default exchange by the name the user holds.
    await within(10, ch.basic_publish(exchange, "", b"via exchange"), "publish")
    await within(10, ch.basic_publish("", original, b"via default exchange"), "publish")
    bodies = [(await within(10, consumer.get(), "get")).body for _ in range(2)]
    assert sorted(bodies) == [b"via default exchange", b"via exchange"]


async def test_deleted_entities_are_not_replayed(clients: Clients) -> None:
    name = unique("deleted")
    kept, dropped = clients.delete_later(unique("kept")), clients.delete_later(unique("gone"))
    exchange = unique("x")
    client, watch = await clients.start(
        f"{AMQP}?connection_name={name}", retry_policy=lambda a: 0.2
    )
    ch = await within(20, client.channel(), "channel")
    await within(10, ch.queue_declare(kept, arguments=EXPIRES), "queue")
    await within(10, ch.queue_declare(dropped, arguments=EXPIRES), "queue")
    await within(10, ch.exchange_declare(exchange, "fanout"), "exchange")
    await within(10, ch.queue_bind(kept, exchange), "bind")
    await within(10, ch.queue_delete(dropped), "queue_delete")
    await within(10, ch.exchange_delete(exchange), "exchange_delete")
    recovered = len(watch.recovered)

    await kill(name)
    await watch.recovered_after(recovered)
    assert await exists(queue=kept)
    assert not await exists(queue=dropped)
    assert not await exists(exchange=exchange)


# -- channel-level errors ------------------------------------------------------------------------------


async def test_channel_error_fails_only_that_call(clients: Clients) -> None:
    queue = clients.delete_later(unique("q"))
    client, watch = await clients.start(AMQP)
    ch = await open_channel(client, queue, arguments=EXPIRES)
    consumer = await within(10, ch.basic_consume(queue), "consume")
    missing = unique("missing")

    with pytest.raises(ChannelClosedByBroker) as info:
        await within(10, ch.queue_declare(missing, passive=True), "passive declare")
    assert info.value.reply_code == 404

    # The channel is back (a new incarnation on the same connection) with its topology.
    assert ch.is_open
    await within(10, ch.basic_publish("", queue, b"after the error"), "publish")
    assert (await within(10, ch.queue_declare(queue, arguments=EXPIRES), "declare")).queue == queue
    message = await within(10, consumer.get(), "get")
    assert message.body == b"after the error"
    message.ack()
    assert client.connections == 1 and watch.lost == []
    # The failed passive declare was not recorded: it is not replayed on the next channel.
    with pytest.raises(ChannelClosedByBroker):
        await within(10, ch.exchange_declare(unique("missing-x"), passive=True), "passive")
    await within(10, ch.basic_publish("", queue, b"still fine"), "publish")
    assert (await within(10, consumer.get(), "get")).body == b"still fine"


# -- network faults through the proxy ------------------------------------------------------------------


async def test_stall_is_detected_by_heartbeats_then_recovered(
    clients: Clients, proxy: TcpProxy
) -> None:
    queue = clients.delete_later(unique("q"))
    heartbeat = 2
    client, watch = await clients.start(
        proxy.url(f"heartbeat={heartbeat}&stack_timeout=5"), retry_policy=lambda a: 0.25
    )
    ch = await open_channel(client, queue, arguments=EXPIRES)
    consumer = await within(10, ch.basic_consume(queue), "consume")
    await within(10, ch.basic_publish("", queue, b"before"), "publish")
    (await within(10, consumer.get(), "get")).ack()
    recovered = len(watch.recovered)

    proxy.stall()
    stalled_at = time.monotonic()
    published = ch.basic_publish("", queue, b"during the stall")
    await watch.lost_after(0, timeout=4 * heartbeat + 5)
    detected = watch.lost[0][0] - stalled_at
    assert isinstance(watch.lost[0][1], AMQPHeartbeatTimeout)
    assert detected <= 2 * heartbeat + 1.5, detected
    proxy.resume()
    await watch.recovered_after(recovered)
    await within(20, published, "publish made during the stall")
    assert (await within(10, consumer.get(), "get")).body == b"during the stall"
    metric(f"tornado stall detected after {detected:.2f} s (heartbeat={heartbeat})")


async def test_reset_connection_recovers(clients: Clients, proxy: TcpProxy) -> None:
    queue = clients.delete_later(unique("q"))
    client, watch = await clients.start(proxy.url("heartbeat=10"), retry_policy=lambda a: 0.2)
    ch = await open_channel(client, queue, arguments=EXPIRES)
    consumer = await within(10, ch.basic_consume(queue), "consume")
    collector = Collector(consumer)
    publisher = Publisher(ch, "", queue, window=20)

    async def reset_at(i: int) -> None:
        if i in (300, 700):
            count = len(watch.recovered)
            proxy.reset()
            await watch.recovered_after(count)

    await within(60, publisher.run(range(1000), before=reset_at), "publishing")
    assert publisher.failed == [] and len(publisher.confirmed) == 1000
    assert [type(why) for _, why in watch.lost] == [StreamLostError, StreamLostError]
    await drain_check(collector, publisher.confirmed)
    assert consumer.is_active


async def test_cut_mid_handshake_is_a_failed_attempt_then_retried(
    clients: Clients, proxy: TcpProxy
) -> None:
    queue = clients.delete_later(unique("q"))
    errors: list[BaseException] = []
    client, watch = await clients.start(proxy.url(), retry_policy=lambda a: 0.2)
    client.on_attempt_failed.append(lambda params, error: errors.append(error))
    ch = await open_channel(client, queue, arguments=EXPIRES)
    accepted = proxy.accepted
    recovered = len(watch.recovered)

    # The next two connections end 100 bytes in: inside Connection.Start, mid-handshake.
    proxy.cut_after(100, connections=2)
    proxy.reset()
    await watch.recovered_after(recovered)
    assert proxy.cut == 2
    assert proxy.accepted == accepted + 3
    assert [type(e) for e in errors] == [StreamLostError, StreamLostError]
    assert client.connections == 2 and client.failure is None
    await within(10, ch.basic_publish("", queue, b"after the cuts"), "publish")


async def test_publish_during_outage_waits_for_the_next_connection(
    clients: Clients, proxy: TcpProxy
) -> None:
    queue = clients.delete_later(unique("q"))
    client, watch = await clients.start(proxy.url(), retry_policy=lambda a: 0.2, publish_timeout=10)
    ch = await open_channel(client, queue, arguments=EXPIRES)

    proxy.refuse()
    await watch.lost_after(0)
    waiting = ch.basic_publish("", queue, b"waited")
    await asyncio.sleep(1.5)
    assert not waiting.done()  # parked, not failed
    proxy.resume()
    await within(15, waiting, "parked publish")
    assert await queue_counts(queue) == (1, 0)


async def test_publish_fails_with_publish_timeout_when_no_connection_comes(
    clients: Clients, proxy: TcpProxy
) -> None:
    queue = clients.delete_later(unique("q"))
    publish_timeout = 1.5
    client, watch = await clients.start(
        proxy.url(), retry_policy=lambda a: 0.2, publish_timeout=publish_timeout
    )
    ch = await open_channel(client, queue, arguments=EXPIRES)

    proxy.refuse()
    await watch.lost_after(0)
    started = time.monotonic()
    with pytest.raises(PublishTimeout):
        await within(10, ch.basic_publish("", queue, b"too late"), "publish")
    elapsed = time.monotonic() - started
    assert publish_timeout - 0.1 <= elapsed <= publish_timeout + 1.5, elapsed

    # When the broker is back, the timed-out message is not sent after all.
    recovered = len(watch.recovered)
    proxy.resume()
    await watch.recovered_after(recovered)
    await within(10, ch.basic_publish("", queue, b"next"), "publish")
    assert await queue_counts(queue) == (1, 0)
    got = await within(10, ch.basic_get(queue, auto_ack=True), "basic_get")
    assert got is not None and got.body == b"next"


# -- acks across reconnects --------------------------------------------------------------------------


async def test_ack_of_a_message_from_a_dead_connection_is_dropped(clients: Clients) -> None:
    name = unique("ack")
    queue = clients.delete_later(unique("q"))
    client, watch = await clients.start(
        f"{AMQP}?connection_name={name}", retry_policy=lambda a: 0.2
    )
    ch = await open_channel(client, queue, arguments=EXPIRES)
    consumer = await within(10, ch.basic_consume(queue), "consume")
    await within(10, ch.basic_publish("", queue, b"only one"), "publish")
    stale: Message = await within(10, consumer.get(), "get")
    assert not stale.redelivered
    recovered = len(watch.recovered)

    await kill(name)
    await watch.recovered_after(recovered)
    again: Message = await within(10, consumer.get(), "redelivery")
    assert again.body == b"only one" and again.redelivered
    assert again.delivery_tag == stale.delivery_tag  # same tag, a different channel

    stale.ack()  # a no-op: it must not ack `again`, which reuses the tag
    await asyncio.sleep(0.3)
    assert await queue_counts(queue) == (0, 1)
    again.ack()
    for _ in range(50):
        if await queue_counts(queue) == (0, 0):
            break
        await asyncio.sleep(0.1)
    assert await queue_counts(queue) == (0, 0)


# -- the private node: restarts and alarms -------------------------------------------------------------


@pytest.mark.slow
async def test_broker_restart_loses_no_confirmed_publish(
    clients: Clients, private_broker: faults.BrokerNode
) -> None:
    node = private_broker
    queue = clients.delete_later(unique("q"), node.url())
    client, watch = await clients.start(
        node.url(f"connection_name={unique('restart')}&heartbeat=5"),
        retry_policy=lambda a: min(0.25 * a, 1.0),
        publish_timeout=90,
    )
    # Durable queue, persistent messages: what a broker restart must not lose.
    ch = await open_channel(client, queue, durable=True)
    publisher = Publisher(ch, "", queue, window=20, client=client)
    at_loss: list[int] = []
    client.on_disconnected.append(lambda why: at_loss.append(publisher.unsettled()))
    restarting: list[asyncio.Future[None]] = []

    async def restart() -> None:
        recovered = len(watch.recovered)
        await asyncio.to_thread(node.stop_app)
        await asyncio.to_thread(node.start_app)
        await watch.recovered_after(recovered, timeout=60)

    async def start_restart(i: int) -> None:
        if i == 500:
            restarting.append(asyncio.ensure_future(restart()))

    def ids() -> Iterator[int]:
        # Publish throughout the restart, and 500 more once the channel is back.
        i, last = 0, None
        while i < 100_000 and (last is None or i < last):
            if last is None and restarting and restarting[0].done():
                last = i + 500
            yield i
            i += 1

    started = time.monotonic()
    await within(150, publisher.run(ids(), before=start_restart, properties=PERSISTENT), "pub")
    elapsed = time.monotonic() - started
    await within(60, restarting[0], "restart and recovery")
    count = len(publisher.confirmed)
    assert publisher.failed == [] and count == max(publisher.confirmed) + 1
    assert client.connections >= 2 and publisher.carried[1] > 0, (at_loss, publisher.carried)

    consumer = await within(20, ch.basic_consume(queue), "consume")
    collector = Collector(consumer)
    await drain_check(collector, publisher.confirmed)
    metric(
        f"tornado restart (stop_app/start_app): {count} confirmed, 0 lost, "
        f"{collector.duplicates} duplicates, unconfirmed at the restart {at_loss}, "
        f"{elapsed:.1f} s, {client.connections - 1} reconnects"
    )


@pytest.mark.slow
async def test_memory_alarm_blocks_publishes_until_it_clears(
    clients: Clients, private_broker: faults.BrokerNode
) -> None:
    node = private_broker
    queue = clients.delete_later(unique("q"), node.url())
    client, watch = await clients.start(node.url(), retry_policy=lambda a: 0.25)
    ch = await open_channel(client, queue, arguments=EXPIRES)
    await within(10, ch.basic_publish("", queue, b"before"), "publish")
    conn = await within(10, client.when_connected(), "when_connected")
    blocked: list[asyncio.Future[Any]] = []
    try:
        await asyncio.to_thread(node.set_watermark, 0)
        blocked = [ch.basic_publish("", queue, b"%d" % i) for i in range(20)]
        await eventually(lambda: conn.is_blocked, 15, "Connection.Blocked")
        await asyncio.sleep(1.0)
        assert not any(f.done() for f in blocked)
    finally:
        await asyncio.to_thread(node.set_watermark, 0.4)
    await within(30, asyncio.gather(*blocked), "publishes after the alarm")
    await eventually(lambda: not conn.is_blocked, 15, "Connection.Unblocked")
    assert client.connections == 1 and watch.lost == []
    assert await queue_counts(queue, node.name) == (21, 0)


# -- the headline: 20,000 confirmed publishes through kills and a stall ------------------------------------

HEADLINE_COUNT = 20_000
HEADLINE_WINDOW = 50


async def _headline_run(clients: Clients, proxy: TcpProxy, with_faults: bool) -> dict[str, Any]:
    name = unique("headline")
    queue = clients.delete_later(unique("q"))
    heartbeat = 2
    client, watch = await clients.start(
        proxy.url(f"connection_name={name}&heartbeat={heartbeat}&stack_timeout=5"),
        retry_policy=lambda a: 0.1,
    )
    ch = await open_channel(client, queue, arguments=EXPIRES)
    publisher = Publisher(ch, "", queue, window=HEADLINE_WINDOW, client=client)
    at_loss: list[int] = []
    client.on_disconnected.append(lambda why: at_loss.append(publisher.unsettled()))
    out: dict[str, Any] = {}
    killer = None
    stalling: list[asyncio.Future[None]] = []
    if with_faults:
        # Broker-side kills each time a connection has taken 300 kB (about 3,800
        # publishes), then a stall of the network at message 15,000.
        killer = BrokerKiller(name, [300_000] * 3)
        await asyncio.to_thread(killer.arm)

    async def stall() -> None:
        recovered = len(watch.recovered)
        lost = len(watch.lost)
        proxy.stall()
        stalled_at = time.monotonic()
        await watch.lost_after(lost, timeout=4 * heartbeat + 5)
        out["stall_detected_s"] = watch.lost[-1][0] - stalled_at
        proxy.resume()
        await watch.recovered_after(recovered, timeout=30)

    async def before(i: int) -> None:
        if with_faults and i == 15_000:
            await eventually(lambda: len(watch.lost) >= 3, 30, "the three kills")
            stalling.append(asyncio.ensure_future(stall()))

    started = time.monotonic()
    await within(110, publisher.run(range(HEADLINE_COUNT), before=before), "publishing")
    out["elapsed"] = time.monotonic() - started
    if killer is not None:
        out["kills"] = await asyncio.to_thread(killer.join, 30)
        await within(30, stalling[0], "stall and recovery")
    # Time spent between each loss and the channel's recovery.
    out["outage"] = sum(
        min((r for r in watch.recovered if r > lost_at), default=lost_at) - lost_at
        for lost_at, _ in watch.lost
    )
    await within(10, ch.basic_qos(prefetch_count=1000), "qos")
    consumer = await within(10, ch.basic_consume(queue), "consume")
    collector = Collector(consumer)
    await drain_check(collector, publisher.confirmed, timeout=60)
    await within(10, consumer.cancel(), "cancel")
    out.update(publisher=publisher, collector=collector, watch=watch, at_loss=at_loss)
    return out


@pytest.mark.slow
async def test_headline_20000_confirmed_publishes_through_kills_and_a_stall(
    clients: Clients, proxy: TcpProxy
) -> None:
    clean = await _headline_run(clients, proxy, with_faults=False)
    assert clean["publisher"].failed == [] and len(clean["publisher"].confirmed) == HEADLINE_COUNT

    run = await _headline_run(clients, proxy, with_faults=True)
    publisher, collector, watch = run["publisher"], run["collector"], run["watch"]
    assert publisher.failed == []
    assert len(publisher.confirmed) == HEADLINE_COUNT
    assert run["kills"] == 3
    kinds = [type(why) for _, why in watch.lost]
    assert kinds == [ConnectionClosedByBroker] * 3 + [AMQPHeartbeatTimeout], kinds
    # Every fault hit traffic: each lost connection's publishes were finished on a later one.
    assert sorted(publisher.carried) == [1, 2, 3, 4], publisher.carried
    # drain_check passed: every confirmed id was consumed (zero lost).
    rate, clean_rate = HEADLINE_COUNT / run["elapsed"], HEADLINE_COUNT / clean["elapsed"]
    busy_rate = HEADLINE_COUNT / (run["elapsed"] - run["stall_detected_s"])
    metric(
        f"tornado headline: {HEADLINE_COUNT} confirmed publishes (window {HEADLINE_WINDOW}) "
        f"through 3 broker-side kills and 1 stall; unconfirmed at each fault {run['at_loss']} "
        f"(carried over per connection {dict(sorted(publisher.carried.items()))}); "
        f"0 lost, {collector.duplicates} duplicates; {run['elapsed']:.1f} s, of which "
        f"{run['outage']:.1f} s between losses and recoveries"
    )
    metric(
        f"tornado rate: {rate:.0f} confirmed publishes/s with faults vs {clean_rate:.0f}/s "
        f"without ({clean['elapsed']:.1f} s); {busy_rate:.0f}/s with faults not counting the "
        f"stall's {run['stall_detected_s']:.2f} s until heartbeats detected it (heartbeat 2 s)"
    )


async def _kill_to_first_publish(
    clients: Clients, kills: int, retry_policy: Callable[[int], float] | None
) -> list[float]:
    """Seconds from each broker-side kill (as the client saw it) to the first publish
    confirmed on the next connection, publishing one at a time throughout."""
    name = unique("latency")
    queue = clients.delete_later(unique("q"))
    client, watch = await clients.start(
        f"{AMQP}?connection_name={name}&heartbeat=10", retry_policy=retry_policy
    )
    ch = await open_channel(client, queue, arguments=EXPIRES)
    delays: list[float] = []

    async def killer() -> None:
        for _ in range(kills):
            await asyncio.sleep(0.3)
            count = len(watch.recovered)
            done = len(delays)
            await kill(name)
            await watch.recovered_after(count)
            await eventually(lambda n=done: len(delays) > n, 20, "a publish after the kill")

    killing = asyncio.ensure_future(killer())
    deadline = time.monotonic() + 60
    published = 0
    while not killing.done() and time.monotonic() < deadline:
        await within(30, ch.basic_publish("", queue, b"%d" % published), "publish")
        published += 1
        # Counted once the next connection exists: a confirm that came on the old one in
        # the same read as the broker's Connection.Close would otherwise count as 0 ms.
        if len(watch.lost) > len(delays) and len(watch.connected) > len(delays) + 1:
            delays.append(time.monotonic() - watch.lost[len(delays)][0])
    await within(30, killing, "killer")
    assert len(watch.lost) == kills and len(delays) == kills
    await within(20, client.stop(), "stop")
    return delays


@pytest.mark.slow
async def test_time_from_kill_to_first_publish(clients: Clients) -> None:
    kills = 10
    # The default retry policy (what an application gets), then no delay at all (what
    # reconnecting and replaying cost by themselves).
    for label, policy in (("default retry policy", None), ("retry delay 0", lambda a: 0.0)):
        delays = await _kill_to_first_publish(clients, kills, policy)
        median = statistics.median(delays)
        metric(
            f"tornado kill -> first confirmed publish ({label}): median {median * 1000:.0f} ms "
            f"over {kills} kills (min {min(delays) * 1000:.0f}, max {max(delays) * 1000:.0f} ms)"
        )
        assert median < 2.0
