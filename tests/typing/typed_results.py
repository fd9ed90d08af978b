"""Checked by ``mypy --strict`` in scripts/test, never run: what a user's mypy knows about
each operation's result, on both adapters and on the recovering channels."""

from __future__ import annotations

import asyncio

from twisted.internet.defer import Deferred
from typing_extensions import assert_type

from txamqp091 import Message
from txamqp091.core import spec
from txamqp091.tornado import channel as tornado_channel
from txamqp091.twisted import channel as twisted_channel


async def twisted_results(
    conn: twisted_channel.Connection, surviving: twisted_channel.RecoveringChannel
) -> None:
    assert_type(conn.channel(), Deferred[twisted_channel.Channel])
    ch = await conn.channel()
    assert_type(ch.queue_declare("q"), Deferred[spec.QueueDeclareOk])
    ok = await ch.queue_declare("q")
    assert_type(ok.queue, str)
    assert_type(ch.basic_get("q"), Deferred[Message | None])
    assert_type(ch.basic_publish("", "q", b""), Deferred[None])
    assert_type(ch.basic_cancel("tag"), Deferred[int])
    consumer = await ch.basic_consume("q")
    assert_type(consumer, twisted_channel.Consumer)
    assert_type(consumer.get(), Deferred[Message])
    assert_type(consumer.get(timeout=1.5), Deferred[Message | None])
    async for message in consumer:
        assert_type(message, Message)
    assert_type(surviving.queue_declare("q"), Deferred[spec.QueueDeclareOk])
    assert_type(await surviving.basic_consume("q"), twisted_channel.RecoveringConsumer)


async def asyncio_results(
    conn: tornado_channel.Connection, surviving: tornado_channel.RecoveringChannel
) -> None:
    ch = await conn.channel()
    assert_type(ch, tornado_channel.Channel)
    assert_type(ch.queue_declare("q"), asyncio.Future[spec.QueueDeclareOk])
    assert_type(await ch.basic_get("q"), Message | None)
    assert_type(await ch.confirm_delivery(), spec.ConfirmSelectOk)
    consumer = await ch.basic_consume("q")
    assert_type(await consumer.get(), Message)
    assert_type(await consumer.get(0.5), Message | None)
    async for message in consumer:
        assert_type(message, Message)
    assert_type(await surviving.exchange_declare("x"), spec.ExchangeDeclareOk)
    assert_type(await surviving.basic_consume("q"), tornado_channel.RecoveringConsumer)
