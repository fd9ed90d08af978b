"""The blocking channel against the real broker: pika's methods, pika's return values."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.blocking_adapter.support import Names, message_count
from txamqp091 import blocking
from txamqp091.blocking import exceptions

pytestmark = pytest.mark.broker


def test_queue_declare_returns_pika_method_frame(
    ch: blocking.BlockingChannel, names: Names
) -> None:
    queue = names.queue()
    frame = ch.queue_declare(queue, auto_delete=True)
    assert frame.channel_number == ch.channel_number
    assert frame.method.queue == queue
    assert (frame.method.message_count, frame.method.consumer_count) == (0, 0)
    ch.basic_publish("", queue, b"one")
    ch.basic_publish("", queue, "two")  # str bodies are UTF-8 encoded, as pika does
    assert message_count(ch, queue, 2) == 2
    assert ch.queue_purge(queue).method.message_count == 2


def test_server_named_queue(ch: blocking.BlockingChannel) -> None:
    frame = ch.queue_declare("", exclusive=True)
    assert frame.method.queue.startswith("amq.gen-")


def test_basic_get_returns_a_triple_or_nones(ch: blocking.BlockingChannel, names: Names) -> None:
    queue = names.queue()
    ch.queue_declare(queue)
    assert ch.basic_get(queue) == (None, None, None)
    props = blocking.BasicProperties(content_type="text/plain", headers={"k": "v"})
    ch.basic_publish("", queue, b"body", properties=props)
    ch.basic_publish("", queue, b"second")
    method, properties, body = ch.basic_get(queue)
    assert body == b"body"
    assert method is not None and properties is not None
    assert properties.content_type == "text/plain"
    assert properties.headers == {"k": "v"}
    assert (method.exchange, method.routing_key, method.redelivered) == ("", queue, False)
    assert method.message_count == 1
    ch.basic_ack(method.delivery_tag)
    assert ch.basic_get(queue, auto_ack=True)[2] == b"second"
    assert message_count(ch, queue, 0) == 0


def test_exchanges_bindings_and_routing(ch: blocking.BlockingChannel, names: Names) -> None:
    exchange = names.exchange()
    queue = names.queue()
    ch.exchange_declare(exchange, exchange_type="topic")
    ch.queue_declare(queue)
    ch.queue_bind(queue, exchange, routing_key="a.*")
    ch.basic_publish(exchange, "a.b", b"routed")
    ch.basic_publish(exchange, "b.b", b"dropped")
    assert ch.basic_get(queue, auto_ack=True)[2] == b"routed"
    assert ch.basic_get(queue, auto_ack=True) == (None, None, None)
    ch.queue_unbind(queue, exchange, routing_key="a.*")
    ch.basic_publish(exchange, "a.b", b"after unbind")
    assert ch.basic_get(queue, auto_ack=True) == (None, None, None)


def test_broker_error_closes_channel_with_pika_error(
    conn: blocking.BlockingConnection, names: Names
) -> None:
    ch = conn.channel()
    with pytest.raises(exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare(names.queue("missing"), passive=True)
    assert info.value.reply_code == 404
    assert ch.is_closed
    with pytest.raises(exceptions.ChannelWrongStateError):  # as pika: "channel is closed"
        ch.queue_declare(names.queue())
    with pytest.raises(exceptions.ChannelWrongStateError, match="closed: .*404"):
        ch.basic_publish("", names.queue(), b"on a closed channel")  # says why it closed
    # The connection is fine: a new channel works.
    assert conn.channel().queue_declare("", exclusive=True).method.queue


def test_publish_and_consume_with_acks(ch: blocking.BlockingChannel, names: Names) -> None:
    queue = names.queue()
    ch.queue_declare(queue)
    ch.basic_qos(prefetch_count=10)
    for i in range(50):
        ch.basic_publish("", queue, f"m{i}".encode())
    seen: list[bytes] = []

    def on_message(channel: Any, method: Any, properties: Any, body: bytes) -> None:
        assert channel is ch
        seen.append(body)
        channel.basic_ack(method.delivery_tag)
        if len(seen) == 50:
            channel.stop_consuming()

    tag = ch.basic_consume(queue, on_message)
    assert tag in ch.consumer_tags
    ch.start_consuming()
    assert seen == [f"m{i}".encode() for i in range(50)]
    assert ch.consumer_tags == []
    assert message_count(ch, queue, 0) == 0


def test_consume_generator_and_inactivity(ch: blocking.BlockingChannel, names: Names) -> None:
    queue = names.queue()
    ch.queue_declare(queue)
    ch.basic_publish("", queue, b"a")
    ch.basic_publish("", queue, b"b")
    got: list[Any] = []
    for method, properties, body in ch.consume(queue, inactivity_timeout=0.3):
        got.append(body)
        if method is None:
            break
        assert properties is not None
        ch.basic_ack(method.delivery_tag)
    assert got == [b"a", b"b", None]
    assert ch.cancel() == 0
    assert message_count(ch, queue, 0) == 0


def test_cancel_returns_requeued_count(ch: blocking.BlockingChannel, names: Names) -> None:
    queue = names.queue()
    ch.queue_declare(queue)
    for i in range(5):
        ch.basic_publish("", queue, f"m{i}".encode())
    generator = ch.consume(queue)
    method, _, body = next(generator)
    assert body == b"m0"
    # Wait until the other four are held by the generator, undelivered.
    ch.connection.process_data_events(0.2)
    while ch.get_waiting_message_count() < 4:
        ch.connection.process_data_events(0.1)
    assert ch.cancel() == 4
    assert list(generator) == []  # the generator ends
    ch.basic_ack(method.delivery_tag)
    assert message_count(ch, queue, 4) == 4


def test_stop_consuming_ends_the_generator(ch: blocking.BlockingChannel, names: Names) -> None:
    queue = names.queue()
    ch.queue_declare(queue)
    for i in range(3):
        ch.basic_publish("", queue, f"m{i}".encode())
    bodies = []
    for _method, _, body in ch.consume(queue, auto_ack=True):
        bodies.append(body)
        if len(bodies) == 2:
            ch.stop_consuming()
    assert bodies[:2] == [b"m0", b"m1"]
    assert ch.consumer_tags == []


def test_stop_consuming_from_another_thread_wakes_the_generator(
    ch: blocking.BlockingChannel, names: Names
) -> None:
    queue = names.queue()
    ch.queue_declare(queue)
    timer = threading.Timer(0.3, ch.stop_consuming)
    timer.start()
    try:
        assert list(ch.consume(queue)) == []
    finally:
        timer.join()


def test_basic_cancel_requeues_or_returns_pending(
    ch: blocking.BlockingChannel, names: Names
) -> None:
    """pika: an auto_ack=False consumer's undispatched messages are requeued and [] comes
    back; an auto_ack=True consumer's are returned as (method, properties, body)."""
    queue = names.queue()
    ch.queue_declare(queue)
    for i in range(3):
        ch.basic_publish("", queue, f"m{i}".encode())
    calls: list[bytes] = []
    tag = ch.basic_consume(queue, lambda c, m, p, b: calls.append(b))
    # Deliveries arrive but nobody pumps events, so no callback runs.
    ch.queue_declare(queue, passive=True)
    assert ch.basic_cancel(tag) == []
    ch.connection.process_data_events(0.1)
    assert calls == []
    assert message_count(ch, queue, 3) == 3

    tag = ch.basic_consume(queue, lambda c, m, p, b: calls.append(b), auto_ack=True)
    while ch.queue_declare(queue, passive=True).method.message_count:
        pass
    pending = ch.basic_cancel(tag)
    assert [body for _, _, body in pending] == [b"m0", b"m1", b"m2"]
    method, properties, _ = pending[0]
    assert method.consumer_tag == tag and properties is not None
    ch.connection.process_data_events(0.1)
    assert calls == []
    assert ch.basic_cancel("unknown-tag") == []


