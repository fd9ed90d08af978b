"""The fake broker behaves as RabbitMQ does, seen through the Twisted client and its shim
(txamqp091.twisted.testing, which re-exports txamqp091.testing.twisted)."""

from __future__ import annotations

import textwrap
import unittest
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.testing import MemoryReactorClock

from txamqp091 import BasicProperties, Message, PlainCredentials
from txamqp091.core import spec
from txamqp091.core.testing import parse_client_methods
from txamqp091.exceptions import (
    ChannelClosedByBroker,
    ConnectionClosedByBroker,
    ConsumerCancelled,
    NackError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    StreamLostError,
    UnroutableError,
)
from txamqp091.params import ConnectionParameters
from txamqp091.twisted import Channel, Connection, testing
from txamqp091.twisted.connect import connect, connect_once
from txamqp091.twisted.testing import (
    FakeBroker,
    FakeEndpoint,
    Pump,
    connect_pending,
    connected,
)


def session(
    broker: FakeBroker | None = None, **kw: Any
) -> tuple[FakeBroker, Connection, Channel, Pump]:
    broker = broker if broker is not None else FakeBroker()
    conn, pump = connected(broker, **kw)
    return broker, conn, pump.result(conn.channel()), pump


def channel_error(pump: Pump, d: Any) -> ChannelClosedByBroker:
    with pytest.raises(ChannelClosedByBroker) as info:
        pump.result(d)
    return info.value


# -- declaring -------------------------------------------------------------------------------


def test_queue_declare_server_named_passive_and_redeclare() -> None:
    broker, _, ch, pump = session()
    ok = pump.result(ch.queue_declare("", exclusive=True))
    assert ok.queue.startswith("amq.gen-") and ok.queue in broker.queues
    broker.publish("", ok.queue, b"x")
    again = pump.result(ch.queue_declare(ok.queue, passive=True))
    assert (again.queue, again.message_count, again.consumer_count) == (ok.queue, 1, 0)
    pump.result(ch.queue_declare("named", exclusive=True))
    error = channel_error(pump, ch.queue_declare("named", durable=True, exclusive=True))
    assert error.reply_code == 406 and "inequivalent arg 'durable'" in error.reply_text


def test_server_named_queues_cannot_be_redeclared() -> None:
    # RabbitMQ refuses any non-passive declare of an amq.* name, its own included.
    _, _, ch, pump = session()
    ok = pump.result(ch.queue_declare("", exclusive=True))
    error = channel_error(pump, ch.queue_declare(ok.queue, exclusive=True))
    assert error.reply_code == 403 and "reserved prefix 'amq.*'" in error.reply_text


def test_passive_declare_of_a_missing_queue_closes_the_channel() -> None:
    _, conn, ch, pump = session()
    error = channel_error(pump, ch.queue_declare("missing", passive=True))
    assert (error.reply_code, error.reply_text) == (
        404,
        "NOT_FOUND - no queue 'missing' in vhost '/'",
    )
    assert pump.result(ch.closed) is error
    assert conn.is_open


def test_reserved_names_are_refused() -> None:
    _, conn, ch, pump = session()
    assert channel_error(pump, ch.queue_declare("amq.mine")).reply_code == 403
    ch = pump.result(conn.channel())
    assert channel_error(pump, ch.exchange_declare("amq.mine")).reply_code == 403


def test_unknown_exchange_type_is_a_connection_error() -> None:
    _, conn, ch, pump = session()
    with pytest.raises(ConnectionClosedByBroker) as info:
        pump.result(ch.exchange_declare("x", exchange_type="nonsense"))
    assert info.value.reply_code == 503


def test_exchange_redeclare_with_another_type() -> None:
    _, _, ch, pump = session()
    pump.result(ch.exchange_declare("logs", exchange_type="fanout"))
    pump.result(ch.exchange_declare("logs", exchange_type="fanout"))
    error = channel_error(pump, ch.exchange_declare("logs", exchange_type="direct"))
    assert error.reply_code == 406


# -- routing -------------------------------------------------------------------------------------


