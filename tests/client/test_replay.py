"""A surviving channel's replay against the fake broker: pipelined (declarations and
bindings go out with ``nowait``, only the last request waits for its reply), the
recovered hook fired once that reply is in, and a refusal during the replay blamed on
the replay, not on the operations the user issued meanwhile."""

from __future__ import annotations

from typing import Any

from tests.client.support import Wire
from txamqp091.client.recovering import SurvivingChannel
from txamqp091.client.session import RecoverySession
from txamqp091.core import spec
from txamqp091.core.testing import parse_client_methods
from txamqp091.exceptions import ChannelClosedByBroker
from txamqp091.testing import FakeBroker


class Setup:
    def __init__(self) -> None:
        self.broker = FakeBroker()
        self.wire = Wire(self.broker)
        self.wire.result(self.wire.client._opened)
        self.session: RecoverySession[Any] = RecoverySession(self.wire.runtime, None)
        self.recovered: list[tuple[Any, int]] = []
        self.session.on_channel_recovered.append(
            lambda channel: self.recovered.append((channel, len(self.sent)))
        )
        self.session.attach(self.wire.client)
        self.channel: SurvivingChannel[Any] = self.wire.result(
            self.session.channel(SurvivingChannel)
        )
        self.sent: list[bytes] = []

    def reconnect(self, between: Any = None) -> Wire:
        """Cut the connection, and attach a new one whose client bytes are recorded;
        ``between(data)`` runs after the broker has read each chunk."""
        self.wire.disconnect()
        self.session.detach()
        second = Wire(self.broker)
        receive = second.server.receive_data

        def record(data: bytes) -> None:
            self.sent.append(data)
            receive(data)
            if between is not None:
                between(data)

        second.server.receive_data = record  # type: ignore[method-assign]
        second.result(second.client._opened)
        self.recovered.clear()
        self.sent.clear()
        self.session.attach(second.client)
        second.flush()
        self.wire = second
        return second

    def methods(self) -> list[spec.Method]:
        return [m for _, m in parse_client_methods(b"".join(self.sent))]


def test_the_replay_goes_out_with_nowait_and_only_the_last_request_waits() -> None:
    setup = Setup()
    ch, wire = setup.channel, setup.wire
    wire.result(ch.exchange_declare("x", "direct"))
    for i in range(3):
        wire.result(ch.queue_declare(f"q{i}"))
        wire.result(ch.queue_bind(f"q{i}", "x", f"k{i}"))
    wire.result(ch.basic_qos(prefetch_count=5))
    wire.result(ch.basic_consume("q0", lambda m: None, consumer_tag="c0"))
    wire.result(ch.basic_consume("q1", lambda m: None, consumer_tag="c1"))

    setup.reconnect()
    replayed = [m for m in setup.methods() if not isinstance(m, spec.ChannelOpen)]
    names = [type(m).__name__ for m in replayed]
    assert names == ["ExchangeDeclare"] + ["QueueDeclare", "QueueBind"] * 3 + [
        "BasicQos",
        "BasicConsume",
        "BasicConsume",
    ]
    pipelined = [m for m in replayed if isinstance(m, (spec.QueueDeclare, spec.QueueBind))]
    assert all(m.nowait for m in pipelined)
    assert [m.nowait for m in replayed if isinstance(m, spec.BasicConsume)] == [True, False]
    # Fired once, after everything the replay sent (the last consume's ok is its proof).
    assert [channel for channel, _ in setup.recovered] == [ch]
    assert {"q0", "q1", "q2"} <= set(setup.broker.vhost.queues)
    setup.broker.publish("x", "k2", b"routed")
    assert setup.broker.bodies("q2") == [b"routed"]


def test_without_consumers_the_last_declaration_is_the_one_that_waits() -> None:
    setup = Setup()
    ch, wire = setup.channel, setup.wire
    wire.result(ch.queue_declare("a"))
    wire.result(ch.queue_declare("b"))
    wire.result(ch.queue_bind("b", "amq.direct", "kb"))
    setup.reconnect()
    replayed = [m for m in setup.methods() if not isinstance(m, spec.ChannelOpen)]
    assert [(type(m).__name__, m.nowait) for m in replayed] == [  # type: ignore[attr-defined]
        ("QueueDeclare", True),
        ("QueueDeclare", True),
        ("QueueBind", False),
    ]
    assert len(setup.recovered) == 1


def test_a_refused_replay_record_fails_none_of_the_operations_issued_meanwhile() -> None:
    """A binding to an exchange someone deleted while we were away: the broker closes
    the channel on the replay, after which come the user's operations parked while
    disconnected. They are innocent, whatever the close text names, and go out again
    on the reopened channel (the exchange is back by then)."""
    setup = Setup()
    ch, wire = setup.channel, setup.wire
    setup.broker.declare_exchange("ext", "direct")
    wire.result(ch.queue_declare("q"))
    wire.result(ch.queue_bind("q", "ext", "k"))
    wire.result(ch.basic_consume("q", lambda m: None, consumer_tag="c"))
    setup.broker.vhost.delete_exchange("ext")

    wire.disconnect()
    setup.session.detach()
    declared = ch.queue_declare("other")  # parked: no connection
    published = ch.basic_publish("", "q", b"parked")

    def put_the_exchange_back(data: bytes) -> None:
        if b"ext" in data and "ext" not in setup.broker.vhost.exchanges:
            setup.broker.declare_exchange("ext", "direct")

    second = setup.reconnect(put_the_exchange_back)
    assert second.result(declared).queue == "other"
    assert second.result(published) is None
    closes = [m for m in setup.methods() if isinstance(m, spec.ChannelOpen)]
    assert len(closes) == 2  # refused once, reopened once
    assert [channel for channel, _ in setup.recovered] == [ch]
    warned = [text for level, text in setup.session.runtime.logged if level == "warn"]  # type: ignore[attr-defined]
    assert any("QueueBinding(queue='q', exchange='ext'" in text for text in warned), warned
    assert setup.broker.bodies("q") == [] or setup.broker.bodies("q") == [b"parked"]


def test_a_replay_refused_every_time_ends_the_channel_after_max_reopens() -> None:
    setup = Setup()
    ch, wire = setup.channel, setup.wire
    ch.max_reopens = 2
    setup.broker.declare_exchange("ext", "direct")
    wire.result(ch.queue_declare("q"))
    wire.result(ch.queue_bind("q", "ext", "k"))
    setup.broker.vhost.delete_exchange("ext")
    setup.reconnect()
    assert not ch.is_open
    error = setup.wire.result(ch.closed)
    assert isinstance(error, ChannelClosedByBroker) and error.reply_code == 404
    assert "'ext'" in error.reply_text
    assert setup.recovered == []