def test_add_callback_threadsafe_runs_in_consuming_thread_and_acks(
    conn: blocking.BlockingConnection, ch: blocking.BlockingChannel, names: Names
) -> None:
    """A worker thread hands its ack back with add_callback_threadsafe; the ack takes effect."""
    queue = names.queue()
    ch.queue_declare(queue)
    ch.basic_publish("", queue, b"work")
    consuming_thread = threading.get_ident()
    ran_in: list[int] = []
    workers: list[threading.Thread] = []

    def ack(tag: int) -> None:
        ran_in.append(threading.get_ident())
        ch.basic_ack(tag)
        ch.stop_consuming()

    def work(tag: int) -> None:
        conn.add_callback_threadsafe(lambda: ack(tag))

    def on_message(channel: Any, method: Any, properties: Any, body: bytes) -> None:
        worker = threading.Thread(target=work, args=(method.delivery_tag,))
        workers.append(worker)
        worker.start()

    ch.basic_consume(queue, on_message)
    ch.start_consuming()
    for worker in workers:
        worker.join()
    assert ran_in == [consuming_thread]
    # Acked: closing the channel does not requeue it.
    ch.close()
    check = conn.channel()
    assert message_count(check, queue, 0) == 0


def test_confirm_delivery_raises_unroutable_and_stays_usable(
    ch: blocking.BlockingChannel, names: Names
) -> None:
    queue = names.queue()
    ch.queue_declare(queue)
    ch.confirm_delivery()
    nowhere = names.queue("nowhere")
    props = blocking.BasicProperties(message_id="m1")
    with pytest.raises(exceptions.UnroutableError) as info:
        ch.basic_publish("", nowhere, b"x", properties=props, mandatory=True)
    # pika's shape: .messages holds ReturnedMessage(method=Basic.Return, properties, body).
    (returned,) = info.value.messages
    assert returned.method.reply_code == 312 and returned.method.reply_text == "NO_ROUTE"
    assert (returned.method.exchange, returned.method.routing_key) == ("", nowhere)
    assert returned.properties.message_id == "m1" and returned.body == b"x"
    ch.basic_publish("", queue, b"confirmed", mandatory=True)
    assert message_count(ch, queue, 1) == 1


