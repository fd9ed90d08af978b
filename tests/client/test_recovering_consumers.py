"""Surviving consumers against the fake broker: a broker-side cancel (told by default,
re-consumed with ``reconsume_on_cancel``, bounded), and stream consumers resuming after
the last offset they delivered. The shared layer on its own: what holds here holds on
both adapters, which only supply the runtime."""

from __future__ import annotations

from typing import Any

import pytest

from tests.client.support import Wire
from txamqp091.client.recovering import SurvivingChannel
from txamqp091.client.recovering_consumer import SurvivingConsumer
from txamqp091.client.session import RecoverySession
from txamqp091.core import spec
from txamqp091.core.testing import parse_client_methods
from txamqp091.exceptions import ConsumerCancelled
from txamqp091.message import Message
from txamqp091.testing import FakeBroker


class Setup:
    def __init__(self) -> None:
        self.broker = FakeBroker()
        self.wire = Wire(self.broker)
        self.wire.result(self.wire.client._opened)
        self.session: RecoverySession[Any] = RecoverySession(self.wire.runtime, None)
        self.session.attach(self.wire.client)
        self.channel: SurvivingChannel[Any] = self.wire.result(
            self.session.channel(SurvivingChannel)
        )
        self.cancelled: list[str] = []
        self.channel.add_on_cancel_callback(self.cancelled.append)
        self.received: list[Message] = []

    def consume(self, queue: str, **kwargs: Any) -> SurvivingConsumer[Any]:
        consumer: SurvivingConsumer[Any] = self.wire.result(
            self.channel.basic_consume(queue, self.take, **kwargs)
        )
        return consumer

    def take(self, message: Message) -> None:
        self.received.append(message)
        message.ack()

    def logged(self, level: str) -> list[str]:
        return [text for lvl, text in self.wire.runtime.logged if lvl == level]


@pytest.fixture
def setup() -> Setup:
    return Setup()


def test_a_broker_cancel_ends_the_consumer_and_tells_the_app(setup: Setup) -> None:
    setup.broker.declare_queue("q")
    consumer = setup.consume("q", consumer_tag="c1")
    setup.broker.delete_queue(setup.broker.queues["q"])
    setup.wire.flush()
    assert isinstance(consumer.ended, ConsumerCancelled)
    assert not consumer.ended.by_client
    assert setup.cancelled == ["c1"]
    assert any("cancelled consumer c1 on queue q" in line for line in setup.logged("warn"))
    assert isinstance(setup.wire.error(consumer.get()), ConsumerCancelled)


def test_reconsume_on_cancel_consumes_again_once_the_queue_is_back(setup: Setup) -> None:
    setup.channel.reconsume_on_cancel = True
    setup.broker.declare_queue("q")
    consumer = setup.consume("q", consumer_tag="c1")
    setup.broker.delete_queue(setup.broker.queues["q"])
    setup.wire.flush()
    assert consumer.ended is None and setup.cancelled == ["c1"]
    # First try after 1 s: the queue is still gone (a 404 that closes the channel, which
    # reopens); the next comes 2 s later.
    setup.wire.advance(1.0)
    assert consumer.ended is None
    assert setup.channel.is_open
    setup.broker.declare_queue("q")
    setup.wire.advance(1.9)
    assert not setup.broker.queues["q"].consumers
    setup.wire.advance(0.1)
    assert [c.tag for c in setup.broker.queues["q"].consumers] == ["c1"]
    setup.broker.publish("", "q", b"back")
    setup.wire.flush()
    assert [m.body for m in setup.received] == [b"back"]
    assert any("consumes from q again (attempt 2)" in line for line in setup.logged("info"))


def test_reconsume_gives_up_after_the_attempts(setup: Setup) -> None:
    channel = setup.channel
    channel.reconsume_on_cancel = True
    channel.reconsume_attempts, channel.reconsume_delay, channel.reconsume_max_delay = 3, 1, 2
    setup.broker.declare_queue("q")
    consumer = setup.consume("q", consumer_tag="c1")
    setup.broker.delete_queue(setup.broker.queues["q"])
    setup.wire.flush()
    setup.wire.advance(1 + 2 + 1.9)  # delays 1, 2, then 2 (the cap)
    assert consumer.ended is None
    setup.wire.advance(0.1)
    assert isinstance(consumer.ended, ConsumerCancelled)
    assert "failed 3 times" in str(consumer.ended)
    assert any("gave up" in line for line in setup.logged("error"))
    # The channel itself goes on.
    assert channel.is_open
    assert setup.wire.result(channel.queue_declare("other")).queue == "other"


