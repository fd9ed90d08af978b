"""Streams (``x-queue-type: stream``): declare, and consume from each kind of ``x-stream-offset``.

On the shared broker (a stream needs no cluster). A stream consumer RabbitMQ
would refuse (no prefetch, ``auto_ack``, an offset it does not parse) is refused
by the client first with a ``ValueError`` naming the culprit, and the channel
stays open: the broker's refusal would have closed it.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from txamqp091.client.streams import check_stream_consume
from txamqp091.tornado import connect as tornado_connect
from txamqp091.twisted import connect
from txamqp091.twisted.channel import Channel

AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
STREAM = {"x-queue-type": "stream"}

T = TypeVar("T")


def unique(kind: str) -> str:
    return f"txamqp091-stream-{kind}-{uuid.uuid4().hex[:10]}"


# -- the checks alone ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "offset",
    ["first", "last", "next", 0, 7, 2**40, datetime.datetime(2026, 1, 1), "7D", "30m", "1h"],
)
def test_offsets_rabbitmq_takes_pass(offset: Any) -> None:
    assert check_stream_consume({"x-stream-offset": offset}, False, 1) is None


@pytest.mark.parametrize("offset", ["start", "", "7 days", -1, True, 1.5, None, b"first"])
def test_other_offsets_are_refused_naming_the_argument(offset: Any) -> None:
    error = check_stream_consume({"x-stream-offset": offset}, False, 1)
    assert isinstance(error, ValueError) and "x-stream-offset" in str(error)


def test_a_stream_consumer_needs_a_prefetch_and_manual_acks() -> None:
    no_prefetch = check_stream_consume({"x-stream-offset": "first"}, False, 0)
    assert isinstance(no_prefetch, ValueError) and "prefetch_count" in str(no_prefetch)
    auto_ack = check_stream_consume({"x-stream-offset": "first"}, True, 10)
    assert isinstance(auto_ack, ValueError) and "auto_ack" in str(auto_ack)


def test_other_consumers_are_not_checked() -> None:
    assert check_stream_consume(None, True, 0) is None
    assert check_stream_consume({"x-priority": 5}, True, 0) is None


# -- against the broker -------------------------------------------------------------------------


async def within(seconds: float, awaitable: Awaitable[T], what: str) -> T:
    d: Deferred[T] = defer.ensureDeferred(_wrap(awaitable))
    d.addTimeout(seconds, reactor)  # type: ignore[arg-type]
    try:
        return await d
    except defer.TimeoutError:
        raise AssertionError(f"{what} did not finish within {seconds} s") from None


async def _wrap(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def publish(ch: Channel, queue: str, ids: range) -> None:
    await within(
        30, defer.gatherResults([ch.basic_publish("", queue, b"%d" % i) for i in ids]), "pub"
    )


async def read(
    ch: Channel, queue: str, offset: Any, last: int | None, quiet: float = 0.5
) -> list[tuple[int, int]]:
    """(id, stream offset) of what a consumer from ``offset`` gets: up to id ``last``
    (then ``quiet`` seconds more, to catch extras), or all it gets before ``quiet``
    seconds pass with nothing when ``last`` is None."""
    consumer = await within(10, ch.basic_consume(queue, arguments={"x-stream-offset": offset}), "c")
    got: list[tuple[int, int]] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        done = last is not None and any(i == last for i, _ in got)
        message = await within(
            20, consumer.get(timeout=quiet if last is None or done else 5), "get"
        )
        if message is None:
            break
        headers = message.properties.headers or {}
        got.append((int(message.body), int(headers["x-stream-offset"])))
        message.ack()
    await within(10, consumer.cancel(), "cancel")
    return got


@pytest.mark.broker
@pytest_twisted.ensureDeferred
async def test_stream_declare_and_consume_from_each_offset_kind() -> None:
    queue = unique("s")
    conn = await within(20, connect(reactor, AMQP), "connect")
    try:
        ch = await within(10, conn.channel(), "channel")
        await within(10, ch.queue_declare(queue, durable=True, arguments=STREAM), "declare")
        await within(10, ch.confirm_delivery(), "confirm")
        await within(10, ch.basic_qos(prefetch_count=20), "qos")
        await publish(ch, queue, range(10))

        first = await read(ch, queue, "first", last=9)
        assert first == [(i, i) for i in range(10)]
        numeric = await read(ch, queue, 6, last=9)
        assert [i for i, _ in numeric] == [6, 7, 8, 9]
        assert all(offset == i for i, offset in numeric)
        tail = await read(ch, queue, "last", last=9)
        # The last chunk: a non-empty run of the newest messages.
        assert tail and [i for i, _ in tail] == list(range(tail[0][0], 10))

        consumer = await within(
            10, ch.basic_consume(queue, arguments={"x-stream-offset": "next"}), "consume next"
        )
        assert await within(10, consumer.get(timeout=0.5), "get") is None
        await publish(ch, queue, range(10, 13))
        new = [await within(10, consumer.get(timeout=5), "get") for _ in range(3)]
        assert [int(m.body) for m in new if m is not None] == [10, 11, 12]
        for m in new:
            assert m is not None
            m.ack()
        await within(10, consumer.cancel(), "cancel")

        # A timestamp (whole seconds) attaches at the first chunk written at or after it.
        await deferLater(reactor, 1.1, lambda: None)  # type: ignore[arg-type]
        since = datetime.datetime.now(datetime.timezone.utc)
        await deferLater(reactor, 1.1, lambda: None)  # type: ignore[arg-type]
        await publish(ch, queue, range(13, 16))
        recent = await read(ch, queue, since, last=15)
        assert [i for i, _ in recent] == [13, 14, 15]

        # An interval back from now: everything here is younger than an hour.
        hour = await read(ch, queue, "1h", last=15)
        assert [i for i, _ in hour] == list(range(16))
        await within(10, ch.queue_delete(queue), "delete")
    finally:
        await within(10, conn.close(), "close")


@pytest.mark.broker
@pytest_twisted.ensureDeferred
async def test_a_stream_consumer_the_broker_would_refuse_is_refused_first() -> None:
    queue = unique("s")
    conn = await within(20, connect(reactor, AMQP), "connect")
    try:
        ch = await within(10, conn.channel(), "channel")
        await within(10, ch.queue_declare(queue, durable=True, arguments=STREAM), "declare")
        for arguments, auto_ack, culprit in [
            ({"x-stream-offset": "first"}, False, "prefetch_count"),
            ({"x-stream-offset": "first"}, True, "auto_ack"),
            ({"x-stream-offset": "beginning"}, False, "x-stream-offset"),
        ]:
            with pytest.raises(ValueError, match=culprit):
                await within(
                    10, ch.basic_consume(queue, auto_ack=auto_ack, arguments=arguments), "c"
                )
        # A global prefetch is not a consumer prefetch: RabbitMQ still refuses.
        await within(10, ch.basic_qos(prefetch_count=10, global_qos=True), "qos")
        with pytest.raises(ValueError, match="prefetch_count"):
            await within(10, ch.basic_consume(queue, arguments={"x-stream-offset": 0}), "c")
        assert ch.is_open
        await within(10, ch.basic_qos(prefetch_count=10), "qos")
        consumer = await within(10, ch.basic_consume(queue, arguments={"x-stream-offset": 0}), "c")
        await within(10, consumer.cancel(), "cancel")
        await within(10, ch.queue_delete(queue), "delete")
    finally:
        await within(10, conn.close(), "close")


@pytest.mark.broker
@pytest.mark.asyncio
async def test_stream_consume_on_tornado() -> None:
    queue = unique("s")
    conn = await asyncio.wait_for(tornado_connect(AMQP), 20)
    try:
        ch = await conn.channel()
        await ch.queue_declare(queue, durable=True, arguments=STREAM)
        await ch.confirm_delivery()
        await asyncio.gather(*(ch.basic_publish("", queue, b"%d" % i) for i in range(5)))
        with pytest.raises(ValueError, match="prefetch_count"):
            await ch.basic_consume(queue, arguments={"x-stream-offset": "first"})
        await ch.basic_qos(prefetch_count=5)
        consumer = await ch.basic_consume(queue, arguments={"x-stream-offset": 2})
        got = []
        for _ in range(3):
            message = await asyncio.wait_for(consumer.get(), 10)
            got.append(int(message.body))
            message.ack()
        assert got == [2, 3, 4]
        await consumer.cancel()
        await ch.queue_delete(queue)
    finally:
        await conn.close()
