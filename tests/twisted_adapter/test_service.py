"""``AMQPClientService`` on a ``task.Clock`` with scripted endpoints: no broker, no network.

Each connection attempt of the service goes to a :class:`ScriptedEndpoint`
(in place of the TCP endpoint ``endpoint_for`` would build), which plays the
next scenario: refuse the TCP connect, or connect the client through an
in-memory :class:`~txamqp091.twisted.testing.Pump` to a broker side that
behaves well (:class:`~txamqp091.twisted.testing.FakeBroker`) or badly (drops
mid-handshake, never answers, refuses the login). Time only moves when a test
moves the clock, so backoff delays are checked exactly.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from zope.interface import implementer

from tests.twisted_adapter.support import assert_no_result, failure_of, result_of
from txamqp091.core import spec
from txamqp091.core.testing import ServerFrames, parse_client_frames
from txamqp091.exceptions import (
    AMQPConnectionError,
    ChannelClosedByBroker,
    ConnectionBlockedTimeout,
    ConnectionClosedByBroker,
    ProbableAuthenticationError,
    PublishTimeout,
    StreamLostError,
)
from txamqp091.params import ConnectionParameters
from txamqp091.twisted import AMQPClientService, Connection
from txamqp091.twisted import service as service_module
from txamqp091.twisted.testing import BrokerConnection, FakeBroker, Pump

ADDRESS = IPv4Address("TCP", "127.0.0.1", 5672)

#: A scenario builds the broker side of one connection; REFUSE fails the TCP connect.
Scenario = Callable[[], Protocol] | None
REFUSE: Scenario = None


# -- broker sides that misbehave ----------------------------------------------------------------


class DropAfterHeader(Protocol):
    """Reads the protocol header and hangs up (the client waits for Connection.Start)."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.loseConnection()  # type: ignore[union-attr]