def test_nack_error_when_the_queue_overflows(ch: blocking.BlockingChannel, names: Names) -> None:
    queue = names.queue()
    ch.queue_declare(queue, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    ch.confirm_delivery()
    ch.basic_publish("", queue, b"fits")
    with pytest.raises(exceptions.NackError) as info:
        ch.basic_publish("", queue, b"rejected")
    assert not info.value.messages  # as pika, for a message that was not also returned


def test_return_callback_runs_when_pumped(ch: blocking.BlockingChannel, names: Names) -> None:
    returned: list[Any] = []
    ch.add_on_return_callback(lambda c, method, props, body: returned.append((method, body)))
    ch.basic_publish("", names.queue("nowhere"), b"lost", mandatory=True)
    while not returned:
        ch.connection.process_data_events(0.1)
    method, body = returned[0]
    assert body == b"lost"
    assert method.routing_key.startswith("txamqp091.test.blocking.nowhere.")
    assert (method.reply_code, method.reply_text) == (312, "NO_ROUTE")  # as pika


def test_publish_batch_in_confirm_mode(ch: blocking.BlockingChannel, names: Names) -> None:
    queue = names.queue()
    ch.queue_declare(queue)
    ch.confirm_delivery()
    ch.publish_batch([("", queue, f"m{i}".encode(), None, False) for i in range(100)])
    assert message_count(ch, queue, 100) == 100


def test_with_blocks_close(names: Names) -> None:
    from tests.blocking_adapter.support import AMQP_URL

    with blocking.BlockingConnection(AMQP_URL) as conn:
        with conn.channel() as ch:
            ch.queue_declare("", exclusive=True)
        assert ch.is_closed
        assert conn.is_open
    assert conn.is_closed
    with pytest.raises(exceptions.ConnectionWrongStateError):
        conn.channel()


def test_call_later_sleep_and_remove_timeout(conn: blocking.BlockingConnection) -> None:
    fired: list[str] = []
    conn.call_later(0.05, lambda: fired.append("a"))
    cancelled = conn.call_later(0.05, lambda: fired.append("b"))
    conn.remove_timeout(cancelled)
    conn.sleep(0.3)
    assert fired == ["a"]
    conn.process_data_events(0)
    assert fired == ["a"]


def test_start_consuming_inside_a_callback_is_a_reentrancy_error(
    conn: blocking.BlockingConnection, ch: blocking.BlockingChannel
) -> None:
    errors: list[BaseException] = []

    def nested() -> None:
        try:
            ch.start_consuming()
        except exceptions.ReentrancyError as exc:
            errors.append(exc)

    conn.add_callback_threadsafe(nested)
    conn.process_data_events(1)
    assert len(errors) == 1


def test_callback_exceptions_propagate_to_the_pumping_call(
    conn: blocking.BlockingConnection,
) -> None:
    def boom() -> None:
        raise KeyError("from a callback")

    conn.add_callback_threadsafe(boom)
    with pytest.raises(KeyError):
        conn.process_data_events(1)
    conn.process_data_events(0)  # and the connection carries on


def test_broker_cancel_ends_start_consuming_and_calls_back(
    conn: blocking.BlockingConnection, ch: blocking.BlockingChannel, names: Names
) -> None:
    queue = names.queue()
    ch.queue_declare(queue)
    cancelled: list[Any] = []
    ch.add_on_cancel_callback(cancelled.append)
    tag = ch.basic_consume(queue, lambda c, m, p, b: None)
    other = conn.channel()
    threading.Timer(0.2, lambda: other.queue_delete(queue)).start()
    ch.start_consuming()  # returns: the broker cancelled the only consumer
    while not cancelled:
        conn.process_data_events(0.1)
    assert cancelled[0].method.consumer_tag == tag
    assert ch.consumer_tags == []
    assert ch.is_open


def test_channel_closed_by_broker_ends_start_consuming_with_its_error(
    conn: blocking.BlockingConnection, ch: blocking.BlockingChannel, names: Names
) -> None:
    queue = names.queue()
    ch.queue_declare(queue)
    ch.basic_consume(queue, lambda c, m, p, b: None)

    def fail_the_channel() -> None:
        with pytest.raises(exceptions.ChannelClosedByBroker):
            ch.queue_declare(names.queue("missing"), passive=True)

    threading.Timer(0.2, fail_the_channel).start()
    with pytest.raises(exceptions.ChannelClosedByBroker) as info:
        ch.start_consuming()
    assert info.value.reply_code == 404
    with pytest.raises(exceptions.ChannelWrongStateError):
        ch.basic_publish("", queue, b"x")


def test_transactions(ch: blocking.BlockingChannel, names: Names) -> None:
    queue = names.queue()
    ch.queue_declare(queue)
    assert ch.tx_select().method is not None
    ch.basic_publish("", queue, b"rolled back")
    ch.tx_rollback()
    ch.basic_publish("", queue, b"committed")
    ch.tx_commit()
    assert ch.basic_get(queue, auto_ack=True)[2] == b"committed"
    assert ch.basic_get(queue, auto_ack=True) == (None, None, None)


def test_positional_connection_parameters_as_pika(names: Names) -> None:
    from tests.blocking_adapter.support import AMQP_URL

    url = blocking.URLParameters(AMQP_URL)
    params = blocking.ConnectionParameters(
        url.host, url.port, "/", blocking.PlainCredentials("guest", "guest")
    )
    assert (params.host, params.port, params.virtual_host) == (url.host, url.port, "/")
    with blocking.BlockingConnection(params) as conn:
        assert conn.channel().queue_declare("", exclusive=True).method.queue
    with pytest.raises(ValueError, match="host"):
        blocking.ConnectionParameters("localhost", host="localhost")


def test_heartbeats_need_no_pumping() -> None:
    """The loop thread answers heartbeats while the user's thread does something else
    for several heartbeat intervals (pika's blocking connection would be dropped)."""
    from tests.blocking_adapter.support import AMQP_URL

    url = AMQP_URL.rstrip("/") + "/%2F?heartbeat=1"
    with blocking.BlockingConnection(url) as conn:
        ch = conn.channel()
        time.sleep(3.5)  # not process_data_events: nobody pumps
        assert conn.is_open
        assert ch.queue_declare("", exclusive=True).method.queue


def test_pika_module_names() -> None:
    import pika

    for name in (
        "BlockingConnection",
        "ConnectionParameters",
        "URLParameters",
        "PlainCredentials",
        "SSLOptions",
        "BasicProperties",
        "DeliveryMode",
    ):
        assert hasattr(blocking, name), name
        assert hasattr(pika, name), name
    assert blocking.credentials.PlainCredentials is blocking.PlainCredentials
    assert blocking.spec.PERSISTENT_DELIVERY_MODE == pika.spec.PERSISTENT_DELIVERY_MODE
    assert blocking.DeliveryMode.Persistent == pika.DeliveryMode.Persistent.value
    missing = [
        name
        for name in dir(pika.exceptions)
        if name.endswith(("Error", "Closed", "Cancelled", "Timeout", "ByBroker", "ByClient"))
        and not hasattr(blocking.exceptions, name)
    ]
    # pika's names for conditions txamqp091 reports differently (or never meets).
    assert set(missing) <= {
        "BodyTooLongError",
        "ChannelError",
        "ConnectionOpenAborted",
        "DuplicateGetOkCallback",
        "IncompatibleProtocolError",
        "InvalidChannelNumber",
        "InvalidFieldTypeException",
        "InvalidFrameError",
        "InvalidMaximumFrameSize",
        "InvalidMinimumFrameSize",
        "MethodNotImplemented",
        "NoFreeChannels",
        "ProtocolSyntaxError",
        "ProtocolVersionMismatch",
        "ShortStringTooLong",
        "UnexpectedFrameError",
        "UnsupportedAMQPFieldException",
    }, missing


def test_channel_with_an_explicit_number(conn: blocking.BlockingConnection, names: Names) -> None:
    ch = conn.channel(channel_number=42)
    assert ch.channel_number == 42 and int(ch) == 42
    queue = names.queue()
    assert ch.queue_declare(queue).channel_number == 42
    with pytest.raises(exceptions.ChannelWrongStateError, match="in use"):
        conn.channel(42)
    with pytest.raises(ValueError, match="channel_id"):
        conn.channel(0)
    assert conn.channel().channel_number == 1  # the lowest free number, as before
    ch.close()
    assert conn.channel(42).is_open  # free again once closed


def test_spec_names_pika_code_annotates_and_tests_with(
    ch: blocking.BlockingChannel, names: Names
) -> None:
    pika = pytest.importorskip("pika")
    from txamqp091.blocking.spec import Basic

    for name in ("Deliver", "GetOk", "Return", "Cancel"):
        assert hasattr(pika.spec.Basic, name) and hasattr(Basic, name), name
    queue = names.queue()
    ch.queue_declare(queue)
    ch.basic_publish("", queue, b"x")
    method, _, _ = ch.basic_get(queue, auto_ack=True)
    while method is None:
        method, _, _ = ch.basic_get(queue, auto_ack=True)
    assert isinstance(method, Basic.GetOk) and isinstance(method, Basic.Deliver)
    ch.queue_delete(queue)