def test_direct_fanout_topic_and_default_exchange_routing() -> None:
    broker, _, ch, pump = session()
    for name in ("a", "b", "c"):
        pump.result(ch.queue_declare(name))
    pump.result(ch.exchange_declare("direct"))
    pump.result(ch.exchange_declare("fan", exchange_type="fanout"))
    pump.result(ch.exchange_declare("topic", exchange_type="topic"))
    pump.result(ch.queue_bind("a", "direct", "red"))
    pump.result(ch.queue_bind("b", "direct", "blue"))
    pump.result(ch.queue_bind("a", "fan"))
    pump.result(ch.queue_bind("c", "fan"))
    pump.result(ch.queue_bind("a", "topic", "orders.*.eu"))
    pump.result(ch.queue_bind("b", "topic", "orders.#"))
    pump.result(ch.queue_bind("c", "topic", "#.audit"))
    for exchange, key, body in [
        ("direct", "red", b"d-red"),
        ("direct", "blue", b"d-blue"),
        ("direct", "green", b"d-green"),
        ("fan", "anything", b"f"),
        ("topic", "orders.new.eu", b"t1"),
        ("topic", "orders", b"t2"),
        ("topic", "x.y.audit", b"t3"),
        ("", "c", b"default"),
    ]:
        pump.result(ch.basic_publish(exchange, key, body))
    assert broker.bodies("a") == [b"d-red", b"f", b"t1"]
    assert broker.bodies("b") == [b"d-blue", b"t1", b"t2"]
    assert broker.bodies("c") == [b"f", b"t3", b"default"]
    pump.result(ch.queue_unbind("a", "direct", "red"))
    pump.result(ch.basic_publish("direct", "red", b"gone"))
    assert broker.bodies("a") == [b"d-red", b"f", b"t1"]


def test_headers_exchange() -> None:
    broker, _, ch, pump = session()
    pump.result(ch.queue_declare("all"))
    pump.result(ch.queue_declare("any"))
    pump.result(ch.queue_bind("all", "amq.headers", "", {"x-match": "all", "a": 1, "b": 2}))
    pump.result(ch.queue_bind("any", "amq.headers", "", {"x-match": "any", "a": 1, "b": 2}))
    for headers in ({"a": 1, "b": 2}, {"a": 1}, {"b": 3}):
        ch.basic_publish("amq.headers", "", repr(headers), BasicProperties(headers=headers))
    pump.flush()
    assert broker.bodies("all") == [b"{'a': 1, 'b': 2}"]
    assert broker.bodies("any") == [b"{'a': 1, 'b': 2}", b"{'a': 1}"]


def test_exchange_to_exchange_bindings() -> None:
    broker, _, ch, pump = session()
    pump.result(ch.exchange_declare("front", exchange_type="topic"))
    pump.result(ch.exchange_declare("back", exchange_type="fanout"))
    pump.result(ch.queue_declare("sink"))
    pump.result(ch.queue_bind("sink", "back"))
    pump.result(ch.exchange_bind("back", "front", routing_key="keep.*"))
    pump.result(ch.basic_publish("front", "keep.this", b"1"))
    pump.result(ch.basic_publish("front", "drop.this", b"2"))
    assert broker.bodies("sink") == [b"1"]
    pump.result(ch.exchange_unbind("back", "front", routing_key="keep.*"))
    pump.result(ch.basic_publish("front", "keep.this", b"3"))
    assert broker.bodies("sink") == [b"1"]
    pump.result(ch.exchange_delete("back"))
    assert "back" not in broker.exchanges


def test_publish_to_a_missing_exchange_closes_the_channel() -> None:
    _, _, ch, pump = session()
    ch.basic_publish("no-such-exchange", "k", b"x")
    pump.flush()
    error = pump.result(ch.closed)
    assert isinstance(error, ChannelClosedByBroker) and error.reply_code == 404


# -- queues ----------------------------------------------------------------------------------------


def test_purge_and_delete() -> None:
    broker, _, ch, pump = session()
    pump.result(ch.queue_declare("q"))
    for i in range(3):
        broker.publish("", "q", b"%d" % i)
    assert pump.result(ch.queue_purge("q")).message_count == 3
    broker.publish("", "q", b"again")
    assert channel_error(pump, ch.queue_delete("q", if_empty=True)).reply_code == 406


