"""Back-pressure both ways: the broker blocking us, the transport pushing back, slow consumers."""

from __future__ import annotations

from tests.twisted_adapter.support import (
    Wire,
    assert_no_result,
    failure_of,
    result_of,
)
from txamqp091.core import spec
from txamqp091.core.testing import parse_published_messages
from txamqp091.exceptions import ConnectionBlockedTimeout
from txamqp091.twisted.testing import FakeBroker, connected


def published_bodies(wire: Wire) -> list[bytes]:
    return [m.body for m in parse_published_messages(wire.raw())]


def test_blocked_connection_holds_publishes_until_unblocked() -> None:
    wire = Wire()
    conn = wire.open()
    ch = wire.channel(conn)
    wire.feed(wire.frames.blocked("low on memory"))
    assert conn.is_blocked
    held = [ch.basic_publish("", "q", b"m%d" % i) for i in range(3)]
    for d in held:
        assert_no_result(d)
    assert published_bodies(wire) == []

    wire.feed(wire.frames.unblocked())
    assert not conn.is_blocked
    assert [result_of(d) for d in held] == [None, None, None]
    assert published_bodies(wire) == [b"m0", b"m1", b"m2"]


def test_publishes_made_while_held_ones_wait_keep_their_order() -> None:
    wire = Wire()
    conn = wire.open()
    ch = wire.channel(conn)
    wire.feed(wire.frames.blocked())
    first = ch.basic_publish("", "q", b"first")
    wire.feed(wire.frames.unblocked())
    wire.feed(wire.frames.blocked())
    second = ch.basic_publish("", "q", b"second")
    result_of(first)
    assert_no_result(second)
    wire.feed(wire.frames.unblocked())
    result_of(second)


def test_blocked_past_blocked_connection_timeout_fails_the_publish() -> None:
    wire = Wire(blocked_connection_timeout=30)
    conn = wire.open()
    ch = wire.channel(conn)
    wire.feed(wire.frames.blocked())
    d = ch.basic_publish("", "q", b"late")
    wire.clock.advance(29.9)
    assert_no_result(d)
    wire.clock.advance(0.1)
    failure_of(d, ConnectionBlockedTimeout)
    wire.feed(wire.frames.unblocked())
    assert published_bodies(wire) == []  # never sent after it failed


def test_cancelled_held_publish_is_never_sent() -> None:
    wire = Wire()
    conn = wire.open()
    ch = wire.channel(conn)
    wire.feed(wire.frames.blocked())
    dropped = ch.basic_publish("", "q", b"dropped")
    kept = ch.basic_publish("", "q", b"kept")
    dropped.cancel()
    dropped.addErrback(lambda f: None)
    wire.feed(wire.frames.unblocked())
    result_of(kept)
    assert published_bodies(wire) == [b"kept"]


def test_transport_pushback_holds_publishes_until_resumed() -> None:
    wire = Wire()
    conn = wire.open()
    ch = wire.channel(conn)
    wire.protocol.pauseProducing()  # what a Twisted transport does when its buffer is full
    held = [ch.basic_publish("", "q", b"p%d" % i) for i in range(3)]
    for d in held:
        assert_no_result(d)
    assert published_bodies(wire) == []
    wire.protocol.resumeProducing()
    for d in held:
        result_of(d)
    assert published_bodies(wire) == [b"p0", b"p1", b"p2"]


def test_pushback_and_blocked_both_must_clear() -> None:
    wire = Wire()
    conn = wire.open()
    ch = wire.channel(conn)
    wire.protocol.pauseProducing()
    wire.feed(wire.frames.blocked())
    d = ch.basic_publish("", "q", b"x")
    wire.protocol.resumeProducing()
    assert_no_result(d)
    wire.feed(wire.frames.unblocked())
    result_of(d)


def test_slow_consumer_pauses_reading_and_draining_resumes_it() -> None:
    wire = Wire()
    conn = wire.open()
    conn.max_buffered = 4
    conn.resume_buffered = 2
    ch = wire.channel(conn)
    d = ch.basic_consume("q", consumer_tag="ctag")
    wire.sent()
    wire.feed(wire.frames.consume_ok(ch.channel_number, "ctag"))
    consumer = result_of(d)

    for tag in range(1, 4):
        wire.feed(wire.frames.deliver(ch.channel_number, "ctag", tag, b"m"))
    assert wire.transport.producerState == "producing"
    wire.feed(wire.frames.deliver(ch.channel_number, "ctag", 4, b"m"))
    assert wire.transport.producerState == "paused"

    result_of(consumer.get())
    assert wire.transport.producerState == "paused"  # 3 buffered: above the resume mark
    result_of(consumer.get())
    assert wire.transport.producerState == "producing"  # 2 buffered


def test_cancel_hands_buffered_messages_back_and_resumes_reading() -> None:
    wire = Wire()
    conn = wire.open()
    conn.max_buffered = 2
    conn.resume_buffered = 0
    ch = wire.channel(conn)
    d = ch.basic_consume("q", consumer_tag="ctag")
    wire.sent()
    wire.feed(wire.frames.consume_ok(ch.channel_number, "ctag"))
    consumer = result_of(d)
    wire.feed(
        wire.frames.deliver(ch.channel_number, "ctag", 1, b"a")
        + wire.frames.deliver(ch.channel_number, "ctag", 2, b"b")
    )
    assert wire.transport.producerState == "paused"
    cancelled = consumer.cancel()
    assert wire.transport.producerState == "producing"
    # Cancel first: nacked while the consumer still exists, RabbitMQ would deliver the
    # messages straight back to it instead of leaving them in the queue.
    assert wire.methods() == [
        (1, spec.BasicCancel(consumer_tag="ctag")),
        (1, spec.BasicNack(delivery_tag=1, multiple=False, requeue=True)),
        (1, spec.BasicNack(delivery_tag=2, multiple=False, requeue=True)),
    ]
    wire.feed(wire.frames.cancel_ok(ch.channel_number, "ctag"))
    assert result_of(cancelled) == 2


def test_fake_broker_consumer_backpressure_end_to_end() -> None:
    broker = FakeBroker()
    broker.declare_queue("work")
    for i in range(10):
        broker.publish("", "work", b"%d" % i)
    conn, pump = connected(broker)
    conn.max_buffered = 3
    conn.resume_buffered = 1
    ch = pump.result(conn.channel())
    consumer = pump.result(ch.basic_consume("work"))
    assert pump.client_transport.producerState == "paused"
    got = []
    for _ in range(10):
        message = pump.result(consumer.get())
        got.append(message.body)
        message.ack()
    assert got == [b"%d" % i for i in range(10)]
    assert pump.client_transport.producerState == "producing"
    pump.flush()
    assert broker.bodies("work") == [] and not pump.server.channels[1].unacked
