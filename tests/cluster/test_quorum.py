"""Quorum queues, single active consumer and consumer priorities, on the shared broker.

The arguments pass through untouched (``x-queue-type``, ``x-single-active-consumer``
as queue arguments, ``x-priority`` as a consume argument); these tests check that
RabbitMQ got them by what it does with them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread

from tests.integration.faults import rabbitmqctl
from txamqp091.message import Message
from txamqp091.tornado import connect as tornado_connect
from txamqp091.twisted import connect

pytestmark = pytest.mark.broker

AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
QUORUM = {"x-queue-type": "quorum"}

T = TypeVar("T")


def unique(kind: str) -> str:
    return f"txamqp091-quorum-{kind}-{uuid.uuid4().hex[:10]}"


async def within(seconds: float, awaitable: Awaitable[T], what: str) -> T:
    d: Deferred[T] = defer.ensureDeferred(_wrap(awaitable))
    d.addTimeout(seconds, reactor)  # type: ignore[arg-type]
    try:
        return await d
    except defer.TimeoutError:
        raise AssertionError(f"{what} did not finish within {seconds} s") from None


async def _wrap(awaitable: Awaitable[T]) -> T:
    return await awaitable


def queue_type(queue: str) -> str | None:
    out = rabbitmqctl("list_queues", "-q", "--no-table-headers", "name", "type").stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == queue:
            return fields[1]
    return None


@pytest_twisted.ensureDeferred
async def test_quorum_queue_declares_and_counts_deliveries() -> None:
    queue = unique("q")
    conn = await within(20, connect(reactor, AMQP), "connect")
    try:
        ch = await within(10, conn.channel(), "channel")
        ok = await within(20, ch.queue_declare(queue, durable=True, arguments=QUORUM), "declare")
        assert ok.queue == queue
        assert await deferToThread(queue_type, queue) == "quorum"
        await within(10, ch.basic_qos(prefetch_count=1), "qos")
        await within(10, ch.basic_publish("", queue, b"x"), "publish")
        consumer = await within(10, ch.basic_consume(queue), "consume")
        counts: list[Any] = []
        for _ in range(3):
            message: Message = await within(10, consumer.get(), "get")
            counts.append((message.properties.headers or {}).get("x-delivery-count"))
            message.nack(requeue=True)
        # RabbitMQ counts the returns of a quorum queue's message: none on the first delivery.
        assert counts == [None, 1, 2]
        await within(10, consumer.cancel(), "cancel")
        await within(10, ch.queue_delete(queue), "delete")
    finally:
        await within(10, conn.close(), "close")


@pytest_twisted.ensureDeferred
async def test_message_delivery_count_reads_x_delivery_count() -> None:
    queue = unique("q")
    conn = await within(20, connect(reactor, AMQP), "connect")
    try:
        ch = await within(10, conn.channel(), "channel")
        await within(20, ch.queue_declare(queue, durable=True, arguments=QUORUM), "declare")
        await within(10, ch.basic_publish("", queue, b"x"), "publish")
        consumer = await within(10, ch.basic_consume(queue), "consume")
        counts = []
        for _ in range(3):
            message = await within(10, consumer.get(), "get")
            counts.append(message.delivery_count)
            message.nack(requeue=True)
        # None: the first delivery carries no x-delivery-count (RabbitMQ 3.10).
        assert counts == [None, 1, 2]
        await within(10, consumer.cancel(), "cancel")
        await within(10, ch.queue_delete(queue), "delete")
    finally:
        await within(10, conn.close(), "close")


@pytest.mark.asyncio
async def test_single_active_consumer_gets_everything_until_it_cancels() -> None:
    queue = unique("sac")
    conn = await asyncio.wait_for(tornado_connect(AMQP), 20)
    try:
        ch = await conn.channel()
        arguments = {**QUORUM, "x-single-active-consumer": True}
        await ch.queue_declare(queue, durable=True, arguments=arguments)
        await ch.basic_qos(prefetch_count=50)
        active = await ch.basic_consume(queue)
        waiting = await ch.basic_consume(queue)
        await ch.confirm_delivery()
        await asyncio.gather(*(ch.basic_publish("", queue, b"%d" % i) for i in range(5)))
        for i in range(5):
            message = await asyncio.wait_for(active.get(), 10)
            assert message.body == b"%d" % i
            message.ack()
        assert await waiting.get(timeout=0.3) is None
        await active.cancel()
        await ch.basic_publish("", queue, b"5")
        message = await asyncio.wait_for(waiting.get(), 10)
        assert message.body == b"5"
        message.ack()
        await waiting.cancel()
        await ch.queue_delete(queue)
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_the_higher_priority_consumer_gets_the_messages_while_it_has_room() -> None:
    queue = unique("prio")
    conn = await asyncio.wait_for(tornado_connect(AMQP), 20)
    try:
        ch = await conn.channel()
        await ch.queue_declare(queue, durable=True, arguments=QUORUM)
        await ch.basic_qos(prefetch_count=50)
        low = await ch.basic_consume(queue, arguments={"x-priority": 0})
        high = await ch.basic_consume(queue, arguments={"x-priority": 10})
        await ch.confirm_delivery()
        await asyncio.gather(*(ch.basic_publish("", queue, b"%d" % i) for i in range(10)))
        got = []
        for _ in range(10):
            message = await asyncio.wait_for(high.get(), 10)
            got.append(int(message.body))
            message.ack()
        assert got == list(range(10))
        assert await low.get(timeout=0.3) is None
        await high.cancel()
        await low.cancel()
        await ch.queue_delete(queue)
    finally:
        await conn.close()
