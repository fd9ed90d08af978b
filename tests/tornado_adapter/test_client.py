"""``AMQPClient`` without RabbitMQ: retries, backoff, giving up, and recovery, against local
asyncio servers that drop, ignore, refuse or script a broker (with ``ServerFrames``).

Each server is a :class:`ScriptedBroker` on 127.0.0.1 whose connections follow a plan
(one behaviour per accepted connection): ``drop`` closes at once, ``silent`` never
answers, ``deny`` refuses the login with Connection.Close 403, and ``serve`` speaks
enough AMQP 0-9-1 (channels, declares, binds, QoS, confirms, consumers, publishes) for a
surviving channel to be replayed on it, recording every method the client sent.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from txamqp091.core import spec
from txamqp091.core.testing import ServerFrames, parse_client_frames
from txamqp091.exceptions import (
    AMQPConnectionError,
    ChannelWrongStateError,
    ConnectionClosedByBroker,
    ConnectionWrongStateError,
    ProbableAuthenticationError,
    PublishTimeout,
    StreamLostError,
)
from txamqp091.tornado import AMQPClient, Connection, RecoveringChannel, RecoveringConsumer

pytestmark = pytest.mark.asyncio

T = TypeVar("T")

_frame_header = struct.Struct(">BHI")


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


# -- a scripted broker ---------------------------------------------------------------------------


class BrokerChannel:
    def __init__(self) -> None:
        self.confirm = False
        self.next_tag = 1
        self.publishing: tuple[spec.BasicPublish, int, bytearray] | None = None


class BrokerSession:
    """One accepted connection, acting as the plan says."""

    def __init__(
        self,
        broker: ScriptedBroker,
        index: int,
        behaviour: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.broker = broker
        self.index = index
        self.behaviour = behaviour
        self.reader = reader
        self.writer = writer
        self.frames = ServerFrames()
        #: (channel, method) of every method frame the client sent, in order.
        self.methods: list[tuple[int, spec.Method]] = []
        #: (channel, routing key, body) of every message published on this connection.
        self.published: list[tuple[int, str, bytes]] = []
        self.channels: dict[int, BrokerChannel] = {}
        #: (channel, delivery tag) of confirms held back while ``broker.hold_confirms``.
        self.held: list[tuple[int, int]] = []
        self.open = False
        self.ended = asyncio.get_running_loop().create_future()

    def names(self) -> list[str]:
        """The names of the methods the client sent after the handshake."""
        handshake = {"connection.start-ok", "connection.tune-ok", "connection.open"}
        return [m.NAME for _, m in self.methods if m.NAME not in handshake]

    def write(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def drop(self) -> None:
        """End the TCP connection abruptly (no Connection.Close)."""
        self.writer.transport.abort()

    def kill(
        self, code: int = spec.CONNECTION_FORCED, text: str = "CONNECTION_FORCED - test"
    ) -> None:
        """Connection.Close from the broker, as ``rabbitmqctl close_connection`` sends."""
        self.write(self.frames.close(code, text))

    def release_confirms(self) -> None:
        held, self.held = self.held, []
        for channel, tag in held:
            self.write(self.frames.ack(channel, tag))

    def deliver(self, channel: int, consumer_tag: str, delivery_tag: int, body: bytes) -> None:
        self.write(self.frames.deliver(channel, consumer_tag, delivery_tag, body))

    async def run(self) -> None:
        try:
            if self.behaviour == "drop":
                self.writer.transport.abort()
                return
            header = await self.reader.readexactly(8)
            assert header == spec.PROTOCOL_HEADER, header
            if self.behaviour == "silent":
                while await self.reader.read(65536):
                    pass
                return
            self.write(self.frames.start())
            async for channel, payload in self._frames():
                if isinstance(payload, spec.Method):
                    self.methods.append((channel, payload))
                    if not self._on_method(channel, payload):
                        return
                else:
                    self._on_content(channel, payload)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open = False
            self.writer.transport.abort()
            if not self.ended.done():
                self.ended.set_result(None)

    async def _frames(self) -> AsyncIterator[tuple[int, object]]:
        while True:
            head = await self.reader.readexactly(7)
            _, channel, size = _frame_header.unpack(head)
            rest = await self.reader.readexactly(size + 1)
            (frame,) = parse_client_frames(head + rest)
            yield channel, frame.payload

    def _on_method(self, channel: int, method: spec.Method) -> bool:
        """Answer one method; False ends the connection."""
        frames = self.frames
        if isinstance(method, spec.ConnectionStartOk):
            if self.behaviour == "deny":
                self.write(
                    frames.close(
                        spec.ACCESS_REFUSED,
                        "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN",
                    )
                )
            else:
                self.write(frames.tune(heartbeat=0))
        elif isinstance(method, spec.ConnectionOpen):
            self.open = True
            self.write(frames.open_ok())
        elif isinstance(method, spec.ConnectionClose):
            self.write(frames.close_ok())
            return False
        elif isinstance(method, spec.ConnectionCloseOk):
            return False
        elif isinstance(method, spec.ChannelOpen):
            self.channels[channel] = BrokerChannel()
            self.write(frames.channel_open_ok(channel))
        elif isinstance(method, spec.ChannelClose):
            self.channels.pop(channel, None)
            self.write(frames.channel_close_ok(channel))
        elif isinstance(method, spec.QueueDeclare):
            name = method.queue or f"amq.gen-{next(self.broker.queue_numbers)}"
            self.write(frames.queue_declare_ok(channel, name))
        elif isinstance(method, spec.ConfirmSelect):
            self.channels[channel].confirm = True
            self.write(frames.confirm_select_ok(channel))
        elif isinstance(method, spec.BasicConsume):
            tag = method.consumer_tag or f"amq.ctag-{next(self.broker.queue_numbers)}"
            self.write(frames.consume_ok(channel, tag))
        elif isinstance(method, spec.BasicPublish):
            self.channels[channel].publishing = (method, -1, bytearray())
        elif method.REPLIES and not getattr(method, "nowait", False):
            self.write(frames.reply(channel, method))
        return True

    def _on_content(self, channel: int, payload: object) -> None:
        state = self.channels[channel]
        assert state.publishing is not None
        method, size, body = state.publishing
        if isinstance(payload, tuple):  # the content header: (body size, properties)
            size = payload[0]
        else:
            assert isinstance(payload, bytes)
            body += payload
        state.publishing = (method, size, body)
        if size < 0 or len(body) < size:
            return
        state.publishing = None
        self.published.append((channel, method.routing_key, bytes(body)))
        self.broker.published.append(bytes(body))
        if state.confirm:
            tag, state.next_tag = state.next_tag, state.next_tag + 1
            if self.broker.hold_confirms:
                self.held.append((channel, tag))
            else:
                self.write(self.frames.ack(channel, tag))


class ScriptedBroker:
    """A local server whose ``n``-th connection behaves as ``plan[n]`` (then ``default``)."""

    def __init__(self, plan: Iterable[str] = (), default: str = "serve") -> None:
        self.plan = list(plan)
        self.default = default
        self.sessions: list[BrokerSession] = []
        #: loop.time() of each accepted connection.
        self.accepted_at: list[float] = []
        self.published: list[bytes] = []
        self.hold_confirms = False
        self.queue_numbers = itertools.count(1)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> ScriptedBroker:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, query: str = "") -> str:
        url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F?heartbeat=0"
        return f"{url}&{query}" if query else url

    @property
    def accepted(self) -> int:
        return len(self.accepted_at)

    @property
    def current(self) -> BrokerSession:
        """The latest connection that completed the handshake."""
        return [s for s in self.sessions if s.behaviour == "serve" and s.open][-1]

    def served(self) -> list[BrokerSession]:
        return [s for s in self.sessions if s.behaviour == "serve" and s.methods]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.accepted_at)
        self.accepted_at.append(asyncio.get_running_loop().time())
        behaviour = self.plan[index] if index < len(self.plan) else self.default
        session = BrokerSession(self, index, behaviour, reader, writer)
        self.sessions.append(session)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            await session.run()
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]

    async def close(self) -> None:
        for session in self.sessions:
            session.writer.transport.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest_asyncio.fixture
async def brokers() -> AsyncIterator[Callable[..., Awaitable[ScriptedBroker]]]:
    made: list[ScriptedBroker] = []

    async def make(plan: Iterable[str] = (), default: str = "serve") -> ScriptedBroker:
        broker = await ScriptedBroker(plan, default).start()
        made.append(broker)
        return broker

    yield make
    for broker in made:
        await broker.close()


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


Brokers = Callable[..., Awaitable[ScriptedBroker]]
Clients = Callable[..., AMQPClient]


# -- connecting, retrying, backing off ----------------------------------------------------------------


async def test_channel_before_start_is_a_state_error(clients: Clients) -> None:
    client = clients("amqp://guest:guest@127.0.0.1:1/")
    with pytest.raises(ConnectionWrongStateError):
        await client.channel()
    assert not client.is_connected and client.connections == 0


async def test_the_default_retry_policy_retries_within_a_second_then_backs_off() -> None:
    client = AMQPClient("amqp://guest:guest@127.0.0.1:1/")
    delays = [client.retry_policy(attempt) for attempt in range(1, 30)]
    assert 0 < delays[0] < 1.0
    assert delays[-1] >= 29.0 and max(delays) <= 30.25
    assert delays[6] > delays[0]


async def test_start_returns_after_a_failed_first_attempt_then_retries_per_policy(
    brokers: Brokers, clients: Clients
) -> None:
    broker = await brokers(default="drop")
    delays = {1: 0.05, 2: 0.15, 3: 0.25}
    policy = RecordingPolicy(lambda attempt: delays.get(attempt, 0.3))
    client = clients(broker.url(), retry_policy=policy)
    loop = asyncio.get_running_loop()

    started = loop.time()
    await within(5, client.start(), "start")
    assert loop.time() - started < 1.0
    assert not client.is_connected and client.connection is None and client.connections == 0
    assert client.failure is None
    assert broker.accepted == 1 and policy.attempts == [1]

    waiting = asyncio.ensure_future(client.when_connected())
    await eventually(lambda: broker.accepted >= 4, 5, "three retries")
    assert not waiting.done()
    # Each failed attempt in a row asks the policy about the next number, and the next
    # attempt comes that many seconds later.
    assert policy.attempts[:3] == [1, 2, 3]
    gaps = [b - a for a, b in itertools.pairwise(broker.accepted_at[:4])]
    for gap, attempt in zip(gaps, (1, 2, 3)):
        assert delays[attempt] - 0.02 <= gap <= delays[attempt] + 0.5, (attempt, gaps)

    # The broker comes back: the waiter gets the connection and the backoff stops.
    broker.default = "serve"
    conn = await within(5, waiting, "when_connected")
    assert isinstance(conn, Connection) and conn.is_open
    assert client.is_connected and client.connection is conn and client.connections == 1
    assert await within(1, client.when_connected(), "when_connected") is conn
    asked = len(policy.attempts)
    await asyncio.sleep(0.2)
    assert len(policy.attempts) == asked and broker.accepted == asked + 1


async def test_a_silent_peer_is_a_failed_attempt_bounded_by_stack_timeout(
    brokers: Brokers, clients: Clients
) -> None:
    broker = await brokers(default="silent")
    policy = RecordingPolicy(lambda attempt: 0.05)
    client = clients(broker.url("stack_timeout=0.3"), retry_policy=policy)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await within(5, client.start(), "start")
    elapsed = loop.time() - started
    assert 0.28 <= elapsed < 1.5, elapsed
    assert not client.is_connected and policy.attempts == [1]
    # The attempt's socket was closed: the peer saw EOF and ended.
    await within(2, broker.sessions[0].ended, "first attempt closed")
    await eventually(lambda: policy.attempts[:3] == [1, 2, 3], 5, "retries")
    broker.default = "serve"
    await within(5, client.when_connected(), "when_connected")
    assert client.connections == 1


async def test_a_dropped_connection_is_reconnected_and_the_hooks_run(
    brokers: Brokers, clients: Clients
) -> None:
    broker = await brokers(["serve", "drop", "drop"])
    policy = RecordingPolicy(lambda attempt: 0.02)
    client = clients(broker.url(), retry_policy=policy)
    connected: list[Connection] = []
    lost: list[BaseException | None] = []
    client.on_connected.append(connected.append)
    client.on_disconnected.append(lost.append)
    await within(5, client.start(), "start")
    first = await within(1, client.when_connected(), "when_connected")
    assert connected == [first] and policy.attempts == []

    broker.current.kill()
    await eventually(lambda: len(connected) == 2, 5, "reconnect")
    assert isinstance(lost[0], ConnectionClosedByBroker) and lost[0].reply_code == 320
    # Losing a connection is failure 1; the two dropped attempts are failures 2 and 3.
    assert policy.attempts == [1, 2, 3]
    assert client.connections == 2 and broker.accepted == 4
    second = await within(1, client.when_connected(), "when_connected")
    assert second is connected[1] and second is not first and not first.is_open

    broker.current.drop()
    await eventually(lambda: len(connected) == 3, 5, "reconnect")
    assert isinstance(lost[1], StreamLostError)
    assert policy.attempts == [1, 2, 3, 1]


async def test_stop_closes_politely_and_stops_reconnecting(
    brokers: Brokers, clients: Clients
) -> None:
    broker = await brokers()
    policy = RecordingPolicy()
    client = clients(broker.url(), retry_policy=policy)
    lost: list[BaseException | None] = []
    client.on_disconnected.append(lost.append)
    await within(5, client.start(), "start")
    session = broker.current
    await within(5, client.stop(), "stop")
    assert session.names()[-1] == "connection.close"
    await within(2, session.ended, "the broker side closed")
    assert not client.is_connected and lost == [None]
    await asyncio.sleep(0.2)
    assert broker.accepted == 1 and policy.attempts == []


async def test_stop_while_backing_off(brokers: Brokers, clients: Clients) -> None:
    broker = await brokers(default="drop")
    client = clients(broker.url(), retry_policy=RecordingPolicy(lambda attempt: 30.0))
    await within(5, client.start(), "start")
    assert broker.accepted == 1
    await within(2, client.stop(), "stop")
    await asyncio.sleep(0.1)
    assert broker.accepted == 1


# -- refused logins --------------------------------------------------------------------------------


async def test_three_refused_logins_give_up_and_say_why(
    brokers: Brokers, clients: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    broker = await brokers(default="deny")
    policy = RecordingPolicy(lambda attempt: 0.05)
    client = clients(broker.url(), retry_policy=policy, publish_timeout=30)
    with caplog.at_level(logging.INFO, logger="txamqp091.tornado"):
        await within(5, client.start(), "start")
        # start() returned after the first refusal: not given up yet.
        assert broker.accepted == 1 and client.failure is None and not client.is_connected
        channel = await within(1, client.channel(), "channel")
        waiting = asyncio.ensure_future(client.when_connected())
        parked = channel.basic_publish("", "q", b"never sent")

        with pytest.raises(AMQPConnectionError) as info:
            await within(5, waiting, "when_connected")
        assert "gave up" in str(info.value)

    assert broker.accepted == 3
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
    assert broker.accepted == 3  # no more attempts
    await within(5, client.stop(), "stop after giving up")


async def test_a_success_resets_the_refused_login_count(brokers: Brokers, clients: Clients) -> None:
    broker = await brokers(["deny", "deny", "serve", "deny", "deny", "serve"])
    policy = RecordingPolicy(lambda attempt: 0.02)
    client = clients(broker.url(), retry_policy=policy)
    await within(5, client.start(), "start")
    await within(5, client.when_connected(), "when_connected")
    assert client.connections == 1 and broker.accepted == 3
    broker.current.kill()
    await eventually(lambda: client.connections == 2, 5, "second connection")
    assert client.failure is None and broker.accepted == 6
    assert policy.attempts == [1, 2, 1, 2, 3]


# -- recovery against the scripted broker -------------------------------------------------------------


async def test_channel_is_replayed_in_order_and_an_unconfirmed_publish_is_sent_again(
    brokers: Brokers, clients: Clients
) -> None:
    broker = await brokers(["serve", "drop", "serve"])
    client = clients(broker.url(), retry_policy=RecordingPolicy(lambda attempt: 0.02))
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
    await within(2, ch.basic_qos(prefetch_count=7), "basic_qos")
    await within(2, ch.confirm_delivery(), "confirm_delivery")
    consumer = await within(2, ch.basic_consume(original, consumer_tag="ctag-1"), "consume")
    assert isinstance(consumer, RecoveringConsumer)
    await within(2, ch.basic_publish("", original, b"confirmed"), "publish")
    first = broker.current
    assert first.names() == [
        "channel.open",
        "exchange.declare",
        "queue.declare",
        "queue.bind",
        "basic.qos",
        "confirm.select",
        "basic.consume",
        "basic.publish",
    ]
    first.deliver(1, "ctag-1", 1, b"delivered before")
    assert (await within(2, consumer.get(), "get")).body == b"delivered before"

    # The broker holds the next confirm back, then the connection dies under it.
    broker.hold_confirms = True
    unconfirmed = ch.basic_publish("", original, b"unconfirmed")
    await eventually(lambda: len(first.held) == 1, 2, "the publish reached the broker")
    broker.hold_confirms = False
    first.kill()
    await eventually(lambda: not client.is_connected, 2, "disconnect")
    during = ch.basic_publish("", original, b"during the outage")
    await within(5, unconfirmed, "the unconfirmed publish, confirmed on the next connection")
    await within(5, during, "the publish made during the outage")
    assert recovered == [ch, ch] and client.connections == 2

    second = broker.current
    assert second is not first
    renamed = "amq.gen-2"
    assert [m.NAME for _, m in second.methods[3:9]] == [
        "channel.open",
        "exchange.declare",
        "queue.declare",
        "queue.bind",
        "basic.qos",
        "confirm.select",
    ]
    methods = [m for _, m in second.methods]
    bind = next(m for m in methods if isinstance(m, spec.QueueBind))
    assert (bind.queue, bind.exchange, bind.routing_key) == (renamed, "x", renamed)
    qos = next(m for m in methods if isinstance(m, spec.BasicQos))
    assert qos.prefetch_count == 7
    consume = next(m for m in methods if isinstance(m, spec.BasicConsume))
    assert (consume.queue, consume.consumer_tag) == (renamed, "ctag-1")
    # The resent publish first, then the one made during the outage, to the new name.
    assert second.published == [
        (1, renamed, b"unconfirmed"),
        (1, renamed, b"during the outage"),
    ]
    assert broker.published == [b"confirmed", b"unconfirmed", b"unconfirmed", b"during the outage"]
    # The same consumer object delivers on the new connection.
    second.deliver(1, "ctag-1", 1, b"delivered after")
    message = await within(2, consumer.get(), "get")
    assert message.body == b"delivered after" and consumer.is_active
    passive = await within(2, ch.queue_declare(original, passive=True), "passive declare")
    assert passive.queue == renamed


async def test_publish_during_an_outage_times_out_and_is_not_sent_later(
    brokers: Brokers, clients: Clients
) -> None:
    broker = await brokers(["serve"], default="drop")
    client = clients(
        broker.url(), retry_policy=RecordingPolicy(lambda attempt: 0.05), publish_timeout=0.4
    )
    await within(5, client.start(), "start")
    ch = await within(1, client.channel(), "channel")
    await within(2, ch.confirm_delivery(), "confirm_delivery")
    broker.current.kill()
    await eventually(lambda: not client.is_connected, 2, "disconnect")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(PublishTimeout):
        await within(5, ch.basic_publish("", "q", b"too late"), "publish")
    assert 0.35 <= loop.time() - started <= 1.5
    broker.default = "serve"
    await within(5, client.when_connected(), "when_connected")
    await within(2, ch.basic_publish("", "q", b"next"), "publish")
    assert broker.current.published == [(1, "q", b"next")]


# -- regressions: bugs these tests found, now fixed ------------------------------------------------


async def test_hooks_added_after_start_are_called(brokers: Brokers, clients: Clients) -> None:
    """``on_connected``, ``on_disconnected`` and ``on_recovered`` are plain lists: a hook
    appended after ``start()`` runs from the next event on, as with Twisted's service."""
    broker = await brokers()
    client = clients(broker.url(), retry_policy=RecordingPolicy())
    await within(5, client.start(), "start")
    ch = await within(1, client.channel(), "channel")
    await within(2, ch.queue_declare("q"), "declare")
    events: list[str] = []
    client.on_connected.append(lambda conn: events.append("connected"))
    client.on_disconnected.append(lambda why: events.append("disconnected"))
    client.on_recovered.append(lambda channel: events.append("recovered"))
    broker.current.kill()
    await eventually(lambda: client.connections == 2, 5, "reconnect")
    await asyncio.sleep(0.2)
    assert events == ["disconnected", "connected", "recovered"]