class DropMidStart(Protocol):
    """Sends half of Connection.Start, then hangs up."""

    def dataReceived(self, data: bytes) -> None:
        start = ServerFrames().start()
        self.transport.write(start[: len(start) // 2])  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]


class Silent(Protocol):
    """Accepts the TCP connection and never says a word."""


class CloseInsteadOfOpenOk(Protocol):
    """Goes through Start and Tune, then answers Connection.Open with Connection.Close 541."""

    def __init__(self) -> None:
        self.frames = ServerFrames()
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        if data.startswith(spec.PROTOCOL_HEADER):
            data = data[len(spec.PROTOCOL_HEADER) :]
            self.transport.write(self.frames.start())  # type: ignore[union-attr]
        for frame in parse_client_frames(data):
            method = frame.payload
            if isinstance(method, spec.ConnectionStartOk):
                self.transport.write(self.frames.tune(heartbeat=0))  # type: ignore[union-attr]
            elif isinstance(method, spec.ConnectionOpen):
                self.transport.write(  # type: ignore[union-attr]
                    self.frames.close(spec.INTERNAL_ERROR, "INTERNAL_ERROR - not today")
                )
            elif isinstance(method, spec.ConnectionCloseOk):
                self.transport.loseConnection()  # type: ignore[union-attr]


@implementer(IStreamClientEndpoint)
class ScriptedEndpoint:
    """Plays ``script(n)`` for the n-th connection attempt (0-based)."""

    def __init__(self, clock: Clock, script: Callable[[int], Scenario]) -> None:
        self.clock = clock
        self.script = script
        #: Clock time of each attempt.
        self.attempts: list[float] = []
        #: One pump per attempt that got past TCP, and the broker side it talks to.
        self.pumps: list[Pump] = []
        self.servers: list[Protocol] = []

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[Any]:
        n = len(self.attempts)
        self.attempts.append(self.clock.seconds())
        scenario = self.script(n)
        if scenario is None:
            return fail(ConnectionRefusedError("scripted refusal"))
        protocol = protocolFactory.buildProtocol(ADDRESS)
        server = scenario()
        pump = Pump(protocol, server, self.clock)  # type: ignore[arg-type]
        self.pumps.append(pump)
        self.servers.append(server)
        pump.start()
        return succeed(protocol)


def run_until(clock: Clock, when: float, max_steps: int = 10_000) -> None:
    """Move the clock to ``when``, stopping at every call due on the way (pumps flush at 0)."""
    for _ in range(max_steps):
        clock.advance(0)
        due = [c.getTime() for c in clock.getDelayedCalls() if c.active()]
        upcoming = [t for t in due if t <= when]
        if not upcoming:
            break
        clock.advance(max(0.0, min(upcoming) - clock.seconds()))
    else:
        raise AssertionError(f"still busy after {max_steps} steps")
    clock.advance(max(0.0, when - clock.seconds()))
    clock.advance(0)


def make_service(
    monkeypatch: pytest.MonkeyPatch,
    script: Callable[[int], Scenario],
    retry_policy: Callable[[int], float] | None = None,
    publish_timeout: float | None = 30.0,
    **params: Any,
) -> tuple[AMQPClientService, ScriptedEndpoint, Clock]:
    clock = Clock()
    endpoint = ScriptedEndpoint(clock, script)
    monkeypatch.setattr(
        service_module, "endpoint_for", lambda reactor, params, tls_options=None: endpoint
    )
    service = AMQPClientService(
        clock,
        ConnectionParameters(host="127.0.0.1", **params),
        retry_policy=retry_policy or (lambda attempt: 1.0),
        publish_timeout=publish_timeout,
    )
    return service, endpoint, clock


def stop(service: AMQPClientService, clock: Clock) -> None:
    if service.running:
        d = service.stopService()
        run_until(clock, clock.seconds() + 30)
        result_of(d)


@implementer(ILogObserver)
class SevereLog:
    """Log events at error level or above, failures, and anything mentioning NoTransition."""

    def __init__(self) -> None:
        self.events: list[LogEvent] = []

    def __call__(self, event: LogEvent) -> None:
        level = event.get("log_level")
        severe = level is not None and level >= LogLevel.error
        text = formatEvent(event)
        if (
            severe
            or event.get("log_failure") is not None
            or event.get("isError")
            or "NoTransition" in text
        ):
            self.events.append(event)

    def texts(self) -> list[str]:
        out = []
        for event in self.events:
            failure = event.get("log_failure")
            detail = failure.getTraceback() if isinstance(failure, Failure) else ""
            out.append(formatEvent(event) + "\n" + detail)
        return out


@pytest.fixture
def severe_log() -> Iterator[SevereLog]:
    observer = SevereLog()
    globalLogPublisher.addObserver(observer)
    try:
        yield observer
    finally:
        gc.collect()  # a Deferred that dies holding a failure logs it now
        globalLogPublisher.removeObserver(observer)


def fake_broker(broker: FakeBroker) -> Scenario:
    return lambda: broker.buildProtocol(ADDRESS)


# -- tests --------------------------------------------------------------------------------------


def test_backoff_schedule_follows_retry_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    broker = FakeBroker()
    delays = {1: 0.5, 2: 1.0, 3: 2.0, 4: 4.0, 5: 8.0}
    asked: list[int] = []

    def policy(attempt: int) -> float:
        asked.append(attempt)
        return delays[attempt]

    service, endpoint, clock = make_service(
        monkeypatch, lambda n: REFUSE if n < 5 else fake_broker(broker), retry_policy=policy
    )
    service.startService()
    run_until(clock, 100)
    # Attempt k+1 comes policy(k) seconds after attempt k failed.
    assert endpoint.attempts == pytest.approx([0.0, 0.5, 1.5, 3.5, 7.5, 15.5])
    assert asked == [1, 2, 3, 4, 5]
    assert service.connections == 1 and service.connection is not None

    # After a lost connection the schedule starts over at policy(1).
    lost_at = clock.seconds()
    endpoint.pumps[-1].disconnect()
    run_until(clock, lost_at + 100)
    assert asked == [1, 2, 3, 4, 5, 1]
    assert endpoint.attempts[-1] == pytest.approx(lost_at + 0.5)
    assert service.connections == 2
    stop(service, clock)


def test_handshake_timeout_is_a_failed_attempt_and_aborts_the_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = FakeBroker()
    service, endpoint, clock = make_service(
        monkeypatch,
        lambda n: Silent if n == 0 else fake_broker(broker),
        retry_policy=lambda attempt: 3.0,
        stack_timeout=2.0,
    )
    connected = service.whenConnected()
    service.startService()
    run_until(clock, 1.9)
    assert_no_result(connected)
    assert not endpoint.pumps[0].client_transport.aborted

    run_until(clock, 2.0)  # stack_timeout: the half-open connection is aborted
    assert endpoint.pumps[0].client_transport.aborted
    assert endpoint.pumps[0].disconnected
    assert len(endpoint.attempts) == 1

    run_until(clock, 4.9)  # backing off: policy(1) = 3 s after the failure
    assert len(endpoint.attempts) == 1
    run_until(clock, 5.0)
    assert endpoint.attempts == pytest.approx([0.0, 5.0])
    assert isinstance(result_of(connected), Connection)
    stop(service, clock)


def test_broker_refusing_open_is_a_failed_attempt_and_closes_the_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = FakeBroker()
    failures: list[BaseException] = []
    service, endpoint, clock = make_service(
        monkeypatch,
        lambda n: CloseInsteadOfOpenOk if n < 2 else fake_broker(broker),
        retry_policy=lambda attempt: 2.0 * attempt,
    )
    service.on_attempt_failed.append(lambda params, error: failures.append(error))
    service.startService()
    run_until(clock, 100)
    assert endpoint.attempts == pytest.approx([0.0, 2.0, 6.0])
    assert [type(e) for e in failures] == [ConnectionClosedByBroker, ConnectionClosedByBroker]
    for pump in endpoint.pumps[:2]:
        # The client answered the broker's Close with Close-Ok, then closed the transport
        # itself (an abort would have discarded the Close-Ok).
        assert not pump.client_transport.aborted
        assert pump.disconnected
    assert service.connections == 1 and service.failure is None
    stop(service, clock)


def test_twenty_drops_mid_handshake_log_no_error(
    monkeypatch: pytest.MonkeyPatch, severe_log: SevereLog
) -> None:
    broker = FakeBroker()
    drops = 20

    def script(n: int) -> Scenario:
        if n < drops:
            return DropAfterHeader if n % 2 == 0 else DropMidStart
        return fake_broker(broker)

    service, endpoint, clock = make_service(monkeypatch, script, retry_policy=lambda a: 0.25)
    connected = service.whenConnected()
    service.startService()
    run_until(clock, 60)

    conn = result_of(connected)
    assert isinstance(conn, Connection) and conn.is_open
    assert len(endpoint.attempts) == drops + 1
    assert all(p.disconnected for p in endpoint.pumps[:drops])
    assert service.failure is None and service.running
    stop(service, clock)
    gc.collect()
    assert severe_log.texts() == []


def test_dropped_mid_handshake_attempts_fail_with_stream_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = FakeBroker()
    errors: list[BaseException] = []
    service, endpoint, clock = make_service(
        monkeypatch, lambda n: DropMidStart if n < 3 else fake_broker(broker)
    )
    service.on_attempt_failed.append(lambda params, error: errors.append(error))
    service.startService()
    run_until(clock, 30)
    assert [type(e) for e in errors] == [StreamLostError] * 3
    assert service.connections == 1
    stop(service, clock)


def test_three_refused_logins_stop_the_service_and_say_why(
    monkeypatch: pytest.MonkeyPatch, logged_failures: Any
) -> None:
    broker = FakeBroker(users={"guest": "not-guest"})
    service, endpoint, clock = make_service(
        monkeypatch, lambda n: fake_broker(broker), retry_policy=lambda a: 1.0
    )
    connected = service.whenConnected()
    channel = result_of(service.channel())
    declared = channel.queue_declare("orders")
    service.startService()
    run_until(clock, 1000)

    assert len(endpoint.attempts) == service.max_auth_failures == 3
    assert not service.running
    assert isinstance(service.failure, ProbableAuthenticationError)
    assert "ACCESS_REFUSED" in str(service.failure)
    # Waiters learn it too: nothing will connect.
    assert failure_of(connected, ProbableAuthenticationError) is service.failure
    assert failure_of(service.whenConnected(), ProbableAuthenticationError) is service.failure
    failure_of(declared, AMQPConnectionError)
    assert not channel.is_open
    # No more attempts, however long we wait.
    run_until(clock, 10_000)
    assert len(endpoint.attempts) == 3
    # Each refusal is logged as an error, and giving up as critical: expected here.
    texts = [formatEvent(e) for e in logged_failures.events]
    assert len(texts) == 4, texts
    assert all("refused us" in t for t in texts[:3]) and "giving up" in texts[3]
    logged_failures.events.clear()


def test_a_success_resets_the_refused_login_count(
    monkeypatch: pytest.MonkeyPatch, logged_failures: Any
) -> None:
    good = FakeBroker()
    bad = FakeBroker(users={"guest": "not-guest"})
    # bad, bad, good, bad, bad, good: never three refusals in a row.
    order = [bad, bad, good, bad, bad, good]
    service, endpoint, clock = make_service(
        monkeypatch, lambda n: fake_broker(order[min(n, len(order) - 1)])
    )
    service.startService()
    run_until(clock, 10)
    assert service.connections == 1
    endpoint.pumps[-1].disconnect()
    run_until(clock, 30)
    assert service.running and service.failure is None
    assert service.connections == 2
    assert len(endpoint.attempts) == 6
    stop(service, clock)
    texts = [formatEvent(e) for e in logged_failures.events]
    assert [t.split(": (403)")[0] for t in texts] == [
        f"txamqp091: 127.0.0.1:5672 refused us ({n} in a row)" for n in (1, 2, 1, 2)
    ]
    logged_failures.events.clear()


def test_when_connected_fires_with_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    broker = FakeBroker()
    service, endpoint, clock = make_service(
        monkeypatch, lambda n: REFUSE if n == 0 else fake_broker(broker)
    )
    early = service.whenConnected()
    service.startService()
    run_until(clock, 0.5)
    assert_no_result(early)
    run_until(clock, 5)
    conn = result_of(early)
    assert isinstance(conn, Connection)
    assert conn is service.connection and conn.is_open
    # While connected: at once, the same object.
    assert result_of(service.whenConnected()) is conn
    # After a reconnect: the new connection.
    endpoint.pumps[-1].disconnect()
    later = service.whenConnected()
    assert_no_result(later)
    run_until(clock, 10)
    conn2 = result_of(later)
    assert isinstance(conn2, Connection) and conn2 is not conn and conn2.is_open
    stop(service, clock)


def test_stop_service_closes_politely_and_stops_reconnecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = FakeBroker()
    service, endpoint, clock = make_service(monkeypatch, lambda n: fake_broker(broker))
    disconnects: list[BaseException | None] = []
    service.on_disconnected.append(disconnects.append)
    service.startService()
    run_until(clock, 1)
    conn = result_of(service.whenConnected())

    stopped = service.stopService()
    run_until(clock, 2)
    assert result_of(stopped) is None
    server = endpoint.servers[0]
    assert isinstance(server, BrokerConnection)
    closes = [f.payload for f in server.received if isinstance(f.payload, spec.ConnectionClose)]
    assert [(c.reply_code, c.reply_text) for c in closes] == [(200, "Normal shutdown")]
    assert not endpoint.pumps[0].client_transport.aborted
    assert endpoint.pumps[0].disconnected
    assert result_of(conn.closed) is None  # a close we asked for
    assert disconnects == [None]
    assert not service.running
    run_until(clock, 1000)
    assert len(endpoint.attempts) == 1


def test_stop_service_while_backing_off(monkeypatch: pytest.MonkeyPatch) -> None:
    service, endpoint, clock = make_service(
        monkeypatch, lambda n: REFUSE, retry_policy=lambda a: 10.0
    )
    service.startService()
    run_until(clock, 1)
    stopped = service.stopService()
    run_until(clock, 2)
    assert result_of(stopped) is None
    run_until(clock, 100)
    assert len(endpoint.attempts) == 1


def test_surviving_channel_replays_topology_on_the_next_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = FakeBroker()
    service, endpoint, clock = make_service(
        monkeypatch, lambda n: fake_broker(broker), retry_policy=lambda a: 1.0
    )
    service.startService()
    run_until(clock, 1)
    channel = result_of(service.channel())
    deferreds = [
        channel.exchange_declare("logs", "fanout"),
        channel.exchange_declare("audit", "fanout"),
        channel.exchange_bind("audit", "logs"),
        channel.queue_declare("", exclusive=True),
        channel.basic_qos(prefetch_count=7),
        channel.confirm_delivery(),
    ]
    run_until(clock, 2)
    ok = result_of(deferreds[3])
    first_name = ok.queue
    bound = channel.queue_bind(first_name, "audit")
    consumer_d = channel.basic_consume(first_name)
    run_until(clock, 3)
    result_of(bound)
    consumer = result_of(consumer_d)

    endpoint.pumps[-1].disconnect()  # the exclusive queue goes with the connection
    assert first_name not in broker.queues
    run_until(clock, 10)
    assert service.connections == 2
    second = endpoint.servers[-1]
    assert isinstance(second, BrokerConnection)
    methods = [
        type(f.payload).__name__ for f in second.received if isinstance(f.payload, spec.Method)
    ]
    replayed = [m for m in methods if not m.startswith("Connection")]
    assert sorted(replayed) == sorted(
        [
            "ChannelOpen",
            "ExchangeDeclare",
            "ExchangeDeclare",
            "ExchangeBind",
            "QueueDeclare",
            "BasicQos",
            "ConfirmSelect",
            "QueueBind",
            "BasicConsume",
        ]
    )
    # In an order that respects what depends on what.
    assert replayed[0] == "ChannelOpen"
    assert replayed.index("ExchangeBind") > replayed.index("ExchangeDeclare")
    assert replayed.index("QueueDeclare") < replayed.index("QueueBind")
    assert replayed[-1] == "BasicConsume"
    new_names = [n for n in broker.queues if n != first_name]
    assert len(new_names) == 1 and new_names[0] != first_name

    # A publish through the exchange-to-exchange binding reaches the same consumer object.
    published = channel.basic_publish("logs", "", b"after the reconnect")
    run_until(clock, 11)
    assert result_of(published) is None
    message = result_of(consumer.get())
    assert message.body == b"after the reconnect"
    assert message.routing_key == ""
    stop(service, clock)


def test_publish_while_disconnected_waits_then_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    broker = FakeBroker()
    up = {"ok": True}
    service, endpoint, clock = make_service(
        monkeypatch,
        lambda n: fake_broker(broker) if up["ok"] else REFUSE,
        retry_policy=lambda a: 0.5,
        publish_timeout=5.0,
    )
    service.startService()
    run_until(clock, 1)
    channel = result_of(service.channel())
    declared = channel.queue_declare("jobs")
    run_until(clock, 2)
    result_of(declared)

    # An outage that ends within publish_timeout: the publish goes out on the next connection.
    up["ok"] = False
    endpoint.pumps[-1].disconnect()
    waiting = channel.basic_publish("", "jobs", b"one")
    run_until(clock, 4)
    assert_no_result(waiting)
    up["ok"] = True
    run_until(clock, 6)
    assert result_of(waiting) is None
    assert broker.bodies("jobs") == [b"one"]

    # An outage that outlasts it: PublishTimeout, after publish_timeout and not before.
    up["ok"] = False
    endpoint.pumps[-1].disconnect()
    started = clock.seconds()
    doomed = channel.basic_publish("", "jobs", b"two")
    run_until(clock, started + 4.9)
    assert_no_result(doomed)
    run_until(clock, started + 5.0)
    failure_of(doomed, PublishTimeout)
    up["ok"] = True
    run_until(clock, started + 10)
    assert broker.bodies("jobs") == [b"one"]
    stop(service, clock)


def test_blocked_connection_timeout_fails_the_publish_and_the_channel_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = FakeBroker()
    service, endpoint, clock = make_service(
        monkeypatch, lambda n: fake_broker(broker), blocked_connection_timeout=2.0
    )
    service.startService()
    run_until(clock, 1)
    channel = result_of(service.channel())
    declared = channel.queue_declare("jobs")
    run_until(clock, 2)
    result_of(declared)

    server = endpoint.servers[-1]
    assert isinstance(server, BrokerConnection)
    server.block()
    run_until(clock, 3)
    held = channel.basic_publish("", "jobs", b"held")
    run_until(clock, 4.9)
    assert_no_result(held)
    run_until(clock, 5.0)
    failure_of(held, ConnectionBlockedTimeout)
    # The timed-out publish is not kept for later: other operations still go through.
    purged = channel.queue_purge("jobs")
    run_until(clock, 6)
    assert result_of(purged).message_count == 0
    server.unblock()
    published = channel.basic_publish("", "jobs", b"after")
    run_until(clock, 7)
    assert result_of(published) is None
    assert broker.bodies("jobs") == [b"after"]
    assert service.connections == 1
    stop(service, clock)


@pytest.mark.parametrize("auto_delete", [False, True])
def test_channel_reopen_keeps_a_server_named_queue_that_still_exists(
    monkeypatch: pytest.MonkeyPatch, auto_delete: bool
) -> None:
    broker = FakeBroker()
    service, endpoint, clock = make_service(monkeypatch, lambda n: fake_broker(broker))
    service.startService()
    run_until(clock, 1)
    channel = result_of(service.channel())
    declared = channel.queue_declare("", exclusive=True, auto_delete=auto_delete)
    run_until(clock, 2)
    original = result_of(declared).queue
    consuming = channel.basic_consume(original)
    run_until(clock, 3)
    consumer = result_of(consuming)

    # A channel error (the broker closes the channel, the connection stays): the surviving
    # channel reopens on the same connection.
    server = endpoint.servers[-1]
    assert isinstance(server, BrokerConnection)
    server.close_channel(channel.channel_number, 404, "NOT_FOUND - no queue 'x' in vhost '/'")
    run_until(clock, 4)
    assert channel.is_open and service.connections == 1
    passive = channel.queue_declare(original, passive=True)
    run_until(clock, 5)
    current = result_of(passive).queue
    if auto_delete:
        # Its only consumer went with the channel, so the broker deleted it: declared anew.
        assert current != original and original not in broker.queues
    else:
        # Still there on the same connection: the same queue, not a second one.
        assert current == original
    assert list(broker.queues) == [current]
    published = channel.basic_publish("", original, b"after the reopen")
    run_until(clock, 6)
    result_of(published)
    assert result_of(consumer.get()).body == b"after the reopen"
    stop(service, clock)


def _confirming_channel(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[AMQPClientService, ScriptedEndpoint, Clock, Any, BrokerConnection]:
    broker = FakeBroker()
    broker.declare_exchange("ghost", "fanout")
    service, endpoint, clock = make_service(monkeypatch, lambda n: fake_broker(broker))
    service.startService()
    run_until(clock, 1)
    channel = result_of(service.channel())
    ready = [channel.queue_declare("jobs"), channel.confirm_delivery()]
    run_until(clock, 2)
    for d in ready:
        result_of(d)
    server = endpoint.servers[-1]
    assert isinstance(server, BrokerConnection)
    return service, endpoint, clock, channel, server


@pytest.mark.parametrize(
    ("reply_code", "reply_text", "failing"),
    [
        # The close names the exchange of one publish: that publish, and only it, fails.
        (404, "NOT_FOUND - no exchange 'ghost' in vhost '/'", [3]),
        # An acknowledgement's fault: none of the operations fails.
        (406, "PRECONDITION_FAILED - unknown delivery tag 42", []),
        # Nothing to go by: the first operation the close failed takes the blame.
        (406, "PRECONDITION_FAILED - something else", [0]),
    ],
)
def test_a_channel_error_fails_the_operation_that_caused_it(
    monkeypatch: pytest.MonkeyPatch, reply_code: int, reply_text: str, failing: list[int]
) -> None:
    service, endpoint, clock, channel, server = _confirming_channel(monkeypatch)
    server.hold_confirms = True
    publishes = [
        channel.basic_publish("ghost" if i == 3 else "", "" if i == 3 else "jobs", b"%d" % i)
        for i in range(8)
    ]
    run_until(clock, 3)
    for d in publishes:
        assert_no_result(d)
    server.hold_confirms = False
    server.close_channel(channel.channel_number, reply_code, reply_text)
    run_until(clock, 4)  # reopened on the same connection; the innocent ones sent again
    for i, d in enumerate(publishes):
        if i in failing:
            error = failure_of(d, ChannelClosedByBroker)
            assert isinstance(error, ChannelClosedByBroker) and error.reply_code == reply_code
        else:
            assert result_of(d) is None, i
    assert channel.is_open and service.connections == 1
    stop(service, clock)


def test_a_publish_confirmed_while_the_connection_closes_lets_the_next_one_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A confirm and Connection.Close in one read: the publish made from the confirm's
    callback (before the channel learns the connection is gone) waits for the next
    connection instead of failing with ChannelWrongStateError."""
    service, endpoint, clock, channel, server = _confirming_channel(monkeypatch)
    server.hold_confirms = True
    first = channel.basic_publish("", "jobs", b"first")
    run_until(clock, 3)
    follow_ups: list[Deferred[Any]] = []
    first.addCallback(lambda _: follow_ups.append(channel.basic_publish("", "jobs", b"second")))
    # The broker's ack and its Connection.Close reach the client in one read.
    server.hold_confirms = False
    pump = endpoint.pumps[-1]
    pump._flushing = True  # hold the bytes back: both writes go out together
    server.release_confirms()
    server.close()
    pump._flushing = False
    pump.flush()
    run_until(clock, 10)
    assert result_of(first) is None
    assert len(follow_ups) == 1
    assert result_of(follow_ups[0]) is None
    assert service.connections == 2
    stop(service, clock)


def test_ack_of_a_delivery_that_arrived_with_the_connection_close_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A delivery and Connection.Close in one read: acking the message from the delivery
    callback (before the channel learns the connection is gone) does nothing, raises
    nothing, and the broker redelivers the message on the next connection."""
    broker = FakeBroker()
    service, endpoint, clock = make_service(monkeypatch, lambda n: fake_broker(broker))
    service.startService()
    run_until(clock, 1)
    channel = result_of(service.channel())
    seen: list[tuple[bytes, bool]] = []

    def handle(message: Any) -> None:
        seen.append((message.body, message.redelivered))
        message.ack()

    ready = [channel.queue_declare("jobs"), channel.basic_consume("jobs", handle)]
    run_until(clock, 2)
    for d in ready:
        result_of(d)
    server = endpoint.servers[-1]
    assert isinstance(server, BrokerConnection)
    pump = endpoint.pumps[-1]
    pump._flushing = True  # the delivery and the close go out in one write
    broker.publish("", "jobs", b"job")
    server.close()
    pump._flushing = False
    pump.flush()
    run_until(clock, 10)
    assert service.connections == 2
    assert seen == [(b"job", False), (b"job", True)]
    assert broker.bodies("jobs") == []  # the second delivery was acked
    stop(service, clock)


def _methods(server: Protocol) -> list[str]:
    assert isinstance(server, BrokerConnection)
    return [
        type(f.payload).__name__
        for f in server.received
        if isinstance(f.payload, spec.Method) and not type(f.payload).__name__.startswith("Conn")
    ]


def test_operations_issued_before_the_first_channel_are_sent_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = FakeBroker()
    service, endpoint, clock = make_service(monkeypatch, lambda n: fake_broker(broker))
    channel = result_of(service.channel())  # usable at once: no connection yet
    issued = [
        channel.exchange_declare("x", "fanout"),
        channel.queue_declare("q"),
        channel.queue_bind("q", "x"),
        channel.confirm_delivery(),
        channel.basic_consume("q", consumer_tag="ctag-1"),
    ]
    service.startService()
    run_until(clock, 1)
    for d in issued:
        result_of(d)
    assert _methods(endpoint.servers[-1]) == [
        "ChannelOpen",
        "ExchangeDeclare",
        "QueueDeclare",
        "QueueBind",
        "ConfirmSelect",
        "BasicConsume",
    ]
    stop(service, clock)


def test_consume_issued_during_an_outage_subscribes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    broker = FakeBroker()
    service, endpoint, clock = make_service(monkeypatch, lambda n: fake_broker(broker))
    service.startService()
    run_until(clock, 1)
    channel = result_of(service.channel())
    declared = channel.queue_declare("q")
    run_until(clock, 2)
    result_of(declared)
    endpoint.pumps[-1].disconnect()
    consuming = channel.basic_consume("q", consumer_tag="ctag-1")
    run_until(clock, 10)
    consumer = result_of(consuming)
    assert consumer.is_active and service.connections == 2
    assert _methods(endpoint.servers[-1]) == ["ChannelOpen", "QueueDeclare", "BasicConsume"]
    broker.publish("", "q", b"hello")
    run_until(clock, 11)
    assert result_of(consumer.get()).body == b"hello"
    stop(service, clock)
