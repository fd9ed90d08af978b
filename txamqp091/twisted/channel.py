"""The Twisted names of the shared client classes: every operation returns a Deferred."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from ..client.channel import ChannelLogic
from ..client.connection import ConnectionLogic
from ..client.consumer import ConsumerLogic
from ..message import Message

__all__ = ["Channel", "Connection", "Consumer"]


class Consumer(ConsumerLogic[Deferred[Any]]):
    """A subscription: ``get(timeout=None)`` gives a ``Deferred[Message | None]``;
    ``async for message in consumer`` works in coroutines run by ``ensureDeferred``;
    ``cancel()`` fires with the number of buffered messages handed back."""

    def __aiter__(self) -> Consumer:
        return self

    def __anext__(self) -> Deferred[Message]:
        return self._next()


class Channel(ChannelLogic[Deferred[Any]]):
    """An AMQP channel; see :class:`~txamqp091.client.channel.ChannelLogic` for the methods."""

    consumer_class = Consumer


class Connection(ConnectionLogic[Deferred[Any]]):
    """An open AMQP connection; ``channel()`` fires with a :class:`Channel`."""

    channel_class = Channel
