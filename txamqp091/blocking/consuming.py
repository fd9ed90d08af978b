"""Consuming on a blocking channel: ``basic_consume`` callbacks and the ``consume()`` generator.

Deliveries reach the loop thread through the tornado consumer's callback, which
only appends the message to its :class:`Consumer`'s ``pending`` deque and queues
the consumer on the connection's event queue. The thread that pumps events then
hands the message to the user's callback, or the ``consume()`` generator takes
it from ``pending`` itself. Cancelling empties ``pending``: pika's rules decide
whether those messages are requeued or handed back.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from collections.abc import Callable, Generator
from typing import Any, Protocol

from ..core.spec import BasicProperties
from ..message import Message
from ._loop import LoopThread, wake_later

__all__ = ["ConnectionHooks", "Consumer", "Consuming"]

Delivery = tuple[Any, Any, Any]
OnMessage = Callable[[Any, Message, BasicProperties, bytes], Any]


def _noop() -> None:
    pass


class ConnectionHooks(Protocol):
    """What a channel needs of its :class:`~.connection.BlockingConnection` (a Protocol, so
    that the two modules do not import each other)."""

    _lt: LoopThread
    _recovering: bool
    _events: queue.SimpleQueue[Callable[[], Any]]

    def _call(
        self,
        start: Callable[[], Any],
        timeout: float | None,
        what: str,
        direct: bool = False,
        reply_from: Callable[[], Any] | None = None,
    ) -> Any: ...

    def _current(self) -> Any: ...

    def _issue(self, timeout: float | None) -> None: ...

    def _completed_one(self) -> None: ...

    def _pump(self, wait: float | None) -> bool: ...

    def _raise_if_lost(self) -> None: ...

    def _check_reentrancy(self, what: str) -> None: ...

    def process_data_events(self, time_limit: float | None = 0) -> None: ...


class Consumer:
    """One subscription as the blocking channel sees it.

    The loop thread appends each delivery to ``pending`` and queues this object
    on the connection's event queue; the pumping thread then calls it, which hands
    the oldest pending message to the callback. A ``consume()`` generator's
    consumer has no callback: the generator takes from ``pending`` itself.
    """

    __slots__ = ("auto_ack", "callback", "channel", "ended", "params", "pending", "put", "tag")

    def __init__(
        self,
        channel: Consuming,
        tag: str,
        callback: OnMessage | None,
        auto_ack: bool,
        params: tuple[str, bool, bool],
    ) -> None:
        self.channel = channel
        self.tag = tag
        self.callback = callback
        self.auto_ack = auto_ack
        self.params = params
        self.pending: deque[Message] = deque()
        self.put = channel._connection._events.put
        #: Cancelled (by the client or the broker) or its channel ended.
        self.ended = False

    def deliver(self, message: Message) -> None:
        """The tornado consumer's callback (loop thread)."""
        self.pending.append(message)
        wake_later(self.put, self)

    def deliver_tracked(self, message: Message) -> None:
        """:meth:`deliver` on a recovering connection: remember the message by its tag,
        so that ``basic_ack(tag)`` settles it through the message, which knows the
        connection it came on (after a reconnect the tag may name another message)."""
        if not self.auto_ack:
            self.channel._unacked[message.delivery_tag] = message
        self.pending.append(message)
        wake_later(self.put, self)

    def __call__(self) -> None:
        """One queued delivery, in the pumping thread."""
        callback = self.callback
        if callback is None:
            return  # a consume() generator takes its messages from ``pending``
        try:
            message = self.pending.popleft()
        except IndexError:
            return  # handed back by a cancel in the meantime
        callback(self.channel, message, message.properties, message.body)


