"""The asyncio names of the shared client classes: every operation returns a Future."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from ..client.channel import ChannelLogic
from ..client.connection import ConnectionLogic
from ..client.consumer import ConsumerLogic
from ..client.recovery import SurvivingChannel, SurvivingConsumer
from ._typed import TypedChannel, TypedConnection, TypedConsumer

__all__ = ["Channel", "Connection", "Consumer", "RecoveringChannel", "RecoveringConsumer"]


class Consumer(TypedConsumer, ConsumerLogic[asyncio.Future[Any]]):
    """A subscription: ``await consumer.get(timeout=None)`` gives a Message (or None after
    ``timeout``); ``async for message in consumer`` iterates until it is cancelled;
    ``await consumer.cancel()`` gives the number of buffered messages handed back."""


class RecoveringConsumer(TypedConsumer, SurvivingConsumer[asyncio.Future[Any]]):
    """A consumer of a surviving channel: the same object before and after reconnects."""


class Channel(TypedChannel[Consumer], ChannelLogic[asyncio.Future[Any]]):
    """An AMQP channel; see :class:`~txamqp091.client.channel.ChannelLogic` for the methods."""

    consumer_class = Consumer


class RecoveringChannel(TypedChannel[RecoveringConsumer], SurvivingChannel[asyncio.Future[Any]]):
    """A channel that survives reconnects (``AMQPClient.channel()``); every operation
    returns an awaitable."""

    consumer_class = RecoveringConsumer


class Connection(TypedConnection[Channel], ConnectionLogic[asyncio.Future[Any]]):
    """An open AMQP connection; ``await conn.channel()`` gives a :class:`Channel`.

    ``async with await connect(url) as conn:`` closes it on the way out."""

    channel_class = Channel

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.is_open:
            await self.close()