def test_deleting_a_queue_cancels_its_consumers() -> None:
    broker, conn, ch, pump = session()
    pump.result(ch.queue_declare("q"))
    broker.publish("", "q", b"left")
    cancelled: list[str] = []
    ch.add_on_cancel_callback(cancelled.append)
    consumer = pump.result(ch.basic_consume("q", consumer_tag="c"))
    message = pump.result(consumer.get())
    other = pump.result(conn.channel())
    assert pump.result(other.queue_delete("q")).message_count == 0
    assert cancelled == ["c"]
    with pytest.raises(ConsumerCancelled):
        pump.result(consumer.get())
    message.ack()  # its queue is gone; the ack is still fine
    pump.flush()
    assert ch.is_open


def test_exclusive_queue_belongs_to_its_connection() -> None:
    broker, conn, ch, pump = session()
    pump.result(ch.queue_declare("mine", exclusive=True))
    _, _, other, other_pump = session(broker)
    error = channel_error(other_pump, other.queue_declare("mine"))
    assert error.reply_code == 405
    pump.result(conn.close())
    assert "mine" not in broker.queues


# -- consuming ---------------------------------------------------------------------------------------


def test_prefetch_and_round_robin_between_consumers() -> None:
    broker, _, ch, pump = session()
    pump.result(ch.queue_declare("q"))
    pump.result(ch.basic_qos(prefetch_count=1))
    first: list[Message] = []
    second: list[Message] = []
    pump.result(ch.basic_consume("q", on_message_callback=first.append))
    pump.result(ch.basic_consume("q", on_message_callback=second.append))
    for i in range(4):
        broker.publish("", "q", b"%d" % i)
    pump.flush()
    assert ([m.body for m in first], [m.body for m in second]) == ([b"0"], [b"1"])
    assert broker.bodies("q") == [b"2", b"3"]
    first[0].ack()
    pump.flush()
    assert [m.body for m in first] == [b"0", b"2"]
    second[0].ack()
    first[1].ack()
    pump.flush()
    assert [m.body for m in second] == [b"1", b"3"]


def test_nack_reject_and_requeue() -> None:
    broker, _, ch, pump = session()
    pump.result(ch.queue_declare("q"))
    for body in (b"a", b"b", b"c"):
        broker.publish("", "q", body)
    consumer = pump.result(ch.basic_consume("q"))
    a, b, c = (pump.result(consumer.get()) for _ in range(3))
    assert not a.redelivered
    c.nack(requeue=True)
    a.nack(requeue=True)
    b.reject(requeue=False)
    again = [pump.result(consumer.get()) for _ in range(2)]
    # Each requeued message goes straight back to the consumer, in the order of the nacks.
    assert [(m.body, m.redelivered) for m in again] == [(b"c", True), (b"a", True)]
    for m in again:
        m.ack()
    pump.flush()
    assert broker.bodies("q") == [] and not pump.server.channels[1].unacked


def test_ack_multiple_and_unknown_tag() -> None:
    broker, _, ch, pump = session()
    pump.result(ch.queue_declare("q"))
    for i in range(3):
        broker.publish("", "q", b"%d" % i)
    consumer = pump.result(ch.basic_consume("q"))
    messages = [pump.result(consumer.get()) for _ in range(3)]
    messages[1].ack(multiple=True)
    pump.flush()
    assert sorted(pump.server.channels[1].unacked) == [3]
    ch.basic_ack(99)
    pump.flush()
    error = pump.result(ch.closed)
    assert isinstance(error, ChannelClosedByBroker)
    assert (error.reply_code, error.reply_text) == (
        406,
        "PRECONDITION_FAILED - unknown delivery tag 99",
    )
    assert broker.bodies("q") == [b"2"]  # the channel's unacked message went back


def test_basic_get() -> None:
    broker, _, ch, pump = session()
    pump.result(ch.queue_declare("q"))
    broker.publish("", "q", b"one", BasicProperties(message_id="1"))
    broker.publish("", "q", b"two")
    message = pump.result(ch.basic_get("q"))
    assert (message.body, message.message_count, message.properties.message_id) == (b"one", 1, "1")
    message.ack()
    assert pump.result(ch.basic_get("q", auto_ack=True)).body == b"two"
    assert pump.result(ch.basic_get("q")) is None