class Consuming:
    """The consuming half of :class:`~txamqp091.blocking.BlockingChannel`."""

    _connection: ConnectionHooks
    _lt: LoopThread
    _inner: Any
    _recovering: bool
    _unacked: dict[int, Message]
    _consumers: dict[str, Consumer]
    _generator: Consumer | None

    @property
    def is_open(self) -> bool:
        raise NotImplementedError

    def _call(self, start: Callable[[], Any], timeout: float | None, what: str) -> Any:
        raise NotImplementedError

    def _raise_if_closed(self) -> None:
        raise NotImplementedError

    def _subscribe(
        self,
        queue: str,
        callback: OnMessage | None,
        auto_ack: bool,
        exclusive: bool,
        consumer_tag: str | None,
        arguments: dict[str, Any] | None,
        timeout: float | None,
    ) -> Consumer:
        self._raise_if_closed()
        inner = self._inner
        consumer = Consumer(self, "", callback, auto_ack, (queue, auto_ack, exclusive))
        subscribed = self._call(
            lambda: inner.basic_consume(
                queue,
                consumer.deliver_tracked if self._recovering else consumer.deliver,
                auto_ack,
                exclusive,
                consumer_tag,
                arguments,
            ),
            timeout,
            "basic_consume",
        )
        consumer.tag = subscribed.consumer_tag
        self._consumers[consumer.tag] = consumer
        return consumer

    def basic_consume(
        self,
        queue: str,
        on_message_callback: OnMessage,
        auto_ack: bool = False,
        exclusive: bool = False,
        consumer_tag: str | None = None,
        arguments: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> str:
        """Basic.Consume; returns the consumer tag. ``on_message_callback(channel, method,
        properties, body)`` runs in the thread in ``start_consuming()`` (or
        ``process_data_events()``...)."""
        if not callable(on_message_callback):
            raise TypeError("on_message_callback must be callable")
        consumer = self._subscribe(
            queue, on_message_callback, auto_ack, exclusive, consumer_tag, arguments, timeout
        )
        return consumer.tag

    def basic_cancel(
        self, consumer_tag: str, *, timeout: float | None = None
    ) -> list[tuple[Message, BasicProperties, bytes]]:
        """Basic.Cancel, as pika: messages of an ``auto_ack=False`` consumer that were not
        dispatched yet are requeued (nacked) and ``[]`` is returned; those of an
        ``auto_ack=True`` consumer are returned as ``(method, properties, body)``."""
        consumer = self._consumers.pop(consumer_tag, None)
        if consumer is None:
            return []
        if self._generator is consumer:
            self._generator = None
        self._end_consumer(consumer, timeout)
        if consumer.auto_ack:
            pending = consumer.pending
            taken = []
            while pending:
                message = pending.popleft()
                taken.append((message, message.properties, message.body))
            return taken
        return []

    def _end_consumer(self, consumer: Consumer, timeout: float | None) -> int:
        """Cancel ``consumer`` at the broker; requeue what it holds undispatched (not
        auto-acked); return how many messages were requeued."""
        inner = self._inner
        counted = [0]

        def start() -> Any:
            cancelled = inner.basic_cancel(consumer.tag)
            # After Basic.Cancel, so that the broker does not deliver them straight back.
            if not consumer.auto_ack:
                pending = consumer.pending
                while pending:
                    pending.popleft().nack(requeue=True)
                    counted[0] += 1
            return cancelled

        try:
            late = 0
            if self.is_open:
                late = self._call(start, timeout, "basic_cancel") or 0
        finally:
            consumer.ended = True
            self._connection._events.put(_noop)  # wake a thread in start_consuming/consume
        return counted[0] + int(late)

    def start_consuming(self) -> None:
        """Run consumer callbacks (and timers, threadsafe callbacks) until every consumer
        of this channel is cancelled; raises the error if the channel or connection ends."""
        conn = self._connection
        conn._check_reentrancy("start_consuming")
        while self._consumers:
            self._raise_if_closed()
            conn._raise_if_lost()
            conn._pump(None)
        self._raise_if_closed()

    def stop_consuming(self, consumer_tag: str | None = None) -> None:
        """Cancel one consumer, or all of this channel's (including a ``consume()``
        generator's, which then ends): ``start_consuming()`` returns."""
        if consumer_tag:
            self.basic_cancel(consumer_tag)
            return
        if self._generator is not None:
            self.cancel()
        for tag in list(self._consumers):
            self.basic_cancel(tag)

    def _forget_consumers(self) -> None:
        """The connection is closing: end every consumer without talking to the broker."""
        for consumer in self._consumers.values():
            consumer.ended = True
        self._consumers.clear()
        self._generator = None

    def consume(
        self,
        queue: str,
        auto_ack: bool = False,
        exclusive: bool = False,
        arguments: dict[str, Any] | None = None,
        inactivity_timeout: float | None = None,
        consumer_tag: str | None = None,
    ) -> Generator[Delivery, None, None]:
        """Yield ``(method, properties, body)`` for each message of ``queue``, and
        ``(None, None, None)`` after ``inactivity_timeout`` seconds without one. Ends
        when the consumer is cancelled (``cancel()``, ``stop_consuming()`` or the
        broker); raises if the channel or connection ends. Other consumers' callbacks
        run in this thread meanwhile."""
        params = (queue, auto_ack, exclusive)
        consumer = self._generator
        if consumer is not None:
            if consumer.params != params:
                raise ValueError(
                    f"consume: a generator with other params is active: {consumer.params!r}"
                )
        else:
            consumer = self._subscribe(
                queue, None, auto_ack, exclusive, consumer_tag, arguments, None
            )
            self._generator = consumer
        conn = self._connection
        pending = consumer.pending
        while True:
            if pending:
                message = pending.popleft()
                yield message, message.properties, message.body
                continue
            if consumer.ended:
                if self._generator is consumer:
                    self._generator = None
                self._consumers.pop(consumer.tag, None)
                self._raise_if_closed()
                return
            self._raise_if_closed()
            conn._raise_if_lost()
            if inactivity_timeout is None:
                conn._pump(None)
                continue
            deadline = time.monotonic() + inactivity_timeout
            while not pending and not consumer.ended:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                conn._pump(remaining)
                self._raise_if_closed()
                conn._raise_if_lost()
            if not pending and not consumer.ended:
                yield None, None, None

    def get_waiting_message_count(self) -> int:
        """Messages the ``consume()`` generator holds, yielded without waiting."""
        consumer = self._generator
        return len(consumer.pending) if consumer is not None else 0

    def cancel(self, *, timeout: float | None = None) -> int:
        """Cancel the ``consume()`` generator's consumer (the generator ends); returns how
        many messages it held undelivered were requeued. (pika returns 0.)"""
        consumer = self._generator
        if consumer is None:
            return 0
        self._generator = None
        self._consumers.pop(consumer.tag, None)
        return self._end_consumer(consumer, timeout)
