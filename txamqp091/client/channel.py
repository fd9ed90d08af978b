"""The channel API both adapters expose: pika's method names, returning waiters.

:class:`ChannelLogic` is built in three layers, each a plain base class of the next
(no per-message indirection): :class:`~.channel_base.ChannelBase` (state, request/reply
pairing, publishing), :class:`~.declaring.DeclaringChannel` (exchanges, queues,
bindings, QoS, transactions) and, here, consuming, acknowledgements, callbacks and
closing, with the events the connection hands to the channel.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from .. import validation as validate
from ..core import spec
from ..core._accel import install_message_ack
from ..core.channel import Channel as CoreChannel
from ..core.events import ChannelClosed as ChannelClosedEvent
from ..core.events import Event, GetOk, Returned
from ..core.states import ChannelState
from ..exceptions import (
    ChannelClosedByClient,
    ConsumerCancelled,
    DuplicateConsumerTag,
    UnroutableError,
)
from ..message import Message, ReturnedMessage
from .api import ChannelAPI, documented_by
from .channel_base import ConnectionHooks
from .consumer import BufferCount, ConsumerLogic, message_callback, new_consumer_tag
from .declaring import DeclaringChannel
from .runtime import W
from .streams import check_stream_consume

__all__ = ["ChannelLogic", "ConnectionHooks"]


def _none(value: Any) -> None:
    return None


@documented_by(ChannelAPI)
class ChannelLogic(DeclaringChannel[W]):
    """One AMQP channel; adapters subclass it to give it their waiter type."""

    def __init__(self, conn: ConnectionHooks[W], core: CoreChannel) -> None:
        super().__init__(conn, core)
        #: What a consumer calls when deliveries enter or leave its buffer (see
        #: ConsumerOwner): the connection's own count, this channel's for ever, so a
        #: buffered delivery and its get() each cost no forwarding call.
        self._buffered_changed: Callable[..., None] = conn._buffered_changed

    @property
    def _fixed_buffer_count(self) -> BufferCount:
        """The same count, this channel's connection: read and written inline by its
        consumers' get() (each consumer reads this once) and by _on_delivery."""
        return self._conn

    # -- consuming ---------------------------------------------------------------------------

    def basic_consume(
        self,
        queue: str,
        on_message_callback: Callable[[Message], Any] | None = None,
        auto_ack: bool = False,
        exclusive: bool = False,
        consumer_tag: str | None = None,
        arguments: dict[str, Any] | None = None,
        run_in_thread: bool = False,
    ) -> W:
        """Basic.Consume; fires with the :class:`Consumer` once the broker confirms it.

        ``on_message_callback(message)`` may be a plain function, or return a
        Deferred/awaitable, or be an ``async def`` coroutine function: it is run to its end
        and what it raises is logged with the delivery tag (the consumer goes on). It
        settles the message itself (``message.ack()``): the channel does not.

        With ``run_in_thread=True``, ``on_message_callback`` is a *blocking* function run
        in a worker thread (the reactor's thread pool, or the loop's default executor),
        one call per message; when it returns the message is acked, when it raises the
        message is nacked and requeued, both from the loop's thread. Acking by hand from
        a worker thread is safe too: ``message.ack()`` hops to the loop's thread itself.
        """
        validate.basic_consume(
            queue, on_message_callback, auto_ack, exclusive, consumer_tag, arguments, run_in_thread
        )
        try:
            on_message_callback = message_callback(
                self._runtime, on_message_callback, auto_ack, run_in_thread
            )
        except ValueError as exc:
            return self._runtime.failed(exc)
        refused = check_stream_consume(arguments, auto_ack, self._consumer_prefetch)
        if refused is not None:
            return self._runtime.failed(refused)
        tag = consumer_tag or new_consumer_tag()
        return self._consume(queue, on_message_callback, auto_ack, exclusive, tag, arguments)

    def _consume(
        self,
        queue: str,
        on_message_callback: Callable[[Message], Any] | None,
        auto_ack: bool,
        exclusive: bool,
        tag: str,
        arguments: dict[str, Any] | None,
        nowait: bool = False,
    ) -> W:
        """Basic.Consume with checked arguments. With ``nowait`` (a surviving channel's
        replay, which pipelines its consumers) no Basic.ConsumeOk comes: the waiter
        fires with the consumer at once, and a refusal closes the channel."""
        if tag in self._consumers:
            return self._runtime.failed(DuplicateConsumerTag(tag))
        consumer = self.consumer_class(
            self, queue, tag, on_message_callback, auto_ack, exclusive, arguments
        )
        method = spec.BasicConsume(
            queue=queue,
            consumer_tag=tag,
            no_ack=auto_ack,
            exclusive=exclusive,
            nowait=nowait,
            arguments=arguments,
        )
        self._consumers[tag] = consumer
        if nowait:
            try:
                self._send_async(method)
            except Exception as exc:
                del self._consumers[tag]
                return self._runtime.failed(exc)
            return self._runtime.succeeded(consumer)

        def registered(ok: spec.BasicConsumeOk) -> ConsumerLogic[W]:
            return consumer

        waiter = self._rpc(method, registered)
        self._runtime.add_done(waiter, lambda: self._forget_failed_consumer(consumer))
        return waiter

    def _forget_failed_consumer(self, consumer: ConsumerLogic[W]) -> None:
        if self._close_error is not None and self._consumers.get(consumer.consumer_tag) is consumer:
            del self._consumers[consumer.consumer_tag]

    def basic_cancel(self, consumer_tag: str = "") -> W:
        """Basic.Cancel; fires with the number of buffered messages handed back."""
        validate.basic_cancel(consumer_tag)
        consumer = self._consumers.get(consumer_tag)
        if consumer is None:
            return self._runtime.succeeded(0)
        return self._cancel_consumer(consumer)

    def _cancel_consumer(self, consumer: ConsumerLogic[W]) -> W:
        if consumer.ended is not None or self._consumers.get(consumer.consumer_tag) is not consumer:
            return self._runtime.succeeded(0)
        consumer._cancelling = True
        returned = 0

        def cancelled(ok: spec.BasicCancelOk) -> int:
            late = self._hand_back(consumer)
            self._consumers.pop(consumer.consumer_tag, None)
            reason = ConsumerCancelled(
                f"consumer {consumer.consumer_tag} cancelled by the client", by_client=True
            )
            consumer._end(reason)
            return returned + late

        waiter = self._rpc(spec.BasicCancel(consumer_tag=consumer.consumer_tag), cancelled)
        # Nack the buffered messages *after* Basic.Cancel: nacked before it, they would be
        # requeued while the consumer still exists and delivered straight back to it.
        returned = self._hand_back(consumer)
        return waiter

    def _hand_back(self, consumer: ConsumerLogic[W]) -> int:
        """Nack (requeue) what the consumer buffered but nobody took; return how many."""
        if consumer.auto_ack:
            return 0
        messages = consumer._drain_buffer()
        for message in messages:
            if message._core_channel is self._core and self.is_open:
                self._core.send_method(
                    spec.BasicNack(delivery_tag=message.delivery_tag, multiple=False, requeue=True)
                )
        if messages:
            self._conn._schedule_flush()
        return len(messages)

    def basic_get(self, queue: str, auto_ack: bool = False) -> W:
        """Basic.Get; fires with a :class:`~txamqp091.Message`, or None when the queue is empty."""
        validate.basic_get(queue, auto_ack)
        return self._rpc(spec.BasicGet(queue=queue, no_ack=auto_ack), _none)

    # -- acknowledgements ------------------------------------------------------------------------

    # Acknowledgements may come from any thread (a worker that processed the
    # message): off the loop's thread they hop onto it instead of touching the
    # core from two threads (pika's "ack from another thread" trap).

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        validate.basic_ack(delivery_tag, multiple)
        self._send_settlement(spec.BasicAck(delivery_tag=delivery_tag, multiple=multiple))

    def basic_nack(
        self, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True
    ) -> None:
        validate.basic_nack(delivery_tag, multiple, requeue)
        self._send_settlement(
            spec.BasicNack(delivery_tag=delivery_tag, multiple=multiple, requeue=requeue)
        )

    def basic_reject(self, delivery_tag: int, requeue: bool = True) -> None:
        validate.basic_reject(delivery_tag, requeue)
        self._send_settlement(spec.BasicReject(delivery_tag=delivery_tag, requeue=requeue))

    def _send_settlement(self, method: spec.Method, core: CoreChannel | None = None) -> None:
        runtime = self._runtime
        if not runtime.in_loop_thread():
            runtime.call_from_thread(lambda: self._send_settlement_here(method, core))
            return
        self._send_settlement_here(method, core)

    def _send_settlement_here(self, method: spec.Method, core: CoreChannel | None) -> None:
        if core is not None and (
            core is not self._core
            or not self.is_open
            # Ending in the batch of events being dispatched (a delivery and the broker's
            # Connection.Close in one read), before this channel is told.
            or not self._conn.is_open
            or core.state is not ChannelState.OPEN
        ):
            return  # the channel this message came on is gone: the broker redelivers it
        self._send_async(method)

    def _ack(self, message: Message, multiple: bool) -> None:
        """``message.ack()``: straight into the core's output when the message came on this
        channel's current incarnation and nothing stands in the way (the consumer's hot
        path), else as :meth:`_settle` sends it."""
        if (
            message._core_channel is self._core
            and self._closing is None
            and self._close_error is None
            and self._runtime.in_loop_thread()
            and self._core.send_ack(
                message.delivery_tag, False if multiple is False else bool(multiple)
            )
        ):
            conn = self._conn
            # The guard of ConnectionLogic._schedule_flush (client/connection.py, where
            # the rule lives), inline: calling it for every ack, when a flush is nearly
            # always due already, costs ~340 Ir per consumed message (callgrind,
            # benchmarks/client_path.py consume).
            if not conn._flush_scheduled and not conn._receiving:
                conn._schedule_flush()
            return
        core = message._core_channel
        assert isinstance(core, CoreChannel)
        self._send_settlement(
            spec.BasicAck(delivery_tag=message.delivery_tag, multiple=multiple), core
        )

    def _settle(self, message: Message, how: str, **kwargs: Any) -> None:
        """Ack/nack/reject through a message: only on the channel incarnation it came on,
        so it never settles a stranger that reuses its delivery tag after a reconnect."""
        tag = message.delivery_tag
        if how == "ack":
            self._ack(message, bool(kwargs.get("multiple", False)))
            return
        method: spec.Method
        if how == "nack":
            method = spec.BasicNack(delivery_tag=tag, **kwargs)
        else:
            method = spec.BasicReject(delivery_tag=tag, **kwargs)
        core = message._core_channel
        assert isinstance(core, CoreChannel)
        self._send_settlement(method, core)

    # -- callbacks ---------------------------------------------------------------------------------

    def add_on_return_callback(self, callback: Callable[[ReturnedMessage], Any]) -> None:
        """``callback(message)`` for each message the broker returns: a
        :class:`~txamqp091.message.ReturnedMessage` (``reply_code``, ``reply_text``)."""
        validate.callback("callback", callback)
        self._on_return.append(callback)

    def add_on_cancel_callback(self, callback: Callable[[str], Any]) -> None:
        """``callback(consumer_tag)`` when the broker cancels a consumer."""
        validate.callback("callback", callback)
        self._on_cancel.append(callback)

    def add_on_close_callback(
        self, callback: Callable[[ChannelLogic[W], BaseException], Any]
    ) -> None:
        """``callback(channel, reason)`` once the channel has ended."""
        validate.callback("callback", callback)
        self._on_close.append(callback)

    # -- closing -------------------------------------------------------------------------------------

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> W:
        """Channel.Close; fires once the broker confirmed it."""
        validate.close(reply_code, reply_text)
        if self._close_error is not None:
            return self._runtime.succeeded(None)
        if self._closing is not None:
            return self.closed
        try:
            self._core.close(reply_code, reply_text)
        except Exception as exc:
            return self._runtime.failed(exc)
        self._closing = self._runtime.create_waiter()
        self._conn._schedule_flush()
        error = ChannelClosedByClient(reply_code, reply_text)
        self._fail_pending(error)
        return self.closed

    # -- events, from the connection ------------------------------------------------------------

    def _on_get_ok(self, event: GetOk) -> None:
        message = Message(
            event.channel_id,
            "",
            event.delivery_tag,
            event.redelivered,
            event.exchange,
            event.routing_key,
            event.properties,
            event.body,
            _channel=self,
            _core_channel=self._core,
            message_count=event.message_count,
        )
        if not self._replies:
            return
        waiter, _ = self._replies.popleft()
        self._runtime.resolve(waiter, message)

    def _on_delivery(self, message: Message) -> None:
        message._channel = self
        message._core_channel = self._core
        consumer = self._consumers.get(message.consumer_tag)
        if consumer is None:
            return  # a delivery racing our cancel; the broker requeues it on channel close
        if consumer._cancelling and not consumer.auto_ack:
            self._core.send_method(
                spec.BasicNack(delivery_tag=message.delivery_tag, multiple=False, requeue=True)
            )
            self._conn._schedule_flush()
            return
        if consumer.on_message_callback is None:
            # Consumer._deliver's waiting get(), inline: a call less per RPC half (keep
            # them alike). A getter cancelled meanwhile is skipped. A consumer loop's
            # backlog is buffered by _on_deliveries, a run at a time.
            getters = consumer._getters
            if getters:
                try_resolve = consumer._try_resolve
                while getters:
                    if try_resolve(getters.popleft(), message):
                        return
        consumer._deliver(message)

    def _on_deliveries(self, message: Message, remaining: Iterator[Event]) -> Event | None:
        """Deliver ``message`` and the deliveries of this channel that follow it in the
        read, taken from ``remaining``; return the event after them (None: the read's
        end), for the connection to route.

        A consumer loop's deliveries mostly go to its buffer: a read brings a run of
        them and the loop's coroutine takes them after the read. What _on_delivery and
        ConsumerLogic._deliver check before buffering (the consumer, no callback, no
        waiting get(), not cancelling, reading not paused) stays true while only
        buffering happens, since no user code runs: it is checked once for a consumer's
        run of deliveries here, not once per delivery; the bounds, once per delivery.
        Any other delivery goes through _on_delivery, which may run user code, and
        everything is checked again after it.
        """
        channel_id = message.channel_id
        conn = self._conn
        # The consumer (tag) whose buffer takes deliveries unchecked, with what they need;
        # None: check the next delivery.
        tag: str | None = None
        core: object = None
        buffer: deque[Message] = deque()
        limit = conn_limit = 0
        while True:
            if message.consumer_tag != tag:
                tag = None
                consumer = self._consumers.get(message.consumer_tag)
                if (
                    consumer is not None
                    and consumer.on_message_callback is None
                    and not consumer._getters
                    and not (consumer._cancelling and not consumer.auto_ack)
                    and not conn._reading_paused
                ):
                    tag = message.consumer_tag
                    core = self._core
                    buffer = consumer._buffer
                    limit = consumer.max_buffered
                    conn_limit = conn.max_buffered
            if tag is not None:
                # ConsumerLogic._deliver's buffering, with the fast path of the
                # connection's count (ConnectionLogic._buffered_changed): the one
                # delivery both bounds let through without a call.
                message._channel = self
                message._core_channel = core
                buffered = conn._buffered + 1
                if len(buffer) + 1 < limit and buffered < conn_limit:
                    buffer.append(message)
                    conn._buffered = buffered
                else:
                    tag = None
                    self._on_delivery(message)
            else:
                self._on_delivery(message)
            following = next(remaining, None)
            if type(following) is not Message or following.channel_id != channel_id:
                return following
            message = following

    def _on_returned(self, event: Returned) -> None:
        message = ReturnedMessage(
            event.channel_id,
            "",
            0,
            False,
            event.exchange,
            event.routing_key,
            event.properties,
            event.body,
            self,
            None,
            None,
            event.reply_code,
            event.reply_text,
        )
        error = UnroutableError(event.reply_code, event.reply_text, message)
        if self._core.confirm_mode:
            self._confirms.returned(event.exchange, event.routing_key, event.body, error)
        for callback in self._on_return:
            self._runtime.run_user_callback(callback, message)

    def _on_consumer_cancelled(self, consumer_tag: str) -> None:
        """The broker cancelled a consumer (its queue was deleted, its node went away...):
        a log line, the consumer ends with ``ConsumerCancelled`` (``get()`` and ``async
        for`` raise it), and every ``add_on_cancel_callback`` hook is called."""
        consumer = self._consumers.pop(consumer_tag, None)
        queue = consumer.queue if consumer is not None else "?"
        self._runtime.log(
            "warn",
            "txamqp091: the broker cancelled consumer {tag} on queue {queue}",
            tag=consumer_tag,
            queue=queue,
        )
        if consumer is not None:
            consumer._end(
                ConsumerCancelled(f"the broker cancelled consumer {consumer_tag} on queue {queue}")
            )
        for callback in self._on_cancel:
            self._runtime.run_user_callback(callback, consumer_tag)

    def _on_closed(self, event: ChannelClosedEvent | None, error: BaseException) -> None:
        """The channel ended (its own close, the broker's, or the connection's end)."""
        if self._close_error is not None:
            return
        self._close_error = error
        self._fail_pending(error)
        runtime = self._runtime
        if self._closing is not None:
            runtime.resolve(self._closing, None)
        value = self._closed_value()
        waiters, self._closed_waiters = self._closed_waiters, []
        for waiter in waiters:
            runtime.resolve(waiter, value)
        for callback in self._on_close:
            runtime.run_user_callback(callback, self, error)
        self._conn._forget_channel(self)

    def _fail_pending(self, error: BaseException) -> None:
        runtime = self._runtime
        replies, self._replies = self._replies, deque()
        for waiter, _ in replies:
            runtime.reject(waiter, error)
        for waiter in self._confirms.take_all():
            runtime.reject(waiter, error)
        flow_held, self._flow_held = self._flow_held, deque()
        for _, waiter in flow_held:
            runtime.reject(waiter, error)
        consumers, self._consumers = self._consumers, {}
        for consumer in consumers.values():
            consumer._end(error)
        self._conn._drop_held_publishes(self, error)


# With the C accelerator, Message.ack does what it and _ack above do for an ack that goes
# straight into the core's output, without their frames (core/_speedups_ack.h).
install_message_ack(Message, ChannelLogic._ack)
