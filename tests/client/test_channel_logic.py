"""ChannelLogic and ConsumerLogic on their own, against the fake broker: declares, publish
and get, confirms, returns, consumers, settlement, transactions and closes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.client.support import Wire
from txamqp091.client.channel import ChannelLogic
from txamqp091.core import spec
from txamqp091.exceptions import (
    ChannelClosedByBroker,
    ChannelWrongStateError,
    ConnectionClosedByBroker,
    ConsumerCancelled,
    NackError,
    UnroutableError,
)
from txamqp091.message import Message, ReturnedMessage
from txamqp091.testing import FakeBroker


@pytest.fixture
def wire() -> Wire:
    wire = Wire(FakeBroker())
    wire.result(wire.client._opened)
    return wire


@pytest.fixture
def ch(wire: Wire) -> ChannelLogic[Any]:
    channel: ChannelLogic[Any] = wire.result(wire.client.channel())
    return channel


def test_declare_results_carry_the_brokers_answers(wire: Wire, ch: ChannelLogic[Any]) -> None:
    ok = wire.result(ch.queue_declare("", exclusive=True))
    assert isinstance(ok, spec.QueueDeclareOk) and ok.queue.startswith("amq.gen-")
    wire.broker.publish("", ok.queue, b"x")
    again = wire.result(ch.queue_declare(ok.queue, passive=True))
    assert (again.message_count, again.consumer_count) == (1, 0)
    assert wire.result(ch.queue_purge(ok.queue)).message_count == 1
    wire.result(ch.exchange_declare("logs", "fanout"))
    wire.result(ch.queue_bind(ok.queue, "logs"))
    assert wire.broker.publish("logs", "", b"fanned") == 1
    wire.result(ch.queue_unbind(ok.queue, "logs"))
    assert wire.broker.publish("logs", "", b"nowhere") == 0
    assert wire.result(ch.queue_delete(ok.queue)).message_count == 1
    wire.result(ch.exchange_delete("logs"))
    assert ok.queue not in wire.broker.queues and "logs" not in wire.broker.exchanges


def test_publish_then_get_round_trips_body_and_properties(
    wire: Wire, ch: ChannelLogic[Any]
) -> None:
    wire.result(ch.queue_declare("q"))
    properties = spec.BasicProperties(content_type="text/plain", headers={"n": 1})
    assert wire.result(ch.basic_publish("", "q", "héllo", properties)) is None
    message = wire.result(ch.basic_get("q"))
    assert isinstance(message, Message)
    assert (message.body, message.routing_key, message.redelivered) == (
        "héllo".encode(),
        "q",
        False,
    )
    assert message.properties.headers == {"n": 1} and message.message_count == 0
    message.nack(requeue=True)
    again = wire.result(ch.basic_get("q"))
    assert again.redelivered and again.body == message.body
    again.ack()
    assert wire.result(ch.basic_get("q")) is None
    wire.flush()
    assert not wire.server.channels[1].unacked


def test_a_body_that_is_not_bytes_fails_the_publish(wire: Wire, ch: ChannelLogic[Any]) -> None:
    # txamqp091.validation: bad arguments raise at the call, naming the argument.
    with pytest.raises(TypeError, match="body"):
        ch.basic_publish("", "q", 42)  # type: ignore[arg-type]


def test_confirms_resolve_on_the_brokers_acks_even_when_batched(
    wire: Wire, ch: ChannelLogic[Any]
) -> None:
    wire.result(ch.queue_declare("q"))
    wire.result(ch.confirm_delivery())
    assert ch.publisher_confirms
    wire.server.hold_confirms = True
    pending = [ch.basic_publish("", "q", str(n).encode()) for n in range(3)]
    wire.flush()
    assert not any(p.done for p in pending)
    wire.server.release_confirms()  # one Basic.Ack with multiple=True
    wire.flush()
    assert all(p.done and p.error is None for p in pending)


def test_a_nack_fails_that_publish_only(wire: Wire, ch: ChannelLogic[Any]) -> None:
    wire.result(
        ch.queue_declare("one", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    )
    wire.result(ch.confirm_delivery())
    assert wire.result(ch.basic_publish("", "one", b"kept")) is None
    assert isinstance(wire.error(ch.basic_publish("", "one", b"refused")), NackError)
    assert wire.broker.bodies("one") == [b"kept"]


def test_an_unroutable_mandatory_publish_is_returned(wire: Wire, ch: ChannelLogic[Any]) -> None:
    returned: list[Message] = []
    ch.add_on_return_callback(returned.append)
    wire.result(ch.confirm_delivery())
    error = wire.error(ch.basic_publish("", "nowhere", b"lost", mandatory=True))
    assert isinstance(error, UnroutableError)
    assert [m.body for m in returned] == [b"lost"]
    assert isinstance(returned[0], ReturnedMessage)
    assert (returned[0].reply_code, returned[0].reply_text) == (312, "NO_ROUTE")
    assert returned[0].routing_key == "nowhere" and returned[0].channel is ch


def test_a_consumer_buffers_deliveries_and_cancel_hands_them_back(
    wire: Wire, ch: ChannelLogic[Any]
) -> None:
    wire.result(ch.queue_declare("q"))
    consumer = wire.result(ch.basic_consume("q", consumer_tag="c1"))
    assert consumer.is_active and consumer.consumer_tag == "c1"
    for n in range(3):
        wire.broker.publish("", "q", str(n).encode())
    first = wire.result(consumer.get())
    assert first.body == b"0" and first.consumer_tag == "c1"
    first.ack()
    assert wire.result(consumer.cancel()) == 2  # the two it buffered go back
    assert not consumer.is_active
    assert wire.broker.bodies("q") == [b"1", b"2"]
    assert all(m.redelivered for m in wire.broker.messages("q"))
    with pytest.raises(StopAsyncIteration):
        wire.result(consumer.__anext__())


def test_get_with_a_timeout_gives_none_when_nothing_comes(
    wire: Wire, ch: ChannelLogic[Any]
) -> None:
    wire.result(ch.queue_declare("q"))
    consumer = wire.result(ch.basic_consume("q"))
    waiting = consumer.get(timeout=2.0)
    wire.advance(1.9)
    assert not waiting.done
    wire.advance(0.2)
    assert waiting.done and waiting.value is None


def test_a_callback_consumer_gets_each_message_and_its_errors_are_contained(
    wire: Wire, ch: ChannelLogic[Any]
) -> None:
    seen: list[bytes] = []

    def handle(message: Message) -> None:
        seen.append(message.body)
        if message.body == b"bad":
            raise ValueError("bad message")
        message.ack()

    wire.result(ch.queue_declare("q"))
    wire.result(ch.basic_consume("q", on_message_callback=handle))
    for body in (b"good", b"bad", b"fine"):
        wire.broker.publish("", "q", body)
    wire.flush()
    assert seen == [b"good", b"bad", b"fine"]
    assert [str(e) for e in wire.runtime.callback_errors] == ["bad message"]
    assert sorted(m.message.body for m in wire.server.channels[1].unacked.values()) == [b"bad"]


def test_waiting_gets_take_deliveries_in_order_skipping_a_cancelled_one(
    wire: Wire, ch: ChannelLogic[Any]
) -> None:
    wire.result(ch.queue_declare("q"))
    consumer = wire.result(ch.basic_consume("q"))
    first, second, third = consumer.get(), consumer.get(), consumer.get()
    second.cancel()
    for body in (b"1", b"2", b"3"):
        wire.broker.publish("", "q", body)
    wire.flush()
    assert [wire.result(w).body for w in (first, third)] == [b"1", b"2"]
    assert [m.body for m in consumer._buffer] == [b"3"]  # no getter left: buffered
    assert wire.result(consumer.get()).body == b"3"


def test_a_callback_consumer_takes_its_deliveries_before_a_waiting_get(
    wire: Wire, ch: ChannelLogic[Any]
) -> None:
    seen: list[bytes] = []
    wire.result(ch.queue_declare("q"))
    consumer = wire.result(ch.basic_consume("q", on_message_callback=lambda m: seen.append(m.body)))
    waiting = consumer.get()
    wire.broker.publish("", "q", b"x")
    wire.flush()
    assert seen == [b"x"] and not waiting.done and not consumer._buffer


def test_qos_limits_what_is_delivered_unacked(wire: Wire, ch: ChannelLogic[Any]) -> None:
    wire.result(ch.queue_declare("q"))
    wire.result(ch.basic_qos(prefetch_count=2))
    consumer = wire.result(ch.basic_consume("q"))
    for n in range(5):
        wire.broker.publish("", "q", str(n).encode())
    wire.flush()
    assert len(consumer._buffer) == 2 and len(wire.broker.bodies("q")) == 3
    wire.result(consumer.get()).ack()
    wire.flush()
    assert len(consumer._buffer) == 2 and len(wire.broker.bodies("q")) == 2


def test_the_broker_cancelling_a_consumer_ends_it_and_calls_the_hook(
    wire: Wire, ch: ChannelLogic[Any]
) -> None:
    cancelled: list[str] = []
    ch.add_on_cancel_callback(cancelled.append)
    wire.result(ch.queue_declare("q"))
    consumer = wire.result(ch.basic_consume("q", consumer_tag="c1"))
    wire.broker.delete_queue(wire.broker.queues["q"])  # another client deleted it
    wire.flush()
    assert cancelled == ["c1"] and not consumer.is_active
    assert isinstance(wire.error(consumer.get()), ConsumerCancelled)


def test_recover_redelivers_what_is_unacked(wire: Wire, ch: ChannelLogic[Any]) -> None:
    wire.result(ch.queue_declare("q"))
    wire.broker.publish("", "q", b"once")
    assert wire.result(ch.basic_get("q")).redelivered is False
    wire.result(ch.basic_recover(requeue=True))
    assert wire.result(ch.basic_get("q")).redelivered is True


def test_a_transaction_applies_on_commit_only(wire: Wire, ch: ChannelLogic[Any]) -> None:
    wire.result(ch.queue_declare("q"))
    wire.result(ch.tx_select())
    wire.result(ch.basic_publish("", "q", b"rolled back"))
    wire.result(ch.tx_rollback())
    wire.result(ch.basic_publish("", "q", b"committed"))
    assert wire.broker.bodies("q") == []
    wire.result(ch.tx_commit())
    assert wire.broker.bodies("q") == [b"committed"]


def test_flow_is_answered_and_flow_off_is_refused_as_rabbitmq_does(
    wire: Wire, ch: ChannelLogic[Any]
) -> None:
    assert wire.result(ch.flow(True)) is True
    error = wire.error(ch.flow(False))
    assert isinstance(error, ConnectionClosedByBroker) and error.reply_code == 540
    assert not wire.client.is_open


def test_close_by_the_client_then_operations_fail_at_once(
    wire: Wire, ch: ChannelLogic[Any]
) -> None:
    closed = ch.closed
    assert wire.result(ch.close()) is None
    assert closed.done and not ch.is_open and ch.is_closed
    assert isinstance(wire.error(ch.queue_declare("q")), ChannelWrongStateError)
    error = wire.error(ch.basic_publish("", "q", b"x"))
    assert isinstance(error, ChannelWrongStateError)
    assert "closed: " in str(error) and "200" in str(error)  # says how it closed
    assert wire.client.is_open


def test_the_broker_closing_the_channel_requeues_and_fails_what_waits(
    wire: Wire, ch: ChannelLogic[Any]
) -> None:
    reasons: list[Any] = []
    ch.add_on_close_callback(lambda channel, reason: reasons.append(reason))
    wire.result(ch.queue_declare("q"))
    wire.broker.publish("", "q", b"unacked")
    message = wire.result(ch.basic_get("q"))
    wire.server.close_channel(1, 406, "PRECONDITION_FAILED - test")
    wire.flush()
    assert not ch.is_open and isinstance(ch.closed.value, ChannelClosedByBroker)
    assert len(reasons) == 1 and reasons[0].reply_code == 406
    assert wire.broker.bodies("q") == [b"unacked"]
    message.ack()  # on a closed channel: nothing happens, nothing raises
    wire.flush()
    assert wire.client.is_open and 1 not in wire.server.channels


def test_the_default_try_resolve_is_is_done_then_resolve() -> None:
    from tests.client.support import ManualRuntime

    runtime = ManualRuntime()
    w = runtime.create_waiter()
    assert runtime.try_resolve(w, 1) is True
    assert runtime.try_resolve(w, 2) is False
    assert runtime.is_done(w) and w.value == 1
