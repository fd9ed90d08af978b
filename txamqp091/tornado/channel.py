"""The asyncio names of the shared client classes: every operation returns a Future."""

from __future__ import annotations

import asyncio
from typing import Any

from ..client.channel import ChannelLogic
from ..client.connection import ConnectionLogic
from ..client.consumer import ConsumerLogic
from ..message import Message

__all__ = ["Channel", "Connection", "Consumer"]


class Consumer(ConsumerLogic[asyncio.Future[Any]]):
    """A subscription: ``await consumer.get(timeout=None)`` gives a Message (or None after
    ``timeout``); ``async for message in consumer`` iterates until it is cancelled;
    ``await consumer.cancel()`` gives the number of buffered messages handed back."""

    def __aiter__(self) -> Consumer:
        return self

    def __anext__(self) -> asyncio.Future[Message]:
        return self._next()


class Channel(ChannelLogic[asyncio.Future[Any]]):
    """An AMQP channel; see :class:`~txamqp091.client.channel.ChannelLogic` for the methods."""

    consumer_class = Consumer


class Connection(ConnectionLogic[asyncio.Future[Any]]):
    """An open AMQP connection; ``await conn.channel()`` gives a :class:`Channel`."""

    channel_class = Channel