def test_cancel_hands_back_buffered_messages() -> None:
    broker, _, ch, pump = session()
    pump.result(ch.queue_declare("q"))
    for i in range(5):
        broker.publish("", "q", b"%d" % i)
    consumer = pump.result(ch.basic_consume("q"))
    taken = pump.result(consumer.get())
    assert pump.result(consumer.cancel()) == 4
    assert broker.bodies("q") == [b"1", b"2", b"3", b"4"]
    taken.ack()
    pump.flush()
    assert broker.bodies("q") == [b"1", b"2", b"3", b"4"]


def test_recover_and_flow_follow_rabbitmq() -> None:
    broker, conn, ch, pump = session()
    pump.result(ch.queue_declare("q"))
    broker.publish("", "q", b"x")
    consumer = pump.result(ch.basic_consume("q"))
    pump.result(consumer.get())
    pump.result(ch.basic_recover(requeue=True))
    assert pump.result(consumer.get()).redelivered
    assert pump.result(ch.flow(True)) is True
    with pytest.raises(ConnectionClosedByBroker) as info:
        pump.result(ch.flow(False))
    assert (info.value.reply_code, info.value.reply_text) == (540, "NOT_IMPLEMENTED - active=false")
    assert not conn.is_open


# -- publishing ------------------------------------------------------------------------------------