async def test_operations_issued_before_the_channel_opens_are_sent_once(
    brokers: Brokers, clients: Clients
) -> None:
    broker = await brokers()
    client = clients(broker.url(), retry_policy=RecordingPolicy())
    await within(5, client.start(), "start")
    ch = await within(1, client.channel(), "channel")  # its incarnation is still opening
    await within(2, ch.exchange_declare("x", "fanout"), "exchange_declare")
    await within(2, ch.confirm_delivery(), "confirm_delivery")
    assert broker.current.names() == ["channel.open", "exchange.declare", "confirm.select"]


@pytest.mark.parametrize("when", ["before the channel opens", "during an outage"])
async def test_consume_issued_while_no_incarnation_is_open_subscribes_once(
    brokers: Brokers, clients: Clients, when: str
) -> None:
    broker = await brokers(["serve", "drop"])
    client = clients(broker.url(), retry_policy=RecordingPolicy(lambda attempt: 0.1))
    await within(5, client.start(), "start")
    ch = await within(1, client.channel(), "channel")
    if when == "during an outage":
        await within(2, ch.queue_declare("q"), "declare")
        broker.current.kill()
        await eventually(lambda: not client.is_connected, 2, "disconnect")
    consumer = await within(5, ch.basic_consume("q", consumer_tag="ctag-1"), "basic_consume")
    assert consumer.is_active
    assert broker.current.names().count("basic.consume") == 1


async def test_start_after_stop_reconnects_and_the_channels_recover(
    brokers: Brokers, clients: Clients
) -> None:
    broker = await brokers()
    client = clients(broker.url(), retry_policy=RecordingPolicy(), publish_timeout=1.0)
    await within(5, client.start(), "start")
    ch = await within(1, client.channel(), "channel")
    await within(2, ch.queue_declare("q"), "declare")
    await within(5, client.stop(), "stop")
    await within(5, client.start(), "start again")
    assert client.is_connected and client.connections == 2
    await within(3, ch.basic_publish("", "q", b"after the restart"), "publish")
    for _ in range(100):  # outside confirm mode the publish completes once it is written
        if broker.current.published:
            break
        await asyncio.sleep(0.01)
    assert broker.current.published == [(1, "q", b"after the restart")]


async def test_when_connected_after_stop_fails_at_once(brokers: Brokers, clients: Clients) -> None:
    broker = await brokers()
    client = clients(broker.url(), retry_policy=RecordingPolicy())
    await within(5, client.start(), "start")
    await within(5, client.stop(), "stop")
    with pytest.raises(AMQPConnectionError):
        await within(1, client.when_connected(), "when_connected after stop")
