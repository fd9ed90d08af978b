"""``BlockingChannel``: pika's blocking channel methods, each one a wait on the loop thread.

Every method hands one operation to the loop thread (where the
:class:`txamqp091.tornado.Channel` does the AMQP work) and waits for its result,
up to the connection's deadline or the call's ``timeout=``. Two exceptions keep
the hot paths fast: ``basic_publish`` outside confirm mode and the
acknowledgements are pipelined (queued in order, not waited for), as pika's
return once the frames are written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from ..constants import ExchangeType
from ..core.spec import BasicProperties
from ..exceptions import ChannelClosedByClient, ChannelWrongStateError, NackError, UnroutableError
from ..message import Message
from ..message import ReturnedMessage as Returned
from .consuming import ConnectionHooks, Consumer, Consuming
from .frames import BasicCancel, BasicReturn, MethodFrame, ReturnedMessage

__all__ = ["BlockingChannel"]


def _noop() -> None:
    pass


def _pika_error(error: BaseException) -> BaseException:
    """Give a confirm failure pika's ``messages``: for ``UnroutableError`` the returned
    message as a ``ReturnedMessage`` whose ``method`` is the broker's Basic.Return
    (``reply_code``, ``reply_text``, ``exchange``, ``routing_key``); for ``NackError``
    none (pika lists a nacked message only if it was also returned, which RabbitMQ
    does not do)."""
    if isinstance(error, UnroutableError) and not error.messages:
        message: Any = error.message
        returned: list[Any] = []
        if message is not None:
            method = BasicReturn(
                error.reply_code, error.reply_text, message.exchange, message.routing_key
            )
            returned.append(ReturnedMessage(method, message.properties, message.body))
        error.messages = returned
    return error


class BlockingChannel(Consuming):
    """A channel with pika's ``BlockingChannel`` methods; safe to call from any thread.

    Methods take pika's arguments and return what pika's return; each also takes a
    keyword-only ``timeout=`` (seconds) overriding the connection's deadline.
    """

    def __init__(self, connection: ConnectionHooks, inner: Any) -> None:
        self._connection = connection
        self._lt = connection._lt
        self._inner = inner
        self._consumers: dict[str, Consumer] = {}
        self._generator: Consumer | None = None
        self._confirming = False
        #: Why the channel ended (set in the loop thread), or None while it is open.
        self._closed_error: BaseException | None = None
        #: The first failure of a pipelined publish, raised by the next publish.
        self._publish_error: BaseException | None = None
        self._on_return: list[Callable[..., Any]] = []
        self._on_cancel: list[Callable[..., Any]] = []
        self.channel_number: int = inner.channel_number
        #: Recovering connections only: unsettled deliveries by tag (loop thread).
        self._recovering: bool = connection._recovering
        self._unacked: dict[int, Message] = {}
        # Queued before any operation the user can issue next, so no event is missed.
        self._lt.submit(self._install)

    def _install(self) -> None:
        """Loop thread: follow the channel's end, returns and broker cancels."""
        inner = self._inner
        inner.add_on_close_callback(self._on_closed)
        inner.add_on_return_callback(self._on_returned)
        inner.add_on_cancel_callback(self._on_broker_cancel)
        if not inner.is_open:
            self._on_closed(inner, ChannelWrongStateError("channel closed"))

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<BlockingChannel number={self.channel_number} {state}>"

    def __int__(self) -> int:
        return self.channel_number

    def __enter__(self) -> BlockingChannel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.is_open:
            self.close()

    # -- state -----------------------------------------------------------------------------------

    @property
    def connection(self) -> Any:
        """The :class:`~txamqp091.blocking.BlockingConnection` this channel belongs to."""
        return self._connection

    @property
    def is_open(self) -> bool:
        return self._closed_error is None and bool(self._inner.is_open)

    @property
    def is_closed(self) -> bool:
        return not self.is_open

    @property
    def consumer_tags(self) -> list[str]:
        return list(self._consumers)

    def _call(self, start: Callable[[], Any], timeout: float | None, what: str) -> Any:
        return self._connection._call(start, timeout, what)

    def _frame(self, method: Any) -> MethodFrame:
        return MethodFrame(self.channel_number, method)

    def _rpc(self, name: str, timeout: float | None, *args: Any) -> MethodFrame:
        """Call the inner channel's ``name(*args)`` in the loop; the reply as pika's frame."""
        method = getattr(self._inner, name)
        return self._frame(self._call(partial(method, *args), timeout, name))

    # -- events from the loop thread ---------------------------------------------------------

    def _on_closed(self, _channel: Any, reason: BaseException) -> None:
        if self._closed_error is None:
            self._closed_error = reason
        for consumer in list(self._consumers.values()):
            consumer.ended = True
        self._connection._events.put(_noop)

    def _on_returned(self, message: Returned) -> None:
        method = BasicReturn(
            message.reply_code, message.reply_text, message.exchange, message.routing_key
        )
        put = self._connection._events.put
        for callback in self._on_return:
            put(partial(callback, self, method, message.properties, message.body))

    def _on_broker_cancel(self, consumer_tag: str) -> None:
        consumer = self._consumers.pop(consumer_tag, None)
        if consumer is not None:
            consumer.ended = True
        frame = self._frame(BasicCancel(consumer_tag))
        for callback in self._on_cancel:
            self._connection._events.put(partial(callback, frame))
        self._connection._events.put(_noop)

    def _raise_if_closed(self) -> None:
        error = self._closed_error
        if error is None:
            return
        if isinstance(error, ChannelClosedByClient) and error.reply_code in (0, 200):
            raise ChannelWrongStateError(f"channel {self.channel_number} is closed")
        raise error

    # -- declarations --------------------------------------------------------------------------

    def exchange_declare(
        self,
        exchange: str,
        exchange_type: ExchangeType | str = ExchangeType.direct,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> MethodFrame:
        return self._rpc(
            "exchange_declare",
            timeout,
            exchange,
            str(exchange_type),
            passive,
            durable,
            auto_delete,
            internal,
            arguments,
        )

    def exchange_delete(
        self,
        exchange: str | None = None,
        if_unused: bool = False,
        *,
        timeout: float | None = None,
    ) -> MethodFrame:
        return self._rpc("exchange_delete", timeout, exchange or "", if_unused)

    def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> MethodFrame:
        return self._rpc("exchange_bind", timeout, destination, source, routing_key, arguments)

    def exchange_unbind(
        self,
        destination: str | None = None,
        source: str | None = None,
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> MethodFrame:
        return self._rpc(
            "exchange_unbind", timeout, destination or "", source or "", routing_key, arguments
        )

    def queue_declare(
        self,
        queue: str,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> MethodFrame:
        """Queue.Declare; ``.method.queue``, ``.method.message_count``,
        ``.method.consumer_count`` of the result are the broker's answer."""
        return self._rpc(
            "queue_declare", timeout, queue, passive, durable, exclusive, auto_delete, arguments
        )

    def queue_delete(
        self,
        queue: str,
        if_unused: bool = False,
        if_empty: bool = False,
        *,
        timeout: float | None = None,
    ) -> MethodFrame:
        return self._rpc("queue_delete", timeout, queue, if_unused, if_empty)

    def queue_purge(self, queue: str, *, timeout: float | None = None) -> MethodFrame:
        return self._rpc("queue_purge", timeout, queue)

    def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str | None = None,
        arguments: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> MethodFrame:
        return self._rpc("queue_bind", timeout, queue, exchange, routing_key, arguments)

    def queue_unbind(
        self,
        queue: str,
        exchange: str | None = None,
        routing_key: str | None = None,
        arguments: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> MethodFrame:
        return self._rpc("queue_unbind", timeout, queue, exchange or "", routing_key, arguments)

    def basic_qos(
        self,
        prefetch_size: int = 0,
        prefetch_count: int = 0,
        global_qos: bool = False,
        *,
        timeout: float | None = None,
    ) -> None:
        self._rpc("basic_qos", timeout, prefetch_size, prefetch_count, global_qos)

    def basic_recover(self, requeue: bool = False, *, timeout: float | None = None) -> None:
        self._rpc("basic_recover", timeout, requeue)

    def confirm_delivery(self, *, timeout: float | None = None) -> None:
        """Confirm.Select: from now on ``basic_publish`` returns once the broker acked the
        message, and raises ``NackError`` or (mandatory) ``UnroutableError`` otherwise."""
        self._rpc("confirm_delivery", timeout)
        self._confirming = True

    def tx_select(self, *, timeout: float | None = None) -> MethodFrame:
        return self._rpc("tx_select", timeout)

    def tx_commit(self, *, timeout: float | None = None) -> MethodFrame:
        return self._rpc("tx_commit", timeout)

    def tx_rollback(self, *, timeout: float | None = None) -> MethodFrame:
        return self._rpc("tx_rollback", timeout)

    def flow(self, active: bool, *, timeout: float | None = None) -> bool:
        """Channel.Flow; returns the state the broker confirmed."""
        return bool(self._rpc("flow", timeout, active).method)

    # -- publishing -------------------------------------------------------------------------------

    def basic_publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | str,
        properties: BasicProperties | None = None,
        mandatory: bool = False,
        *,
        timeout: float | None = None,
    ) -> None:
        """Publish a message.

        In confirm mode this returns once the broker acked the message and raises
        ``NackError`` (nacked) or ``UnroutableError`` (mandatory and returned).
        Otherwise it returns once the message is queued for the connection, in
        order with everything this thread does next; a failure to send it (the
        channel closed meanwhile) is raised by the next ``basic_publish``.
        """
        inner = self._inner
        if self._confirming:
            current = self._connection._current

            def publish_now() -> Any:
                # Written at once rather than at the end of the loop turn: the caller
                # waits for this one message's ack, so coalescing gains nothing.
                conn = current()
                if conn is None:
                    return inner.basic_publish(exchange, routing_key, body, properties, mandatory)
                conn.flush_threshold = 0
                try:
                    return inner.basic_publish(exchange, routing_key, body, properties, mandatory)
                finally:
                    del conn.flush_threshold

            def transport() -> Any:
                conn = current()
                return None if conn is None else conn._runtime.transport

            try:
                if self._recovering:
                    self._connection._call(publish_now, timeout, "basic_publish")
                else:
                    self._connection._call(publish_now, timeout, "basic_publish", True, transport)
            except (UnroutableError, NackError) as exc:
                raise _pika_error(exc) from None
            return
        error = self._publish_error
        if error is not None:
            self._publish_error = None
            raise error
        if self._closed_error is not None:
            raise ChannelWrongStateError(
                f"channel {self.channel_number} is closed: {self._closed_error}"
            )
        conn = self._connection
        completed = conn._completed_one

        def sent(future: asyncio.Future[Any]) -> None:
            completed()
            error = future.exception()
            if error is not None and self._publish_error is None:
                self._publish_error = error

        def op() -> None:
            try:
                future = inner.basic_publish(exchange, routing_key, body, properties, mandatory)
            except Exception as exc:
                completed()
                if self._publish_error is None:
                    self._publish_error = exc
                return
            if future.done():
                sent(future)
            else:
                future.add_done_callback(sent)

        self._lt.submit(op)
        conn._issue(timeout)

    def publish_batch(
        self,
        messages: Sequence[tuple[str, str, bytes | str, BasicProperties | None, bool]],
        *,
        timeout: float | None = None,
    ) -> None:
        """Publish ``(exchange, routing_key, body, properties, mandatory)`` tuples in order and
        wait for all of them (in confirm mode: for every broker ack, so the whole batch
        costs one round trip). Raises the first ``NackError`` or ``UnroutableError``
        after all were settled. Not in pika."""
        inner = self._inner
        items = list(messages)
        if not items:
            return

        def start() -> asyncio.Future[Any]:
            futures = [inner.basic_publish(*item) for item in items]
            return asyncio.gather(*futures, return_exceptions=True)

        results = self._call(start, timeout, "publish_batch")
        for result in results:
            if isinstance(result, BaseException):
                raise _pika_error(result)

    # -- getting ------------------------------------------------------------------------------------

    def basic_get(
        self, queue: str, auto_ack: bool = False, *, timeout: float | None = None
    ) -> tuple[Message, BasicProperties, bytes] | tuple[None, None, None]:
        """Basic.Get: ``(method, properties, body)``, or ``(None, None, None)`` when the
        queue is empty. ``method`` carries ``delivery_tag``, ``redelivered``,
        ``exchange``, ``routing_key`` and ``message_count``."""
        inner = self._inner
        message = self._call(lambda: inner.basic_get(queue, auto_ack), timeout, "basic_get")
        if message is None:
            return None, None, None
        if self._recovering and not auto_ack:
            self._unacked[message.delivery_tag] = message
        return message, message.properties, message.body

    # -- acknowledgements: pipelined, in order ---------------------------------------------------

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        self._settle("ack", delivery_tag, multiple=multiple)

    def basic_nack(
        self, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True
    ) -> None:
        self._settle("nack", delivery_tag, multiple=multiple, requeue=requeue)

    def basic_reject(self, delivery_tag: int = 0, requeue: bool = True) -> None:
        self._settle("reject", delivery_tag, requeue=requeue)

    def _settle(self, how: str, delivery_tag: int, **kwargs: Any) -> None:
        inner = self._inner
        if not self._recovering:
            self._lt.submit(partial(getattr(inner, f"basic_{how}"), delivery_tag, **kwargs))
            return
        unacked = self._unacked

        def settle() -> None:
            message = unacked.pop(delivery_tag, None)
            if kwargs.get("multiple"):
                for tag in [t for t in unacked if t <= delivery_tag]:
                    del unacked[tag]
            if message is not None:
                getattr(message, how)(**kwargs)
            else:
                getattr(inner, f"basic_{how}")(delivery_tag, **kwargs)

        self._lt.submit(settle)

    # -- callbacks --------------------------------------------------------------------------------

    def add_on_return_callback(self, callback: Callable[..., Any]) -> None:
        """``callback(channel, method, properties, body)`` for each returned message
        (``method.reply_code``, ``.reply_text``, ``.exchange``, ``.routing_key``)."""
        self._on_return.append(callback)

    def add_on_cancel_callback(self, callback: Callable[[MethodFrame], Any]) -> None:
        """``callback(method_frame)`` when the broker cancels a consumer of this channel."""
        self._on_cancel.append(callback)

    # -- closing -------------------------------------------------------------------------------------

    def close(
        self,
        reply_code: int = 0,
        reply_text: str = "Normal shutdown",
        *,
        timeout: float | None = None,
    ) -> None:
        """Channel.Close; waits for Close-Ok. Consumers end; what they held undispatched
        is dropped (the broker requeues unacked messages of a closed channel)."""
        if self._closed_error is not None:
            self._raise_if_closed()
        inner = self._inner
        self._forget_consumers()
        self._call(lambda: inner.close(reply_code, reply_text), timeout, "close")
        if self._closed_error is None:
            self._closed_error = ChannelClosedByClient(reply_code, reply_text)