def test_confirms_returns_and_reject_publish_nacks() -> None:
    broker, _, ch, pump = session()
    pump.result(
        ch.queue_declare("one", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    )
    pump.result(ch.confirm_delivery())
    assert pump.result(ch.basic_publish("", "one", b"fits")) is None
    with pytest.raises(NackError):
        pump.result(ch.basic_publish("", "one", b"overflows"))
    with pytest.raises(UnroutableError) as info:
        pump.result(ch.basic_publish("", "nowhere", b"lost", mandatory=True))
    assert info.value.reply_code == 312
    assert pump.result(ch.basic_publish("", "nowhere", b"dropped")) is None
    assert broker.bodies("one") == [b"fits"]


def test_held_confirms_released_with_multiple() -> None:
    broker, _, ch, pump = session()
    pump.result(
        ch.queue_declare("q", arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
    )
    pump.result(ch.confirm_delivery())
    pump.server.hold_confirms = True
    sent = [ch.basic_publish("", "q", b"%d" % i) for i in range(4)]
    pump.flush()
    assert not any(d.called for d in sent)
    written: list[bytes] = []
    write = pump.server_transport.write
    pump.server_transport.write = lambda data: (written.append(data), write(data))[1]  # type: ignore[method-assign]
    pump.server.release_confirms()
    pump.flush()
    assert parse_client_methods(b"".join(written)) == [
        (1, spec.BasicAck(delivery_tag=2, multiple=True)),
        (1, spec.BasicNack(delivery_tag=4, multiple=True, requeue=False)),
    ]
    results = []
    for d in sent:
        try:
            results.append(pump.result(d))
        except NackError:
            results.append("nack")
    assert results == [None, None, "nack", "nack"]


def test_transactions() -> None:
    broker, _, ch, pump = session()
    pump.result(ch.queue_declare("q"))
    pump.result(ch.tx_select())
    ch.basic_publish("", "q", b"kept")
    pump.result(ch.tx_commit())
    ch.basic_publish("", "q", b"rolled back")
    pump.result(ch.tx_rollback())
    assert broker.bodies("q") == [b"kept"]


def test_large_message_over_small_frames() -> None:
    broker = FakeBroker(frame_max=4096)
    _, _, ch, pump = session(broker)
    body = bytes(range(256)) * 1000
    pump.result(ch.queue_declare("big"))
    pump.result(ch.basic_publish("", "big", body))
    assert broker.bodies("big") == [body]
    assert pump.result(ch.basic_get("big", auto_ack=True)).body == body


# -- connections -----------------------------------------------------------------------------------


def test_login_and_vhost_are_checked() -> None:
    broker = FakeBroker(users={"app": "secret"}, vhosts=["/", "prod"])
    with pytest.raises(ProbableAuthenticationError):
        connected(broker, "amqp://app:wrong@localhost/")
    params = ConnectionParameters(
        virtual_host="prod", credentials=PlainCredentials("app", "secret")
    )
    conn, _ = connected(broker, params)
    assert conn.is_open
    with pytest.raises(ProbableAccessDeniedError):
        connected(broker, "amqp://app:secret@localhost/staging")


def test_broker_side_actions() -> None:
    broker, conn, ch, pump = session()
    pump.result(ch.queue_declare("q"))
    consumer = pump.result(ch.basic_consume("q", consumer_tag="c"))
    pump.server.cancel_consumer("c")
    pump.flush()
    with pytest.raises(ConsumerCancelled):
        pump.result(consumer.get())

    pump.server.block()
    pump.flush()
    assert conn.is_blocked
    d = ch.basic_publish("", "q", b"held")
    pump.flush()
    assert not d.called
    pump.server.unblock()
    pump.result(d)
    assert broker.bodies("q") == [b"held"]

    pump.server.close_channel(1, 406, "PRECONDITION_FAILED - test")
    pump.flush()
    assert pump.result(ch.closed).reply_code == 406

    pump.server.close()
    error = pump.result(conn.closed)
    assert isinstance(error, ConnectionClosedByBroker) and error.reply_code == 320
    assert pump.disconnected and broker.connections == []


def test_dropped_connection_requeues_unacked_messages() -> None:
    broker, conn, ch, pump = session()
    pump.result(ch.queue_declare("q"))
    broker.publish("", "q", b"x")
    consumer = pump.result(ch.basic_consume("q"))
    pump.result(consumer.get())
    assert broker.bodies("q") == []
    pump.server.drop()
    assert isinstance(pump.result(conn.closed), StreamLostError)
    assert [(m.body, m.redelivered) for m in broker.messages("q")] == [(b"x", True)]


def test_client_close() -> None:
    broker, conn, ch, pump = session()
    pump.result(ch.close())
    assert pump.server.channels == {}
    assert pump.result(conn.close()) is None
    assert pump.disconnected and broker.connections == []


@pytest_twisted.ensureDeferred
async def test_fake_endpoint_on_the_running_reactor() -> None:
    from twisted.internet import reactor

    broker = FakeBroker()
    conn = await connect_once(reactor, ConnectionParameters(), FakeEndpoint(broker, reactor))
    ch = await conn.channel()
    ok = await ch.queue_declare("", exclusive=True)
    await ch.confirm_delivery()
    await ch.basic_publish("", ok.queue, b"via the reactor")
    consumer = await ch.basic_consume(ok.queue)
    message = await consumer.get()
    assert message.body == b"via the reactor"
    message.ack()
    assert await conn.close() is None


def test_connect_pending_serves_code_that_dials_through_a_memory_reactor() -> None:
    """treq's StubTreq pattern: the code under test takes a reactor and dials for itself;
    a MemoryReactorClock records the dial, connect_pending hands it to the broker."""
    reactor = MemoryReactorClock()
    broker = FakeBroker()
    d = connect(reactor, "amqp://guest:guest@localhost:5672/")
    reactor.advance(0)  # the endpoint's name resolution, then connectTCP
    assert len(reactor.tcpClients) == 1
    [pump] = connect_pending(reactor, broker)
    assert reactor.tcpClients == [] and connect_pending(reactor, broker) == []
    conn = pump.result(d)
    assert conn.is_open and len(broker.connections) == 1
    ch = pump.result(conn.channel())
    pump.result(ch.queue_declare("q"))
    pump.result(ch.basic_publish("", "q", b"dialled"))
    assert broker.bodies("q") == [b"dialled"]
    assert pump.result(conn.close()) is None and pump.disconnected
    assert reactor.getDelayedCalls() == []


def test_the_module_docstring_example_passes() -> None:
    assert testing.__doc__ is not None
    example = testing.__doc__.split("::\n\n", 1)[1].split("\n\n:meth:", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(textwrap.dedent(example), "testing.__doc__", "exec"), namespace)
    result = unittest.TestResult()
    namespace["PublishTests"]("test_round_trip").run(result)
    assert result.testsRun == 1 and result.wasSuccessful(), result.errors + result.failures
