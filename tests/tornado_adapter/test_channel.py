"""Every channel operation of txamqp091.tornado against the real broker."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from typing import Any

import pytest

from tests.tornado_adapter.support import AMQP_URL, Names, eventually, rabbitmqctl_connection_pid
from txamqp091 import BasicProperties, Message
from txamqp091.exceptions import (
    ChannelClosedByBroker,
    ChannelClosedByClient,
    ChannelWrongStateError,
    ConnectionClosedByBroker,
    NackError,
    UnroutableError,
)
from txamqp091.tornado import Channel, Connection, Consumer, connect

pytestmark = [pytest.mark.asyncio, pytest.mark.broker]


async def message_count(ch: Channel, queue: str) -> int:
    ok = await ch.queue_declare(queue, passive=True)
    count: int = ok.message_count
    return count


async def publish_confirmed(ch: Channel, queue: str, bodies: list[bytes]) -> None:
    await asyncio.gather(*(ch.basic_publish("", queue, body) for body in bodies))


async def test_exchange_declare_bind_unbind_delete(ch: Channel, names: Names) -> None:
    source, dest, queue = names.exchange("src"), names.exchange("dst"), names.queue()
    assert await ch.exchange_declare(source, exchange_type="topic") is not None
    await ch.exchange_declare(dest, exchange_type="fanout", auto_delete=False)
    await ch.exchange_declare(source, exchange_type="topic", passive=True)
    await ch.queue_declare(queue)
    await ch.queue_bind(queue, dest)
    await ch.exchange_bind(dest, source, routing_key="orders.*")
    await ch.confirm_delivery()
    await ch.basic_publish(source, "orders.new", b"routed")
    await ch.basic_publish(source, "invoices.new", b"not routed")
    got = await ch.basic_get(queue, auto_ack=True)
    assert isinstance(got, Message) and got.body == b"routed"
    assert got.exchange == source and got.routing_key == "orders.new"
    assert await ch.basic_get(queue) is None

    await ch.exchange_unbind(dest, source, routing_key="orders.*")
    with pytest.raises(UnroutableError):
        await ch.basic_publish(source, "orders.new", b"after unbind", mandatory=True)

    await ch.exchange_delete(dest)
    await ch.exchange_delete(source, if_unused=True)
    with pytest.raises(ChannelClosedByBroker) as info:
        await ch.exchange_declare(source, passive=True)
    assert info.value.reply_code == 404


async def test_queue_declare_bind_unbind_purge_delete(ch: Channel, names: Names) -> None:
    queue = names.queue()
    ok = await ch.queue_declare(queue, durable=False, arguments={"x-max-length": 100})
    assert (ok.queue, ok.message_count, ok.consumer_count) == (queue, 0, 0)
    server_named = await ch.queue_declare("", exclusive=True)
    assert server_named.queue.startswith("amq.gen-")

    await ch.queue_bind(queue, "amq.direct", routing_key="k1")
    await ch.queue_bind(queue, "amq.direct")  # pika's default: the queue's own name
    await ch.confirm_delivery()
    await ch.basic_publish("amq.direct", "k1", b"a")
    await ch.basic_publish("amq.direct", queue, b"b")
    await ch.basic_publish("amq.direct", "k1", b"c")
    assert await message_count(ch, queue) == 3

    purged = await ch.queue_purge(queue)
    assert purged.message_count == 3
    assert await message_count(ch, queue) == 0

    await ch.queue_unbind(queue, "amq.direct", routing_key="k1")
    with pytest.raises(UnroutableError):
        await ch.basic_publish("amq.direct", "k1", b"d", mandatory=True)
    await ch.basic_publish("amq.direct", queue, b"e", mandatory=True)

    deleted = await ch.queue_delete(queue)
    assert deleted.message_count == 1
    with pytest.raises(ChannelClosedByBroker) as info:
        await ch.queue_declare(queue, passive=True)
    assert info.value.reply_code == 404


async def test_basic_qos_limits_unacked_deliveries(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    await ch.basic_qos(prefetch_count=2)
    await ch.confirm_delivery()
    await publish_confirmed(ch, queue, [b"%d" % i for i in range(5)])
    consumer = await ch.basic_consume(queue)
    first, second = await consumer.get(), await consumer.get()
    assert (first.body, second.body) == (b"0", b"1")
    assert await consumer.get(timeout=0.3) is None  # the prefetch window is full
    first.ack()
    third = await consumer.get(timeout=2)
    assert third is not None and third.body == b"2"
    assert await consumer.cancel() == 0


async def test_publish_without_confirms_completes_when_written(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    assert not ch.publisher_confirms
    props = BasicProperties(content_type="text/plain", message_id="m-1", headers={"a": 1})
    assert await ch.basic_publish("", queue, "unconfirmed", properties=props) is None
    await ch.basic_publish("", queue, bytearray(b"second"))
    received: list[Any] = []

    async def poll() -> bool:
        message = await ch.basic_get(queue, auto_ack=True)
        if message is not None:
            received.append(message)
        return len(received) == 2

    for _ in range(100):
        if await poll():
            break
        await asyncio.sleep(0.02)
    assert [m.body for m in received] == [b"unconfirmed", b"second"]
    assert received[0].properties.content_type == "text/plain"
    assert received[0].properties.message_id == "m-1"
    assert received[0].properties.headers == {"a": 1}
    with pytest.raises(TypeError):
        await ch.basic_publish("", queue, 12)  # type: ignore[arg-type]


async def test_publish_with_confirms_completes_on_the_brokers_ack(
    ch: Channel, names: Names
) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    await ch.confirm_delivery()
    assert ch.publisher_confirms
    results = await asyncio.gather(*(ch.basic_publish("", queue, b"m%d" % i) for i in range(200)))
    assert results == [None] * 200
    assert await message_count(ch, queue) == 200


async def test_confirm_nack_raises_nack_error(ch: Channel, names: Names) -> None:
    queue = names.queue()
    args = {"x-max-length": 1, "x-overflow": "reject-publish"}
    await ch.queue_declare(queue, arguments=args)
    await ch.confirm_delivery()
    await ch.basic_publish("", queue, b"fits")
    with pytest.raises(NackError):
        await ch.basic_publish("", queue, b"rejected")
    assert ch.is_open
    assert await message_count(ch, queue) == 1


async def test_mandatory_unroutable_raises_and_calls_the_return_callback(ch: Channel) -> None:
    returned: list[Message] = []
    ch.add_on_return_callback(returned.append)
    await ch.confirm_delivery()
    with pytest.raises(UnroutableError) as info:
        await ch.basic_publish("", "txamqp091.no-such-queue", b"lost", mandatory=True)
    assert info.value.reply_code == 312
    assert [m.body for m in returned] == [b"lost"]
    assert returned[0].routing_key == "txamqp091.no-such-queue"
    # Without mandatory the broker drops it silently: an ack, no error.
    assert await ch.basic_publish("", "txamqp091.no-such-queue", b"dropped") is None


async def test_basic_get_gives_a_message_then_none(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    await ch.confirm_delivery()
    await publish_confirmed(ch, queue, [b"one", b"two"])
    first = await ch.basic_get(queue)
    assert isinstance(first, Message)
    assert (first.body, first.message_count, first.redelivered) == (b"one", 1, False)
    assert first.channel is ch
    first.ack()
    second = await ch.basic_get(queue, auto_ack=True)
    assert second.body == b"two" and second.message_count == 0
    assert await ch.basic_get(queue) is None


async def test_consume_with_async_for(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    await ch.confirm_delivery()
    await publish_confirmed(ch, queue, [b"m%d" % i for i in range(50)])
    consumer = await ch.basic_consume(queue)
    assert isinstance(consumer, Consumer) and consumer.queue == queue
    bodies = []
    async for message in consumer:
        assert message.consumer_tag == consumer.consumer_tag
        bodies.append(message.body)
        message.ack()
        if len(bodies) == 50:
            break
    assert bodies == [b"m%d" % i for i in range(50)]
    assert await consumer.cancel() == 0
    # After a cancel the client asked for, iteration just ends.
    assert [m async for m in consumer] == []


async def test_consume_with_a_callback(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    seen: list[bytes] = []

    async def handle(message: Message) -> None:
        await asyncio.sleep(0)
        seen.append(message.body)
        message.ack()

    consumer = await ch.basic_consume(queue, on_message_callback=handle)
    await ch.confirm_delivery()
    await publish_confirmed(ch, queue, [b"a", b"b", b"c"])
    await eventually(lambda: len(seen) == 3)
    assert seen == [b"a", b"b", b"c"]
    assert await ch.basic_cancel(consumer.consumer_tag) == 0


async def test_get_with_timeout_returns_none(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    consumer = await ch.basic_consume(queue)
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await consumer.get(timeout=0.2) is None
    assert 0.15 <= loop.time() - start < 1.5
    await consumer.cancel()


async def test_cancel_hands_back_buffered_messages(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    await ch.confirm_delivery()
    await publish_confirmed(ch, queue, [b"m%d" % i for i in range(6)])
    consumer = await ch.basic_consume(queue)
    first = await consumer.get()
    await eventually(lambda: len(consumer._buffer) == 5)
    assert await consumer.cancel() == 5
    first.ack()
    assert not consumer.is_active
    # The five handed back are ready again in the queue.
    counts = []
    for _ in range(100):
        counts.append(await message_count(ch, queue))
        if counts[-1] == 5:
            break
        await asyncio.sleep(0.02)
    assert counts[-1] == 5


async def test_ack_nack_reject_and_message_methods(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    await ch.confirm_delivery()
    await publish_confirmed(ch, queue, [b"%d" % i for i in range(6)])

    m0 = await ch.basic_get(queue)
    ch.basic_ack(m0.delivery_tag)
    m1 = await ch.basic_get(queue)
    ch.basic_nack(m1.delivery_tag, requeue=False)  # dropped
    m2 = await ch.basic_get(queue)
    ch.basic_reject(m2.delivery_tag, requeue=True)  # back at the head
    again = await ch.basic_get(queue)
    assert again.body == b"2" and again.redelivered
    again.ack()
    m3 = await ch.basic_get(queue)
    m3.nack(requeue=False)
    m4 = await ch.basic_get(queue)
    m4.reject(requeue=False)
    m5 = await ch.basic_get(queue)
    assert m5.body == b"5"
    m5.ack()
    assert await ch.basic_get(queue) is None
    assert await message_count(ch, queue) == 0


async def test_basic_recover_redelivers_unacked_messages(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    await ch.confirm_delivery()
    await ch.basic_publish("", queue, b"recover me")
    consumer = await ch.basic_consume(queue)
    first = await consumer.get(timeout=2)
    assert first is not None and not first.redelivered
    await ch.basic_recover(requeue=True)
    again = await consumer.get(timeout=2)
    assert again is not None and again.body == b"recover me" and again.redelivered
    again.ack()
    await consumer.cancel()


async def test_tx_select_commit_rollback(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    await ch.tx_select()
    await ch.basic_publish("", queue, b"rolled back")
    await ch.tx_rollback()
    assert await message_count(ch, queue) == 0
    await ch.basic_publish("", queue, b"committed")
    await ch.tx_commit()
    assert await message_count(ch, queue) == 1
    got = await ch.basic_get(queue)
    assert got.body == b"committed"
    got.ack()
    await ch.tx_commit()
    assert await message_count(ch, queue) == 0


async def test_flow(ch: Channel) -> None:
    assert await ch.flow(True) is True
    assert ch.is_open


async def test_flow_off_is_refused_by_rabbitmq() -> None:
    # RabbitMQ does not implement Channel.Flow(active=False) from clients: it closes the
    # connection with 540. The future fails with that typed error instead of hanging.
    conn = await connect(AMQP_URL)
    ch = await conn.channel()
    with pytest.raises((ConnectionClosedByBroker, ChannelClosedByBroker)) as info:
        await ch.flow(False)
    assert getattr(info.value, "reply_code", None) == 540
    await conn.close()


async def test_channel_close(conn: Connection) -> None:
    ch = await conn.channel()
    reasons: list[BaseException] = []
    ch.add_on_close_callback(lambda channel, reason: reasons.append(reason))
    assert ch.is_open and ch.channel_number >= 1
    assert await ch.close() is None
    assert not ch.is_open and ch.is_closed
    assert await ch.closed is None
    assert len(reasons) == 1 and isinstance(reasons[0], ChannelClosedByClient)
    assert await ch.close() is None  # closing twice is harmless
    with pytest.raises(ChannelWrongStateError):
        await ch.queue_declare("x")
    with pytest.raises(ChannelWrongStateError):
        await ch.basic_publish("", "x", b"")
    other = await conn.channel()
    assert other.is_open and await other.queue_declare("", exclusive=True)


async def test_broker_closes_the_channel(conn: Connection) -> None:
    ch = await conn.channel()
    closed = ch.closed
    reasons: list[BaseException] = []
    ch.add_on_close_callback(lambda channel, reason: reasons.append(reason))
    with pytest.raises(ChannelClosedByBroker) as info:
        await ch.queue_declare("txamqp091.test.tornado.missing", passive=True)
    assert info.value.reply_code == 404
    error = await ch.closed
    assert error is info.value and await closed is error
    assert reasons == [error]
    assert not ch.is_open
    with pytest.raises(ChannelWrongStateError):
        await ch.queue_declare("x")
    assert conn.is_open
    fresh = await conn.channel()
    assert await fresh.flow(True) is True


async def test_connection_close_fails_pending_futures_with_typed_errors(names: Names) -> None:
    conn = await connect(AMQP_URL)
    ch = await conn.channel()
    queue = names.queue()
    await ch.queue_declare(queue)
    consumer = await ch.basic_consume(queue)
    waiting = asyncio.ensure_future(consumer.get())
    opening = conn.channel()
    ch_closed = ch.closed
    conn_closed = conn.closed
    await asyncio.sleep(0)
    assert await conn.close() is None
    with pytest.raises(ChannelClosedByClient):
        await waiting
    with pytest.raises((ChannelClosedByClient, ChannelWrongStateError)):
        await opening
    assert await ch_closed is None and await conn_closed is None
    assert not conn.is_open and not ch.is_open
    with pytest.raises(ChannelWrongStateError):
        await ch.basic_get(queue)
    with pytest.raises(Exception) as info:
        await conn.channel()
    assert "closed" in str(info.value)


async def test_broker_forcing_the_connection_closed_fails_pending_futures() -> None:
    name = f"txamqp091-test-forced-{uuid.uuid4().hex}"
    conn = await connect(f"{AMQP_URL}?connection_name={name}")
    ch = await conn.channel()
    ok = await ch.queue_declare("", exclusive=True)
    consumer = await ch.basic_consume(ok.queue)
    waiting = asyncio.ensure_future(consumer.get())
    closed = conn.closed
    try:
        pid = await asyncio.to_thread(rabbitmqctl_connection_pid, name)
        assert pid is not None, f"connection {name} not listed by rabbitmqctl"
        await asyncio.to_thread(
            subprocess.run,
            ["rabbitmqctl", "-q", "close_connection", pid, "test forced close"],
            capture_output=True,
            timeout=30,
        )
        error = await asyncio.wait_for(closed, 10)
    finally:
        if conn.is_open:
            await conn.close()
    assert isinstance(error, ConnectionClosedByBroker) and error.reply_code == 320
    assert "test forced close" in error.reply_text
    with pytest.raises(ConnectionClosedByBroker):
        await waiting
    assert await ch.closed is error
    assert not conn.is_open


async def test_cancelling_a_get_does_not_lose_the_next_message(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    consumer = await ch.basic_consume(queue)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(consumer.get(), 0.1)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(consumer.get(timeout=5), 0.1)
    await ch.basic_publish("", queue, b"after cancel")
    message = await consumer.get(timeout=2)
    assert message is not None and message.body == b"after cancel"
    message.ack()
    assert await consumer.cancel() == 0


async def test_cancelling_a_pending_rpc_does_not_desynchronise_the_channel(
    ch: Channel, names: Names
) -> None:
    first, second, third = names.queue("a"), names.queue("b"), names.queue("c")
    task = asyncio.ensure_future(ch.queue_declare(first))
    await asyncio.sleep(0)  # the task now awaits the reply
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The next reply belongs to the next request, not to the cancelled one.
    ok = await ch.queue_declare(second)
    assert ok.queue == second
    # Cancelled before it even left: the declare is still sent and answered in order.
    early = ch.queue_declare(third)
    early.cancel()
    purge = await ch.queue_purge(second)
    assert purge.message_count == 0
    assert (await ch.queue_declare(first, passive=True)).queue == first
    assert (await ch.queue_declare(third, passive=True)).queue == third
    assert ch.is_open