def test_a_cancel_by_the_user_stops_a_pending_reconsume(setup: Setup) -> None:
    setup.channel.reconsume_on_cancel = True
    setup.broker.declare_queue("q")
    consumer = setup.consume("q", consumer_tag="c1")
    setup.broker.delete_queue(setup.broker.queues["q"])
    setup.wire.flush()
    setup.wire.result(consumer.cancel())
    setup.broker.declare_queue("q")
    setup.wire.advance(60)
    assert not setup.broker.queues["q"].consumers


def offsets(n: int, start: int = 0) -> list[spec.BasicProperties]:
    return [spec.BasicProperties(headers={"x-stream-offset": start + i}) for i in range(n)]


def test_a_stream_consumer_resumes_after_the_last_offset_it_delivered(setup: Setup) -> None:
    setup.broker.declare_queue("s")
    setup.wire.result(setup.channel.basic_qos(prefetch_count=10))  # streams need one
    consumer = setup.consume("s", consumer_tag="c1", arguments={"x-stream-offset": "first"})
    for i, properties in enumerate(offsets(5)):
        setup.broker.publish("", "s", b"%d" % i, properties)
    setup.wire.flush()
    assert [m.stream_offset for m in setup.received] == [0, 1, 2, 3, 4]
    assert consumer.next_stream_offset == 5

    setup.wire.disconnect()
    setup.session.detach()
    second = Wire(setup.broker)  # the next connection
    sent: list[bytes] = []
    receive = second.server.receive_data

    def record(data: bytes) -> None:
        sent.append(data)
        receive(data)

    second.server.receive_data = record  # type: ignore[method-assign]
    second.result(second.client._opened)
    setup.session.attach(second.client)
    second.flush()
    consumes = [
        m
        for _, m in parse_client_methods(b"".join(sent)[len(spec.PROTOCOL_HEADER) :])
        if isinstance(m, spec.BasicConsume)
    ]
    assert [c.arguments for c in consumes] == [{"x-stream-offset": 5}]
    assert consumes[0].consumer_tag == "c1"
    setup.broker.publish("", "s", b"5", offsets(1, start=5)[0])
    second.flush()
    assert [m.stream_offset for m in setup.received] == [0, 1, 2, 3, 4, 5]


def test_buffered_stream_messages_not_handed_out_are_read_again(setup: Setup) -> None:
    setup.broker.declare_queue("s")
    setup.wire.result(setup.channel.basic_qos(prefetch_count=10))
    consumer: SurvivingConsumer[Any] = setup.wire.result(
        setup.channel.basic_consume("s", arguments={"x-stream-offset": "next"})
    )
    for i, properties in enumerate(offsets(4, start=10)):
        setup.broker.publish("", "s", b"%d" % i, properties)
    setup.wire.flush()
    assert setup.wire.result(consumer.get()).stream_offset == 10
    assert consumer.next_stream_offset == 14  # all four arrived
    live = object()  # a new incarnation: the three still buffered are dead
    consumer._forget_dead_messages(live)
    assert consumer.next_stream_offset == 11
    assert consumer.subscribe_arguments == {"x-stream-offset": 11}


def test_message_delivery_count_and_stream_offset() -> None:
    def message(headers: dict[str, Any] | None) -> Message:
        return Message(1, "c", 1, False, "", "q", spec.BasicProperties(headers=headers), b"")

    assert message({"x-delivery-count": 2, "x-stream-offset": 7}).delivery_count == 2
    assert message({"x-stream-offset": 7}).stream_offset == 7
    assert message(None).delivery_count is None
    assert message({"x-delivery-count": "2"}).delivery_count is None
    assert message({}).stream_offset is None
    # Decoded headers hold wire-typed ints (Int64...); the properties give plain ints.
    from txamqp091.types import Int64

    count = message({"x-delivery-count": Int64(3)}).delivery_count
    assert count == 3 and type(count) is int and repr(count) == "3"


def test_run_in_thread_on_a_surviving_channel_acks_or_requeues(setup: Setup) -> None:
    setup.broker.declare_queue("q")
    handled: list[bytes] = []

    def handle(message: Message) -> None:
        handled.append(message.body)
        if message.body == b"bad" and not message.redelivered:
            raise ValueError("bad message")

    setup.wire.result(setup.channel.basic_consume("q", handle, run_in_thread=True))
    setup.broker.publish("", "q", b"good")
    setup.wire.flush()
    assert handled == [b"good"]
    assert setup.broker.messages("q") == []  # acked: gone from the queue
    setup.broker.publish("", "q", b"bad")
    setup.wire.flush()
    # Nacked with requeue: delivered again, handled again (and acked this time).
    assert handled == [b"good", b"bad", b"bad"]
    assert setup.broker.messages("q") == []
    assert any("threaded handler failed" in line for line in setup.logged("error"))


def test_run_in_thread_needs_a_callback_on_a_surviving_channel(setup: Setup) -> None:
    with pytest.raises(ValueError, match="run_in_thread"):
        setup.wire.result(setup.channel.basic_consume("q", run_in_thread=True))
