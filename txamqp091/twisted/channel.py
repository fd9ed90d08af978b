"""The Twisted names of the shared client classes: every operation returns a Deferred."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from ..client.channel import ChannelLogic
from ..client.connection import ConnectionLogic
from ..client.consumer import ConsumerLogic
from ..client.recovery import SurvivingChannel, SurvivingConsumer
from ._typed import TypedChannel, TypedConnection, TypedConsumer

__all__ = ["Channel", "Connection", "Consumer", "RecoveringChannel", "RecoveringConsumer"]


class Consumer(TypedConsumer, ConsumerLogic[Deferred[Any]]):
    """A subscription: ``get(timeout=None)`` gives a ``Deferred[Message | None]``;
    ``async for message in consumer`` works in coroutines run by ``ensureDeferred``;
    ``cancel()`` fires with the number of buffered messages handed back."""


class RecoveringConsumer(TypedConsumer, SurvivingConsumer[Deferred[Any]]):
    """A consumer of a surviving channel: the same object before and after reconnects."""


class Channel(TypedChannel[Consumer], ChannelLogic[Deferred[Any]]):
    """An AMQP channel; see :class:`~txamqp091.client.channel.ChannelLogic` for the methods."""

    consumer_class = Consumer


class RecoveringChannel(TypedChannel[RecoveringConsumer], SurvivingChannel[Deferred[Any]]):
    """A channel that survives reconnects (``AMQPClientService.channel()``); every
    operation returns a Deferred."""

    consumer_class = RecoveringConsumer


class Connection(TypedConnection[Channel], ConnectionLogic[Deferred[Any]]):
    """An open AMQP connection; ``channel()`` fires with a :class:`Channel`."""

    channel_class = Channel
