"""``AMQPClient`` without RabbitMQ: retries, backoff, giving up, and recovery, against the
fake broker (:mod:`txamqp091.testing`) served on 127.0.0.1 by its asyncio shim.

The broker's scripted faults give each accepted connection a behaviour: ``drop`` closes
at once, ``silent`` never answers, ``refuse-login`` answers Connection.Close 403, and
None serves as RabbitMQ does, recording every frame the client sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from tests.manual_clock import ManualClock
from txamqp091.core import spec
from txamqp091.exceptions import (
    AMQPConnectionError,
    ChannelWrongStateError,
    ConnectionClosedByBroker,
    ConnectionWrongStateError,
    ProbableAuthenticationError,
    PublishTimeout,
    StreamLostError,
)
from txamqp091.testing import FakeBroker
from txamqp091.testing.asyncio import FakeServer, serve
from txamqp091.tornado import (
    AMQPClient,
    Connection,
    RecoveringChannel,
    RecoveringConsumer,
    connect,
)

pytestmark = pytest.mark.asyncio

T = TypeVar("T")


async def within(seconds: float, awaitable: Awaitable[T], what: str = "operation") -> T:
    """Await ``awaitable`` for at most ``seconds`` (a test must never hang)."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except asyncio.TimeoutError:
        raise AssertionError(f"{what} did not finish within {seconds} s") from None


