"""Streams, quorum queues and broker-side cancels against RabbitMQ, on both adapters.

A surviving stream consumer resumes after the last offset it delivered, across a
broker-side kill (no gap, nothing re-read from the start); a consumer the broker
cancels is told by default and, with ``reconsume_on_cancel``, consumes again once
the queue is back; a quorum queue's redelivery count reaches ``Message.delivery_count``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.recovery.support import (
    AMQP,
    Clients,
    Publisher,
    current,
    eventually,
    kill,
    metric,
    on_each_adapter,
    unique,
    within,
)
from txamqp091.exceptions import ChannelClosedByBroker, ConsumerCancelled
from txamqp091.message import Message

pytestmark = pytest.mark.broker


class Offsets:
    """A callback consumer that acks and records each message's stream offset."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def __call__(self, message: Message) -> None:
        assert message.stream_offset is not None
        self.seen.append(message.stream_offset)
        message.ack()

    @property
    def duplicates(self) -> int:
        return len(self.seen) - len(set(self.seen))


@on_each_adapter
async def test_a_stream_consumer_resumes_after_its_last_offset_across_a_kill(
    clients: Clients,
) -> None:
    name = unique("stream")
    stream = clients.delete_later(unique("s"))
    client, watch = await clients.start(
        f"{AMQP}?connection_name={name}", retry_policy=lambda attempt: 0.2
    )
    channel = await within(20, client.channel(), "channel")
    await within(
        20,
        channel.queue_declare(stream, durable=True, arguments={"x-queue-type": "stream"}),
        "declare the stream",
    )
    await within(20, channel.basic_qos(prefetch_count=20), "basic_qos")
    await within(20, channel.confirm_delivery(), "confirm_delivery")
    publisher = Publisher(channel, "", stream, window=20)
    await within(60, publisher.run(range(200)), "first publishes")

    offsets = Offsets()
    consumer = await within(
        20,
        channel.basic_consume(stream, offsets, arguments={"x-stream-offset": "first"}),
        "basic_consume",
    )
    await eventually(lambda: len(offsets.seen) >= 200, 30, "the first 200 offsets")
    first = min(offsets.seen)
    assert consumer.next_stream_offset == max(offsets.seen) + 1

    recovered = len(watch.recovered)
    await kill(name)
    await watch.recovered_after(recovered, 30)
    await within(60, publisher.run(range(200, 400)), "publishes after the kill")
    await eventually(lambda: len(set(offsets.seen)) >= 400, 30, "every offset")
    seen = sorted(set(offsets.seen))
    assert seen == list(range(first, first + 400)), "a gap in the offsets"
    metric(f"stream resume: {offsets.duplicates} offsets re-read after a kill (window 20)")
    # From "first" again, all 200 would come back; the resume re-reads at most what was
    # in flight (none here: everything before the kill was delivered).
    assert offsets.duplicates <= 20


async def other_connection(what: str) -> Any:
    return await within(20, current().connect(AMQP), what)


@on_each_adapter
async def test_a_broker_cancel_ends_the_consumer_by_default(clients: Clients) -> None:
    queue = unique("q")
    client, _ = await clients.start(AMQP)
    channel = await within(20, client.channel(), "channel")
    await within(20, channel.queue_declare(queue), "queue_declare")
    cancelled: list[str] = []
    channel.add_on_cancel_callback(cancelled.append)
    consumer = await within(20, channel.basic_consume(queue), "basic_consume")

    conn = await other_connection("second connection")
    try:
        ch = await within(20, conn.channel(), "channel")
        await within(20, ch.queue_delete(queue), "queue_delete")
    finally:
        await within(20, conn.close(), "close")
    await eventually(lambda: cancelled == [consumer.consumer_tag], 10, "the cancel hook")
    with pytest.raises(ConsumerCancelled):
        await within(10, consumer.get(), "get")


@on_each_adapter
async def test_reconsume_on_cancel_consumes_again_once_the_queue_is_back(
    clients: Clients,
) -> None:
    queue = clients.delete_later(unique("q"))
    client, _ = await clients.start(AMQP)
    channel = await within(20, client.channel(), "channel")
    channel.reconsume_on_cancel = True
    channel.reconsume_delay = 0.2
    await within(20, channel.queue_declare(queue), "queue_declare")
    cancelled: list[str] = []
    channel.add_on_cancel_callback(cancelled.append)
    received: list[bytes] = []

    def take(message: Message) -> None:
        received.append(message.body)
        message.ack()

    consumer = await within(20, channel.basic_consume(queue, take), "basic_consume")
    conn = await other_connection("second connection")
    try:
        ch = await within(20, conn.channel(), "channel")
        await within(20, ch.queue_delete(queue), "delete the queue under the consumer")
        await eventually(lambda: bool(cancelled), 10, "the cancel hook")
        # The channel's own declaration comes back with it (the 404 of the first try
        # reopens the channel, which replays its topology); the consumer follows.
        consumers = 0
        for _ in range(100):
            ch = await within(20, conn.channel(), "channel")
            try:
                ok = await within(20, ch.queue_declare(queue, passive=True), "passive declare")
            except ChannelClosedByBroker:  # not back yet (a 404 closes this channel)
                ok = None
            if ok is not None and ok.consumer_count == 1:
                consumers = 1
                break
            await current().sleep(0.1)
        assert consumers == 1
        await within(20, ch.basic_publish("", queue, b"back"), "publish")
    finally:
        await within(20, conn.close(), "close")
    await eventually(lambda: received == [b"back"], 10, "delivery to the same consumer")
    assert consumer.ended is None


@on_each_adapter
async def test_a_quorum_queue_redelivery_carries_its_delivery_count(clients: Clients) -> None:
    queue = clients.delete_later(unique("quorum"))
    client, _ = await clients.start(AMQP)
    channel = await within(20, client.channel(), "channel")
    await within(
        20,
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"}),
        "declare the quorum queue",
    )
    await within(20, channel.confirm_delivery(), "confirm_delivery")
    await within(20, channel.basic_publish("", queue, b"again"), "publish")
    await within(20, channel.basic_qos(prefetch_count=1), "basic_qos")
    consumer = await within(20, channel.basic_consume(queue), "basic_consume")
    first = await within(20, consumer.get(), "first delivery")
    assert first.delivery_count in (None, 0)
    first.nack(requeue=True)
    second = await within(20, consumer.get(), "redelivery")
    assert second.redelivered and second.delivery_count == 1
    second.ack()
