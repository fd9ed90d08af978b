"""The Twisted names of the shared client classes: every operation returns a Deferred."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..client.channel import ChannelLogic
from ..client.connection import ConnectionLogic
from ..client.consumer import ConsumerLogic
from ..client.recovery import SurvivingChannel, SurvivingConsumer
from ..message import Message

__all__ = ["Channel", "Connection", "Consumer", "RecoveringChannel", "RecoveringConsumer"]

log = Logger()


class Consumer(ConsumerLogic[Deferred[Any]]):
    """A subscription: ``get(timeout=None)`` gives a ``Deferred[Message | None]``;
    ``async for message in consumer`` works in coroutines run by ``ensureDeferred``;
    ``cancel()`` fires with the number of buffered messages handed back."""


class RecoveringConsumer(SurvivingConsumer[Deferred[Any]]):
    """A consumer of a surviving channel: the same object before and after reconnects."""


class Channel(ChannelLogic[Deferred[Any]]):
    """An AMQP channel; see :class:`~txamqp091.client.channel.ChannelLogic` for the methods."""

    consumer_class = Consumer

    def basic_consume(
        self,
        queue: str,
        on_message_callback: Callable[[Message], Any] | None = None,
        auto_ack: bool = False,
        exclusive: bool = False,
        consumer_tag: str | None = None,
        arguments: dict[str, Any] | None = None,
        run_in_thread: bool = False,
    ) -> Deferred[Any]:
        """Basic.Consume; fires with the :class:`Consumer`.

        With ``run_in_thread=True``, ``on_message_callback`` is a *blocking*
        function run in the reactor's thread pool, one call per message; when it
        returns the message is acked, when it raises the message is nacked and
        requeued, both from the reactor thread (pika's "ack from another
        thread" problem, solved for you). Acking by hand from a worker thread
        is safe too: ``message.ack()`` hops to the reactor thread itself.
        """
        if run_in_thread:
            if on_message_callback is None:
                raise ValueError("run_in_thread needs an on_message_callback")
            on_message_callback = self._threaded(on_message_callback, auto_ack)
        return super().basic_consume(
            queue, on_message_callback, auto_ack, exclusive, consumer_tag, arguments
        )

    def _threaded(
        self, handler: Callable[[Message], Any], auto_ack: bool
    ) -> Callable[[Message], None]:
        reactor: Any = self._runtime._clock  # type: ignore[attr-defined]

        def settle_ok(result: Any, message: Message) -> None:
            if not auto_ack:
                message.ack()

        def settle_failed(failure: Failure, message: Message) -> None:
            log.failure(
                "threaded handler failed for delivery {tag}", failure, tag=message.delivery_tag
            )
            if not auto_ack:
                message.nack(requeue=True)

        def run(message: Message) -> None:
            d = deferToThreadPool(reactor, reactor.getThreadPool(), handler, message)
            d.addCallbacks(
                settle_ok, settle_failed, callbackArgs=(message,), errbackArgs=(message,)
            )

        return run


class RecoveringChannel(SurvivingChannel[Deferred[Any]]):
    """A channel that survives reconnects (``AMQPClientService.channel()``); every
    operation returns a Deferred."""

    consumer_class = RecoveringConsumer


class Connection(ConnectionLogic[Deferred[Any]]):
    """An open AMQP connection; ``channel()`` fires with a :class:`Channel`."""

    channel_class = Channel
