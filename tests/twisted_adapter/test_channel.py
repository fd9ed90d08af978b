"""Channel operations over the wire: reply pairing, cancellation, confirms, returns, get, consume."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, ensureDeferred

from tests.twisted_adapter.support import Wire, assert_no_result, failure_of, result_of
from txamqp091 import BasicProperties, Message
from txamqp091.core import spec
from txamqp091.exceptions import NackError, UnroutableError
from txamqp091.twisted import Channel, Connection


def open_channel(**params: Any) -> tuple[Wire, Connection, Channel]:
    wire = Wire(**params)
    conn = wire.open()
    return wire, conn, wire.channel(conn)


def test_one_request_in_flight_and_replies_paired_in_order() -> None:
    wire, _, ch = open_channel()
    a = ch.queue_declare("a")
    b = ch.queue_declare("b")
    assert wire.methods() == [(1, spec.QueueDeclare(queue="a"))]  # b waits its turn
    wire.feed(wire.frames.queue_declare_ok(1, "a", message_count=3))
    assert wire.methods() == [(1, spec.QueueDeclare(queue="b"))]
    assert result_of(a).message_count == 3
    assert_no_result(b)
    wire.feed(wire.frames.queue_declare_ok(1, "b"))
    assert result_of(b).queue == "b"


def test_cancelled_request_still_takes_its_reply() -> None:
    wire, _, ch = open_channel()
    cancelled = ch.queue_declare("first")
    wire.sent()
    cancelled.cancel()
    failure_of(cancelled, CancelledError)
    second = ch.queue_declare("second")
    wire.feed(wire.frames.queue_declare_ok(1, "first"))
    assert_no_result(second)  # the first reply went to the cancelled request
    assert wire.methods() == [(1, spec.QueueDeclare(queue="second"))]
    wire.feed(wire.frames.queue_declare_ok(1, "second"))
    assert result_of(second).queue == "second"
    assert ch.is_open


def test_cancelled_request_before_it_was_sent() -> None:
    wire, _, ch = open_channel()
    first = ch.queue_declare("first")
    second = ch.queue_declare("second")
    third = ch.queue_declare("third")
    second.cancel()
    failure_of(second, CancelledError)
    wire.sent()
    wire.feed(wire.frames.queue_declare_ok(1, "first"))
    wire.feed(wire.frames.queue_declare_ok(1, "second"))
    wire.feed(wire.frames.queue_declare_ok(1, "third"))
    assert result_of(first).queue == "first"
    assert result_of(third).queue == "third"


def test_every_pika_named_operation_sends_its_method() -> None:
    wire, _, ch = open_channel()
    calls = [
        (ch.exchange_declare("x", exchange_type="fanout", durable=True),
         spec.ExchangeDeclare(exchange="x", type="fanout", durable=True)),
        (ch.exchange_bind("x2", "x", routing_key="k"),
         spec.ExchangeBind(destination="x2", source="x", routing_key="k")),
        (ch.exchange_unbind("x2", "x", routing_key="k"),
         spec.ExchangeUnbind(destination="x2", source="x", routing_key="k")),
        (ch.exchange_delete("x", if_unused=True), spec.ExchangeDelete(exchange="x", if_unused=True)),
        (ch.queue_bind("q", "x"), spec.QueueBind(queue="q", exchange="x", routing_key="q")),
        (ch.queue_unbind("q", "x", "k"), spec.QueueUnbind(queue="q", exchange="x", routing_key="k")),
        (ch.queue_purge("q"), spec.QueuePurge(queue="q")),
        (ch.queue_delete("q", if_empty=True), spec.QueueDelete(queue="q", if_empty=True)),
        (ch.basic_qos(prefetch_count=10), spec.BasicQos(prefetch_count=10)),
        (ch.basic_recover(requeue=True), spec.BasicRecover(requeue=True)),
        (ch.tx_select(), spec.TxSelect()),
        (ch.tx_commit(), spec.TxCommit()),
        (ch.tx_rollback(), spec.TxRollback()),
        (ch.flow(True), spec.ChannelFlow(active=True)),
    ]  # fmt: skip
    for d, method in calls:
        assert wire.methods() == [(1, method)]
        wire.feed(wire.frames.reply(1, method))
        result_of(d)


def test_confirms_with_multiple_settle_the_right_publishes() -> None:
    wire, _, ch = open_channel()
    d = ch.confirm_delivery()
    wire.sent()
    wire.feed(wire.frames.confirm_select_ok(1))
    result_of(d)
    publishes = [ch.basic_publish("", "q", b"%d" % i) for i in range(1, 8)]
    assert ch.publisher_confirms
    wire.sent()
    wire.feed(wire.frames.ack(1, 3, multiple=True))
    assert [result_of(d) for d in publishes[:3]] == [None] * 3
    for d in publishes[3:]:
        assert_no_result(d)
    wire.feed(wire.frames.ack(1, 5))  # 5 alone: 4 still waits
    result_of(publishes[4])
    assert_no_result(publishes[3])
    wire.feed(wire.frames.nack(1, 6, multiple=True))  # 4 and 6
    failure_of(publishes[3], NackError)
    failure_of(publishes[5], NackError)
    assert_no_result(publishes[6])
    wire.feed(wire.frames.ack(1, 7))
    result_of(publishes[6])


def test_returns_interleaved_with_confirms_fail_only_the_returned_publish() -> None:
    wire, _, ch = open_channel()
    ch.confirm_delivery()
    wire.sent()
    wire.feed(wire.frames.confirm_select_ok(1))
    props = BasicProperties(message_id="m")
    sent = [
        ch.basic_publish("ex", "routed", b"a", mandatory=True),
        ch.basic_publish("ex", "nowhere", b"b", props, mandatory=True),
        ch.basic_publish("ex", "routed", b"c", mandatory=True),
        ch.basic_publish("ex", "nowhere", b"d", mandatory=True),
        ch.basic_publish("ex", "nowhere", b"e", mandatory=False),  # not mandatory: just dropped
    ]
    wire.sent()
    # RabbitMQ sends each Basic.Return before the ack of the same message.
    wire.feed(
        wire.frames.basic_return(1, b"b", props, exchange="ex", routing_key="nowhere")
        + wire.frames.ack(1, 2, multiple=True)
        + wire.frames.basic_return(1, b"d", exchange="ex", routing_key="nowhere")
        + wire.frames.ack(1, 5, multiple=True)
    )
    result_of(sent[0])
    error = failure_of(sent[1], UnroutableError)
    assert isinstance(error, UnroutableError)
    assert (error.reply_code, error.reply_text) == (312, "NO_ROUTE")
    assert isinstance(error.message, Message) and error.message.body == b"b"
    assert error.message.properties.message_id == "m"
    result_of(sent[2])
    failure_of(sent[3], UnroutableError)
    result_of(sent[4])


def test_return_callback_sees_returned_messages() -> None:
    wire, _, ch = open_channel()
    returned: list[Message] = []
    ch.add_on_return_callback(returned.append)
    ch.basic_publish("", "nowhere", b"lost", mandatory=True)
    wire.sent()
    wire.feed(wire.frames.basic_return(1, b"lost", routing_key="nowhere"))
    assert [m.body for m in returned] == [b"lost"]


def test_basic_get_message_and_empty() -> None:
    wire, _, ch = open_channel()
    got = ch.basic_get("q")
    assert wire.methods() == [(1, spec.BasicGet(queue="q"))]
    wire.feed(wire.frames.get_ok(1, 7, b"body", routing_key="q", message_count=4))
    message = result_of(got)
    assert isinstance(message, Message)
    assert (message.body, message.delivery_tag, message.message_count) == (b"body", 7, 4)
    message.ack()
    assert wire.methods() == [(1, spec.BasicAck(delivery_tag=7))]
    empty = ch.basic_get("q")
    wire.sent()
    wire.feed(wire.frames.get_empty(1))
    assert result_of(empty) is None


def test_consume_with_a_callback() -> None:
    wire, _, ch = open_channel()
    seen: list[Message] = []
    d = ch.basic_consume("q", on_message_callback=seen.append, consumer_tag="c1")
    wire.sent()
    wire.feed(wire.frames.consume_ok(1, "c1"))
    consumer = result_of(d)
    assert consumer.consumer_tag == "c1" and consumer.queue == "q"
    wire.feed(wire.frames.deliver(1, "c1", 1, b"x") + wire.frames.deliver(1, "c1", 2, b"y"))
    assert [(m.body, m.delivery_tag, m.consumer_tag) for m in seen] == [
        (b"x", 1, "c1"),
        (b"y", 2, "c1"),
    ]
    seen[0].nack(requeue=False)
    seen[1].reject()
    assert wire.methods() == [
        (1, spec.BasicNack(delivery_tag=1, requeue=False)),
        (1, spec.BasicReject(delivery_tag=2, requeue=True)),
    ]


def test_consumer_get_with_timeout_gives_none() -> None:
    wire, _, ch = open_channel()
    d = ch.basic_consume("q", consumer_tag="c1")
    wire.sent()
    wire.feed(wire.frames.consume_ok(1, "c1"))
    consumer = result_of(d)
    waiting = consumer.get(timeout=0.2)
    wire.clock.advance(0.1)
    assert_no_result(waiting)
    wire.clock.advance(0.1)
    assert result_of(waiting) is None
    later = consumer.get(timeout=5)
    wire.feed(wire.frames.deliver(1, "c1", 1, b"late"))
    assert result_of(later).body == b"late"
    assert wire.clock.getDelayedCalls() == []  # the timeout timer went with it


def test_a_coroutine_on_get_resumes_once_per_read_and_its_acks_leave_in_one_write() -> None:
    wire, _, ch = open_channel()
    d = ch.basic_consume("q", consumer_tag="c1")
    wire.sent()
    wire.feed(wire.frames.consume_ok(1, "c1"))
    consumer = result_of(d)
    ready: list[bool] = []  # was each get() already fired (no suspension)?
    tags: list[int] = []

    async def consume() -> None:
        while len(tags) < 3:
            waiting = consumer.get()
            ready.append(waiting.called)
            message = await waiting
            tags.append(message.delivery_tag)
            message.ack()

    done = ensureDeferred(consume())
    writes: list[bytes] = []

    def write(data: bytes) -> None:
        writes.append(data)
        wire.transport.__class__.write(wire.transport, data)

    wire.transport.write = write  # type: ignore[method-assign]
    wire.protocol.dataReceived(b"".join(wire.frames.deliver(1, "c1", t, b"m") for t in (1, 2, 3)))
    result_of(done)
    assert tags == [1, 2, 3]
    # Resumed once, after the whole read: the other two deliveries were buffered by then.
    assert ready == [False, True, True]
    assert len(writes) == 1  # the three acks, written once after the read
    assert wire.methods() == [(1, spec.BasicAck(delivery_tag=t)) for t in (1, 2, 3)]
    assert wire.clock.getDelayedCalls() == []  # no flush left scheduled


def test_a_lone_delivery_s_first_publish_leaves_before_its_coroutine_waits_again() -> None:
    wire, _, ch = open_channel()
    d = ch.basic_consume("q", consumer_tag="c1", auto_ack=True)
    wire.sent()
    wire.feed(wire.frames.consume_ok(1, "c1"))
    consumer = result_of(d)
    written_at_publish: list[int] = []
    writes: list[bytes] = []

    def write(data: bytes) -> None:
        writes.append(data)
        wire.transport.__class__.write(wire.transport, data)

    wire.transport.write = write  # type: ignore[method-assign]

    async def answer(rounds: int) -> None:
        for _ in range(rounds):
            message = await consumer.get()
            ch.basic_publish("", "replies", message.body)
            written_at_publish.append(len(writes))
            ch.basic_publish("", "audit", message.body)  # a second one waits for the read's end
            written_at_publish.append(len(writes))

    done = ensureDeferred(answer(1))
    wire.protocol.dataReceived(wire.frames.deliver(1, "c1", 1, b"ping"))
    result_of(done)
    # The first publish went out at once, the second with the read's one flush.
    assert written_at_publish == [1, 1] and len(writes) == 2
    assert [m.routing_key for _, m in wire.methods()] == ["replies", "audit"]

    # Two deliveries in one read: everything waits for the read's end, in one write.
    writes.clear()
    written_at_publish.clear()
    done = ensureDeferred(answer(2))
    wire.protocol.dataReceived(
        wire.frames.deliver(1, "c1", 2, b"a") + wire.frames.deliver(1, "c1", 3, b"b")
    )
    result_of(done)
    assert written_at_publish == [0, 0, 0, 0] and len(writes) == 1
    assert [m.routing_key for _, m in wire.methods()] == ["replies", "audit"] * 2