async def eventually(
    predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true within {timeout} s")
        await asyncio.sleep(0.005)


class RecordingPolicy:
    """A retry policy that remembers the attempts it was asked about."""

    def __init__(self, delay: Callable[[int], float] = lambda attempt: 0.02) -> None:
        self.delay = delay
        self.attempts: list[int] = []

    def __call__(self, attempt: int) -> float:
        self.attempts.append(attempt)
        return self.delay(attempt)


# -- the fake broker on a loopback port -----------------------------------------------------------


@pytest_asyncio.fixture
async def brokers() -> AsyncIterator[Callable[..., Awaitable[FakeServer]]]:
    """``await brokers(fault, ..., default=None)``: a served :class:`FakeBroker` whose
    next connections play those scripted faults (None serves), then ``default``."""
    made: list[FakeServer] = []

    async def make(*faults: str | None, default: str | None = None) -> FakeServer:
        broker = FakeBroker()
        broker.script(*faults, default=default)
        server = await serve(broker)
        made.append(server)
        return server

    yield make
    for server in made:
        await server.close()


@pytest_asyncio.fixture
async def clients() -> AsyncIterator[Callable[..., AMQPClient]]:
    made: list[AMQPClient] = []

    def make(url: Any, **kwargs: Any) -> AMQPClient:
        client = AMQPClient(url, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await within(10, client.stop(), "stop")


Brokers = Callable[..., Awaitable[FakeServer]]
Clients = Callable[..., AMQPClient]


# -- connecting, retrying, backing off ----------------------------------------------------------------


async def test_channel_before_start_is_a_state_error(clients: Clients) -> None:
    client = clients("amqp://guest:guest@127.0.0.1:1/")
    with pytest.raises(ConnectionWrongStateError):
        await client.channel()
    assert not client.is_connected and client.connections == 0


async def test_when_connected_before_start_waits_for_the_connection(
    brokers: Brokers, clients: Clients
) -> None:
    """As Twisted's whenConnected before startService: a waiter, not an error."""
    server = await brokers()
    client = clients(server.url())
    waiting = asyncio.ensure_future(client.when_connected())
    await asyncio.sleep(0)  # one loop turn: the waiter is registered, nothing connects
    assert not waiting.done() and server.broker.accepted == 0
    await within(5, client.start(), "start")
    conn = await within(5, waiting, "when_connected")
    assert isinstance(conn, Connection) and conn.is_open and client.connection is conn


async def test_when_connected_before_start_fails_once_stopped(clients: Clients) -> None:
    client = clients("amqp://guest:guest@127.0.0.1:1/")
    waiting = asyncio.ensure_future(client.when_connected())
    await asyncio.sleep(0)
    assert not waiting.done()
    await within(1, client.stop(), "stop")
    with pytest.raises(ConnectionWrongStateError):
        await within(1, waiting, "when_connected")


async def test_the_default_retry_policy_retries_within_a_second_then_backs_off() -> None:
    client = AMQPClient("amqp://guest:guest@127.0.0.1:1/")
    delays = [client.retry_policy(attempt) for attempt in range(1, 30)]
    assert 0 < delays[0] < 1.0
    assert delays[-1] >= 29.0 and max(delays) <= 30.25
    assert delays[6] > delays[0]


async def test_start_returns_after_a_failed_first_attempt_then_retries_per_policy(
    brokers: Brokers, clients: Clients
) -> None:
    server = await brokers(default="drop")
    delays = {1: 5.0, 2: 15.0, 3: 25.0}
    policy = RecordingPolicy(lambda attempt: delays.get(attempt, 30.0))
    clock = ManualClock()
    client = clients(server.url(), retry_policy=policy, clock=clock)

    await within(5, client.start(), "start")
    assert not client.is_connected and client.connection is None and client.connections == 0
    assert client.failure is None and policy.attempts == [1]
    await eventually(lambda: server.broker.accepted == 1, 2, "the first attempt reached it")

    waiting = asyncio.ensure_future(client.when_connected())
    # Each failed attempt in a row asks the policy about the next number, and the next
    # attempt comes that many seconds (of the injected clock) later, not a moment sooner.
    for attempt in (1, 2, 3):
        clock.advance(delays[attempt] - 0.001)
        await asyncio.sleep(0.05)
        assert server.broker.accepted == attempt, attempt
        clock.advance(0.001)
        await eventually(
            lambda asked=attempt + 1: len(policy.attempts) == asked, 2, f"failure {attempt}"
        )
        assert server.broker.accepted == attempt + 1
    assert policy.attempts == [1, 2, 3, 4] and not waiting.done()

    # The broker comes back: the waiter gets the connection and the backoff stops.
    server.broker.default_fault = None
    clock.advance(30.0)
    conn = await within(5, waiting, "when_connected")
    assert isinstance(conn, Connection) and conn.is_open
    assert client.is_connected and client.connection is conn and client.connections == 1
    assert await within(1, client.when_connected(), "when_connected") is conn
    assert clock.pending() == []  # no retry left scheduled (heartbeat=0: no timers at all)
    assert len(policy.attempts) == 4 and server.broker.accepted == 5


async def test_a_silent_peer_is_a_failed_attempt_bounded_by_stack_timeout(
    brokers: Brokers, clients: Clients
) -> None:
    server = await brokers(default="silent")
    policy = RecordingPolicy(lambda attempt: 0.05)
    clock = ManualClock()
    client = clients(server.url("stack_timeout=7"), retry_policy=policy, clock=clock)
    starting = asyncio.ensure_future(client.start())
    await eventually(lambda: server.broker.accepted == 1, 2, "the first attempt reached it")
    clock.advance(6.999)
    await asyncio.sleep(0.05)
    assert not starting.done()  # the silent peer holds the attempt until stack_timeout
    clock.advance(0.001)
    await within(2, starting, "start")
    assert not client.is_connected and policy.attempts == [1]
    # The attempt's socket was closed: the peer saw EOF and ended.
    await eventually(lambda: server.connections[0].state == "lost", 2, "first attempt closed")
    server.broker.default_fault = None
    clock.advance(0.05)
    await within(5, client.when_connected(), "when_connected")
    assert client.connections == 1 and server.broker.accepted == 2


async def test_a_dropped_connection_is_reconnected_and_the_hooks_run(
    brokers: Brokers, clients: Clients
) -> None:
    server = await brokers(None, "drop", "drop")
    policy = RecordingPolicy(lambda attempt: 0.02)
    client = clients(server.url(), retry_policy=policy)
    connected: list[Connection] = []
    lost: list[BaseException | None] = []
    client.on_connected.append(connected.append)
    client.on_disconnected.append(lost.append)
    await within(5, client.start(), "start")
    first = await within(1, client.when_connected(), "when_connected")
    assert connected == [first] and policy.attempts == []

    server.broker.current.close()
    await eventually(lambda: len(connected) == 2, 5, "reconnect")
    assert isinstance(lost[0], ConnectionClosedByBroker) and lost[0].reply_code == 320
    # Losing a connection is failure 1; the two dropped attempts are failures 2 and 3.
    assert policy.attempts == [1, 2, 3]
    assert client.connections == 2 and server.broker.accepted == 4
    second = await within(1, client.when_connected(), "when_connected")
    assert second is connected[1] and second is not first and not first.is_open

    server.broker.current.drop()
    await eventually(lambda: len(connected) == 3, 5, "reconnect")
    assert isinstance(lost[1], StreamLostError)
    assert policy.attempts == [1, 2, 3, 1]


async def test_stop_closes_politely_and_stops_reconnecting(
    brokers: Brokers, clients: Clients
) -> None:
    server = await brokers()
    policy = RecordingPolicy()
    client = clients(server.url(), retry_policy=policy)
    lost: list[BaseException | None] = []
    client.on_disconnected.append(lost.append)
    await within(5, client.start(), "start")
    session = server.broker.current
    await within(5, client.stop(), "stop")
    assert session.method_names()[-1] == "connection.close"
    await eventually(lambda: session.state == "lost", 2, "the broker side closed")
    assert not client.is_connected and lost == [None]
    await asyncio.sleep(0.2)
    assert server.broker.accepted == 1 and policy.attempts == []


async def test_stop_while_backing_off(brokers: Brokers, clients: Clients) -> None:
    server = await brokers(default="drop")
    client = clients(server.url(), retry_policy=RecordingPolicy(lambda attempt: 30.0))
    await within(5, client.start(), "start")
    assert server.broker.accepted == 1
    await within(2, client.stop(), "stop")
    await asyncio.sleep(0.1)
    assert server.broker.accepted == 1


# -- refused logins --------------------------------------------------------------------------------


async def test_three_refused_logins_give_up_and_say_why(
    brokers: Brokers, clients: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    server = await brokers(default="refuse-login")
    policy = RecordingPolicy(lambda attempt: 0.05)
    client = clients(server.url(), retry_policy=policy, publish_timeout=30)
    with caplog.at_level(logging.INFO, logger="txamqp091.tornado"):
        await within(5, client.start(), "start")
        # start() returned after the first refusal: not given up yet.
        assert server.broker.accepted == 1 and client.failure is None and not client.is_connected
        channel = await within(1, client.channel(), "channel")
        waiting = asyncio.ensure_future(client.when_connected())
        parked = channel.basic_publish("", "q", b"never sent")

        # Waiters fail with why the client gave up, the same object on both adapters.
        with pytest.raises(ProbableAuthenticationError) as info:
            await within(5, waiting, "when_connected")
        assert info.value is client.failure

    assert server.broker.accepted == 3
    assert isinstance(client.failure, ProbableAuthenticationError)
    assert "403" in str(client.failure) and "ACCESS_REFUSED" in str(client.failure)
    # Backed off between the refusals, not after the last one.
    assert policy.attempts == [1, 2]
    # What waited on the channel fails now, naming the refusal (not a PublishTimeout later).
    with pytest.raises(AMQPConnectionError, match="refused"):
        await within(1, parked, "parked publish")
    assert not channel.is_open
    with pytest.raises(ChannelWrongStateError):
        await within(1, channel.queue_declare("q"), "declare on a dead channel")
    with pytest.raises(AMQPConnectionError):
        await within(1, client.when_connected(), "when_connected")
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1 and "giving up" in critical[0].getMessage()
    await asyncio.sleep(0.2)
    assert server.broker.accepted == 3  # no more attempts
    await within(5, client.stop(), "stop after giving up")


async def test_a_success_resets_the_refused_login_count(brokers: Brokers, clients: Clients) -> None:
    server = await brokers("refuse-login", "refuse-login", None, "refuse-login", "refuse-login")
    policy = RecordingPolicy(lambda attempt: 0.02)
    client = clients(server.url(), retry_policy=policy)
    await within(5, client.start(), "start")
    await within(5, client.when_connected(), "when_connected")
    assert client.connections == 1 and server.broker.accepted == 3
    server.broker.current.close()
    await eventually(lambda: client.connections == 2, 5, "second connection")
    assert client.failure is None and server.broker.accepted == 6
    assert policy.attempts == [1, 2, 1, 2, 3]


# -- recovery against the scripted broker -------------------------------------------------------------


async def test_channel_is_replayed_in_order_and_an_unconfirmed_publish_is_sent_again(
    brokers: Brokers, clients: Clients
) -> None:
    server = await brokers(None, "drop")
    client = clients(server.url(), retry_policy=RecordingPolicy(lambda attempt: 0.02))
    recovered: list[RecoveringChannel] = []
    client.on_recovered.append(recovered.append)
    await within(5, client.start(), "start")
    ch = await within(1, client.channel(), "channel")
    assert isinstance(ch, RecoveringChannel)
    # The hook also fires once the channel is first open; operations issued before that
    # are sent twice (see test_operations_issued_before_the_channel_opens_are_sent_once).
    await eventually(lambda: recovered == [ch], 2, "the channel open")
    await within(2, ch.exchange_declare("x", "fanout"), "exchange_declare")
    ok = await within(2, ch.queue_declare("", exclusive=True), "queue_declare")
    original = ok.queue
    await within(2, ch.queue_bind(original, "x"), "queue_bind")
    # One unacked delivery at a time: what the broker holds stays in the queue.
    await within(2, ch.basic_qos(prefetch_count=1), "basic_qos")
    await within(2, ch.confirm_delivery(), "confirm_delivery")
    consumer = await within(2, ch.basic_consume(original, consumer_tag="ctag-1"), "consume")
    assert isinstance(consumer, RecoveringConsumer)
    await within(2, ch.basic_publish("", original, b"confirmed"), "publish")
    first = server.broker.current
    assert first.method_names() == [
        "channel.open",
        "exchange.declare",
        "queue.declare",
        "queue.bind",
        "basic.qos",
        "confirm.select",
        "basic.consume",
        "basic.publish",
    ]
    assert (await within(2, consumer.get(), "get")).body == b"confirmed"

    # The broker holds the next confirm back, then the connection dies under it.
    first.hold_confirms = True
    unconfirmed = ch.basic_publish("", original, b"unconfirmed")
    await eventually(
        lambda: len(first.channels[1].held_confirms) == 1, 2, "the publish reached the broker"
    )
    first.close()
    await eventually(lambda: not client.is_connected, 2, "disconnect")
    during = ch.basic_publish("", original, b"during the outage")
    await within(5, unconfirmed, "the unconfirmed publish, confirmed on the next connection")
    await within(5, during, "the publish made during the outage")
    assert recovered == [ch, ch] and client.connections == 2

    second = server.broker.current
    assert second is not first
    # The exclusive queue went with the first connection; the replay declared a new one.
    (renamed,) = [name for name, queue in server.broker.queues.items() if queue.exclusive]
    assert renamed != original and original not in server.broker.queues
    assert second.method_names()[:6] == [
        "channel.open",
        "exchange.declare",
        "queue.declare",
        "queue.bind",
        "basic.qos",
        "confirm.select",
    ]
    methods = [frame.payload for frame in second.received]
    bind = next(m for m in methods if isinstance(m, spec.QueueBind))
    assert (bind.queue, bind.exchange, bind.routing_key) == (renamed, "x", renamed)
    qos = next(m for m in methods if isinstance(m, spec.BasicQos))
    assert qos.prefetch_count == 1
    consume = next(m for m in methods if isinstance(m, spec.BasicConsume))
    assert (consume.queue, consume.consumer_tag) == (renamed, "ctag-1")
    # The resent publish first, then the one made during the outage, to the new name.
    assert second.published == [
        (1, "", renamed, b"unconfirmed"),
        (1, "", renamed, b"during the outage"),
    ]
    assert [body for *_, body in first.published] == [b"confirmed", b"unconfirmed"]
    # The same consumer object delivers on the new connection, in order.
    message = await within(2, consumer.get(), "get")
    assert message.body == b"unconfirmed" and consumer.is_active
    message.ack()
    message = await within(2, consumer.get(), "get")
    assert message.body == b"during the outage"
    passive = await within(2, ch.queue_declare(original, passive=True), "passive declare")
    assert passive.queue == renamed


async def test_publish_during_an_outage_times_out_and_is_not_sent_later(
    brokers: Brokers, clients: Clients
) -> None:
    server = await brokers(None, default="drop")
    clock = ManualClock()
    client = clients(
        server.url(),
        retry_policy=RecordingPolicy(lambda attempt: 100.0),
        publish_timeout=10.0,
        clock=clock,
    )
    await within(5, client.start(), "start")
    ch = await within(1, client.channel(), "channel")
    await within(2, ch.confirm_delivery(), "confirm_delivery")
    server.broker.current.close()
    await eventually(lambda: not client.is_connected, 2, "disconnect")
    publishing = asyncio.ensure_future(ch.basic_publish("", "q", b"too late"))
    await asyncio.sleep(0.05)
    clock.advance(9.999)
    await asyncio.sleep(0.05)
    assert not publishing.done()  # parked, waiting for a connection
    clock.advance(0.001)
    with pytest.raises(PublishTimeout):
        await within(2, publishing, "publish")
    server.broker.default_fault = None
    clock.advance(90.0)  # the reconnect, 100 s after the disconnect
    await within(5, client.when_connected(), "when_connected")
    await within(2, ch.basic_publish("", "q", b"next"), "publish")
    assert server.broker.current.published == [(1, "", "q", b"next")]


# -- regressions: bugs these tests found, now fixed ------------------------------------------------


async def test_hooks_added_after_start_are_called(brokers: Brokers, clients: Clients) -> None:
    """``on_connected``, ``on_disconnected`` and ``on_recovered`` are plain lists: a hook
    appended after ``start()`` runs from the next event on, as with Twisted's service."""
    server = await brokers()
    client = clients(server.url(), retry_policy=RecordingPolicy())
    await within(5, client.start(), "start")
    ch = await within(1, client.channel(), "channel")
    await within(2, ch.queue_declare("q"), "declare")
    events: list[str] = []
    client.on_connected.append(lambda conn: events.append("connected"))
    client.on_disconnected.append(lambda why: events.append("disconnected"))
    client.on_recovered.append(lambda channel: events.append("recovered"))
    server.broker.current.close()
    await eventually(lambda: client.connections == 2, 5, "reconnect")
    await asyncio.sleep(0.2)
    assert events == ["disconnected", "connected", "recovered"]


async def test_operations_issued_before_the_channel_opens_are_sent_once(
    brokers: Brokers, clients: Clients
) -> None:
    server = await brokers()
    client = clients(server.url(), retry_policy=RecordingPolicy())
    await within(5, client.start(), "start")
    ch = await within(1, client.channel(), "channel")  # its incarnation is still opening
    await within(2, ch.exchange_declare("x", "fanout"), "exchange_declare")
    await within(2, ch.confirm_delivery(), "confirm_delivery")
    assert server.broker.current.method_names() == [
        "channel.open",
        "exchange.declare",
        "confirm.select",
    ]


@pytest.mark.parametrize("when", ["before the channel opens", "during an outage"])
async def test_consume_issued_while_no_incarnation_is_open_subscribes_once(
    brokers: Brokers, clients: Clients, when: str
) -> None:
    server = await brokers(None, "drop")
    server.broker.declare_queue("q")  # as another client would have
    client = clients(server.url(), retry_policy=RecordingPolicy(lambda attempt: 0.1))
    await within(5, client.start(), "start")
    ch = await within(1, client.channel(), "channel")
    if when == "during an outage":
        await within(2, ch.queue_declare("q"), "declare")
        server.broker.current.close()
        await eventually(lambda: not client.is_connected, 2, "disconnect")
    consumer = await within(5, ch.basic_consume("q", consumer_tag="ctag-1"), "basic_consume")
    assert consumer.is_active
    assert server.broker.current.method_names().count("basic.consume") == 1


async def test_start_after_stop_reconnects_and_the_channels_recover(
    brokers: Brokers, clients: Clients
) -> None:
    server = await brokers()
    client = clients(server.url(), retry_policy=RecordingPolicy(), publish_timeout=1.0)
    await within(5, client.start(), "start")
    ch = await within(1, client.channel(), "channel")
    await within(2, ch.queue_declare("q"), "declare")
    await within(5, client.stop(), "stop")
    await within(5, client.start(), "start again")
    assert client.is_connected and client.connections == 2
    await within(3, ch.basic_publish("", "q", b"after the restart"), "publish")
    for _ in range(100):  # outside confirm mode the publish completes once it is written
        if server.broker.current.published:
            break
        await asyncio.sleep(0.01)
    assert server.broker.current.published == [(1, "", "q", b"after the restart")]


async def test_when_connected_after_stop_fails_at_once(brokers: Brokers, clients: Clients) -> None:
    server = await brokers()
    client = clients(server.url(), retry_policy=RecordingPolicy())
    await within(5, client.start(), "start")
    await within(5, client.stop(), "stop")
    with pytest.raises(AMQPConnectionError):
        await within(1, client.when_connected(), "when_connected after stop")


async def test_async_with_closes_the_connection_and_stops_the_client(
    brokers: Brokers,
) -> None:
    server = await brokers()
    async with await connect(server.url()) as conn:
        assert conn.is_open
    assert conn.is_closed and await within(1, conn.closed, "closed") is None

    async with AMQPClient(server.url(), retry_policy=RecordingPolicy()) as client:
        current = await within(5, client.when_connected(), "when_connected")
    assert not current.is_open and not client.is_connected
    with pytest.raises(ConnectionWrongStateError):
        await within(1, client.when_connected(), "when_connected after the block")


async def test_connect_bounds_the_handshake_and_waits_between_rounds_on_the_injected_clock(
    brokers: Brokers,
) -> None:
    server = await brokers("silent", "drop")
    clock = ManualClock()
    connecting = asyncio.ensure_future(
        connect(server.url("stack_timeout=20&connection_attempts=3&retry_delay=7"), clock=clock)
    )
    await eventually(lambda: server.broker.accepted == 1, 2, "the first attempt")
    clock.advance(19.999)
    await asyncio.sleep(0.05)
    assert not connecting.done() and server.broker.accepted == 1  # a silent peer: waiting
    clock.advance(0.001)  # stack_timeout: the next round after retry_delay
    await eventually(lambda: clock.pending() == [27.0], 2, "retry_delay scheduled")
    clock.advance(7.0)
    await eventually(lambda: server.broker.accepted == 2, 2, "the second attempt (dropped)")
    await eventually(lambda: clock.pending() == [34.0], 2, "retry_delay scheduled again")
    clock.advance(7.0)
    conn = await within(5, connecting, "connect")
    assert conn.is_open and server.broker.accepted == 3
    await within(2, conn.close(), "close")
