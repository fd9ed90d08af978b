"""The channel API both adapters expose: pika's method names, returning waiters.

Each operation builds its spec method, hands it to the core channel (which
keeps one synchronous request in flight and the rest in order) and, when a
reply is due, appends a waiter to ``_replies``. Replies arrive in request
order, so each :class:`~txamqp091.core.events.MethodReply` settles the oldest
waiter. A waiter the user cancelled still takes its reply, so cancelling never
desynchronises the channel.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Protocol

from .. import validation as validate
from ..core import spec
from ..core.channel import Channel as CoreChannel
from ..core.events import ChannelClosed as ChannelClosedEvent
from ..core.events import GetOk, Returned
from ..core.states import ChannelState
from ..exceptions import (
    ChannelClosedByClient,
    ChannelWrongStateError,
    ConsumerCancelled,
    DuplicateConsumerTag,
    UnroutableError,
)
from ..message import Message
from ..params import ConnectionParameters
from .api import ChannelAPI, documented_by
from .confirms import ConfirmTracker, PendingPublish
from .consumer import ConsumerLogic, message_callback, new_consumer_tag
from .runtime import Runtime, W
from .streams import check_stream_consume

__all__ = ["ChannelLogic", "ConnectionHooks"]

Transform = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def _none(value: Any) -> None:
    return None


class ConnectionHooks(Protocol[W]):
    """What a channel needs of its connection (:class:`~.connection.ConnectionLogic`):
    named here so that this module does not import the connection that imports it."""

    _runtime: Runtime[W]
    params: ConnectionParameters

    @property
    def is_open(self) -> bool: ...

    def _schedule_flush(self) -> None: ...

    def _published(self, size: int) -> None: ...

    def _publish_gate_open(self) -> bool: ...

    def _hold_publish(
        self,
        channel: ChannelLogic[W],
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: spec.BasicProperties | None,
        mandatory: bool,
    ) -> W: ...

    def _drop_held_publishes(self, channel: ChannelLogic[W], error: BaseException) -> None: ...

    def _buffered_changed(self, delta: int) -> None: ...

    def _forget_channel(self, channel: ChannelLogic[W]) -> None: ...

    def channel(self) -> W: ...


@documented_by(ChannelAPI)
class ChannelLogic(Generic[W]):
    """One AMQP channel; adapters subclass it to give it their waiter type."""

    consumer_class: type[ConsumerLogic[Any]] = ConsumerLogic

    def __init__(self, conn: ConnectionHooks[W], core: CoreChannel) -> None:
        self._conn = conn
        self._runtime = conn._runtime
        self._core = core
        self.channel_number = core.channel_id
        self._replies: deque[tuple[W, Transform]] = deque()
        self._closing: W | None = None
        self._close_error: BaseException | None = None
        self._closed_waiters: list[W] = []
        self._confirms: ConfirmTracker[W] = ConfirmTracker(
            self._runtime.resolve, self._runtime.reject, self._confirms_settled
        )
        #: In confirm mode, the unconfirmed publishes allowed before ``basic_publish``
        #: waits (0: no limit); and the largest body ``basic_publish`` accepts.
        self._max_unconfirmed = conn.params.max_unconfirmed
        self._max_message_size = conn.params.max_message_size
        self._consumers: dict[str, ConsumerLogic[W]] = {}
        self._on_return: list[Callable[..., Any]] = []
        self._on_cancel: list[Callable[..., Any]] = []
        self._on_close: list[Callable[..., Any]] = []
        #: False while the broker has stopped our publishes (Channel.Flow active=False);
        #: publishes then wait in ``_flow_held`` (arguments, waiter) until it resumes them.
        #: They wait there too while the confirm window (``max_unconfirmed``) is full.
        self._flow_active = True
        self._flow_held: deque[tuple[tuple[Any, ...], W]] = deque()
        #: The last non-global ``basic_qos`` prefetch_count: a stream consumer needs one.
        self._consumer_prefetch = 0

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<{type(self).__name__} {self.channel_number} {state}>"

    # -- state ----------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._close_error is None and self._closing is None

    @property
    def is_closed(self) -> bool:
        """Whether the channel has ended (the opposite of ``is_open`` once it was open)."""
        return self._close_error is not None

    @property
    def closed(self) -> W:
        """Fires once the channel has ended: with None after a close this client asked
        for, else with the exception that ended it. Never fails."""
        if self._close_error is not None:
            return self._runtime.succeeded(self._closed_value())
        waiter = self._runtime.create_waiter()
        self._closed_waiters.append(waiter)
        return waiter

    def _closed_value(self) -> BaseException | None:
        error = self._close_error
        if isinstance(error, ChannelClosedByClient) and error.reply_code in (0, 200):
            return None
        return error

    def _check_open(self) -> None:
        if self._close_error is not None:
            raise ChannelWrongStateError(
                f"channel {self.channel_number} is closed: {self._close_error}"
            )
        if self._closing is not None:
            raise ChannelWrongStateError(f"channel {self.channel_number} is closing")

    # -- requests ---------------------------------------------------------------------------

    def _rpc(self, method: spec.Method, transform: Transform = _identity) -> W:
        """Send ``method``; the waiter fires with ``transform(reply)``."""
        try:
            self._check_open()
            self._core.send_method(method)
        except Exception as exc:
            return self._runtime.failed(exc)
        self._conn._schedule_flush()
        if not self._core.expects_reply(method):
            return self._runtime.succeeded(None)
        waiter = self._runtime.create_waiter()
        self._replies.append((waiter, transform))
        return waiter

    def _send_async(self, method: spec.Method) -> None:
        self._check_open()
        self._core.send_method(method)
        self._conn._schedule_flush()

    def exchange_declare(
        self,
        exchange: str,
        exchange_type: str = "direct",
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> W:
        validate.exchange_declare(
            exchange, exchange_type, passive, durable, auto_delete, internal, arguments
        )
        return self._rpc(
            spec.ExchangeDeclare(
                exchange=exchange,
                type=str(exchange_type),
                passive=passive,
                durable=durable,
                auto_delete=auto_delete,
                internal=internal,
                arguments=arguments,
            )
        )

    def exchange_delete(self, exchange: str = "", if_unused: bool = False) -> W:
        validate.exchange_delete(exchange, if_unused)
        return self._rpc(spec.ExchangeDelete(exchange=exchange, if_unused=if_unused))

    def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> W:
        validate.exchange_bind(destination, source, routing_key, arguments)
        return self._rpc(
            spec.ExchangeBind(
                destination=destination, source=source, routing_key=routing_key, arguments=arguments
            )
        )

    def exchange_unbind(
        self,
        destination: str = "",
        source: str = "",
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> W:
        validate.exchange_unbind(destination, source, routing_key, arguments)
        return self._rpc(
            spec.ExchangeUnbind(
                destination=destination, source=source, routing_key=routing_key, arguments=arguments
            )
        )

    def queue_declare(
        self,
        queue: str,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> W:
        """Fires with Queue.DeclareOk: ``.queue``, ``.message_count``, ``.consumer_count``."""
        validate.queue_declare(queue, passive, durable, exclusive, auto_delete, arguments)
        return self._rpc(
            spec.QueueDeclare(
                queue=queue,
                passive=passive,
                durable=durable,
                exclusive=exclusive,
                auto_delete=auto_delete,
                arguments=arguments,
            )
        )

    def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> W:
        # pika: a missing routing key means the queue's name.
        validate.queue_bind(queue, exchange, routing_key, arguments)
        key = queue if routing_key is None else routing_key
        return self._rpc(
            spec.QueueBind(queue=queue, exchange=exchange, routing_key=key, arguments=arguments)
        )

    def queue_unbind(
        self,
        queue: str,
        exchange: str = "",
        routing_key: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> W:
        validate.queue_unbind(queue, exchange, routing_key, arguments)
        key = queue if routing_key is None else routing_key
        return self._rpc(
            spec.QueueUnbind(queue=queue, exchange=exchange, routing_key=key, arguments=arguments)
        )

    def queue_purge(self, queue: str) -> W:
        """Fires with Queue.PurgeOk: ``.message_count`` purged."""
        validate.queue_purge(queue)
        return self._rpc(spec.QueuePurge(queue=queue))

    def queue_delete(self, queue: str, if_unused: bool = False, if_empty: bool = False) -> W:
        """Fires with Queue.DeleteOk: ``.message_count`` deleted with it."""
        validate.queue_delete(queue, if_unused, if_empty)
        return self._rpc(spec.QueueDelete(queue=queue, if_unused=if_unused, if_empty=if_empty))

    def basic_qos(
        self, prefetch_size: int = 0, prefetch_count: int = 0, global_qos: bool = False
    ) -> W:
        validate.basic_qos(prefetch_size, prefetch_count, global_qos)
        if not global_qos:
            self._consumer_prefetch = prefetch_count
        return self._rpc(
            spec.BasicQos(
                prefetch_size=prefetch_size, prefetch_count=prefetch_count, global_qos=global_qos
            )
        )

    def basic_recover(self, requeue: bool = False) -> W:
        validate.basic_recover(requeue)
        return self._rpc(spec.BasicRecover(requeue=requeue))

    def confirm_delivery(self) -> W:
        """Confirm.Select: from now on ``basic_publish`` fires on the broker's ack."""
        return self._rpc(spec.ConfirmSelect())

    def tx_select(self) -> W:
        return self._rpc(spec.TxSelect())

    def tx_commit(self) -> W:
        return self._rpc(spec.TxCommit())

    def tx_rollback(self) -> W:
        return self._rpc(spec.TxRollback())

    def flow(self, active: bool) -> W:
        """Channel.Flow: ask the broker to pause (False) or resume deliveries; fires with the
        state the broker confirmed."""
        validate.flow(active)
        return self._rpc(spec.ChannelFlow(active=active), lambda ok: ok.active)

    # -- publishing --------------------------------------------------------------------------

    @property
    def publisher_confirms(self) -> bool:
        return self._core.confirm_mode

    def basic_publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | bytearray | memoryview | str,
        properties: spec.BasicProperties | None = None,
        mandatory: bool = False,
    ) -> W:
        """Publish a message.

        Outside confirm mode the waiter fires once the frames are handed to the
        transport (after waiting while the broker blocks the connection or the
        transport pushes back). In confirm mode it fires on the broker's ack,
        fails with ``NackError`` on a nack and ``UnroutableError`` when a
        mandatory message is returned.
        """
        validate.basic_publish(exchange, routing_key, body, properties, mandatory)
        if type(body) is not bytes:
            body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        if len(body) > self._max_message_size:
            raise ValueError(
                f"body of {len(body)} bytes exceeds max_message_size {self._max_message_size}"
            )
        if self._close_error is not None or self._closing is not None:
            return self._runtime.failed(
                ChannelWrongStateError(f"channel {self.channel_number} is closed")
            )
        limit = self._max_unconfirmed
        if not self._flow_active or self._flow_held or (limit and len(self._confirms) >= limit):
            # Held in order behind anything already waiting: the broker stopped us
            # (Channel.Flow), or as many publishes as allowed wait for their confirms.
            waiter = self._runtime.create_waiter()
            self._flow_held.append(((exchange, routing_key, body, properties, mandatory), waiter))
            return waiter
        conn = self._conn
        if not conn._publish_gate_open():
            return conn._hold_publish(self, exchange, routing_key, body, properties, mandatory)
        return self._publish_now(exchange, routing_key, body, properties, mandatory)

    def _on_flow(self, active: bool) -> None:
        """The broker's Channel.Flow: stop publishing, or resume and send what waited."""
        self._flow_active = active
        if active and self._flow_held:
            self._release_held_here()

    def _confirms_settled(self) -> None:
        """Acks or nacks made room in the confirm window: send what waited for it."""
        if self._flow_held and self._flow_active:
            self._release_held_here()

    def _release_held_here(self) -> None:
        """Send the publishes this channel held, in order, while the broker lets us
        (flow) and the confirm window has room."""
        runtime = self._runtime
        conn = self._conn
        held = self._flow_held
        limit = self._max_unconfirmed
        while held and self._flow_active and not (limit and len(self._confirms) >= limit):
            args, waiter = held.popleft()
            if runtime.is_done(waiter):
                continue  # cancelled while it waited: never sent
            if not self.is_open:
                runtime.reject(waiter, ChannelWrongStateError("channel closed"))
                continue
            exchange, routing_key, body, properties, mandatory = args
            if conn._publish_gate_open():
                self._publish_now(exchange, routing_key, body, properties, mandatory, waiter)
            else:
                self._relay(conn._hold_publish(self, *args), waiter)

    def _relay(self, source: W, target: W) -> None:
        runtime = self._runtime
        runtime.on_result(
            source,
            lambda value: runtime.resolve(target, value),
            lambda error: runtime.reject(target, error),
        )

    def _publish_now(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: spec.BasicProperties | None,
        mandatory: bool,
        waiter: W | None = None,
    ) -> W:
        runtime = self._runtime
        try:
            seq = self._core.publish(exchange, routing_key, body, properties, mandatory)
        except Exception as exc:
            if waiter is not None:
                runtime.reject(waiter, exc)
                return waiter
            return runtime.failed(exc)
        self._conn._published(len(body))
        if not seq:
            if waiter is not None:
                runtime.resolve(waiter, None)
                return waiter
            return runtime.succeeded(None)
        if waiter is None:
            waiter = runtime.create_waiter()
        self._confirms.add(seq, PendingPublish(waiter, exchange, routing_key, body, mandatory))
        return waiter

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
        if tag in self._consumers:
            return self._runtime.failed(DuplicateConsumerTag(tag))
        consumer = self.consumer_class(
            self, queue, tag, on_message_callback, auto_ack, exclusive, arguments
        )
        method = spec.BasicConsume(
            queue=queue, consumer_tag=tag, no_ack=auto_ack, exclusive=exclusive, arguments=arguments
        )
        self._consumers[tag] = consumer

        def registered(ok: spec.BasicConsumeOk) -> ConsumerLogic[W]:
            return consumer

        waiter = self._rpc(method, registered)
        self._runtime.add_done(waiter, lambda: self._forget_failed_consumer(consumer))
        return waiter

    def _buffered_changed(self, delta: int) -> None:
        self._conn._buffered_changed(delta)

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

    def _settle(self, message: Message, how: str, **kwargs: Any) -> None:
        """Ack/nack/reject through a message: only on the channel incarnation it came on,
        so it never settles a stranger that reuses its delivery tag after a reconnect."""
        tag = message.delivery_tag
        if (
            how == "ack"
            and message._core_channel is self._core
            and self._closing is None
            and self._close_error is None
            and self._runtime.in_loop_thread()
            and self._core.send_ack(tag, bool(kwargs.get("multiple", False)))
        ):
            self._conn._schedule_flush()
            return
        method: spec.Method
        if how == "ack":
            method = spec.BasicAck(delivery_tag=tag, **kwargs)
        elif how == "nack":
            method = spec.BasicNack(delivery_tag=tag, **kwargs)
        else:
            method = spec.BasicReject(delivery_tag=tag, **kwargs)
        core = message._core_channel
        assert isinstance(core, CoreChannel)
        self._send_settlement(method, core)

    # -- callbacks ---------------------------------------------------------------------------------

    def add_on_return_callback(self, callback: Callable[[Message], Any]) -> None:
        """``callback(message)`` for each message the broker returns (``message.reply_code``...)."""
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

    def _on_reply(self, value: Any) -> None:
        if not self._replies:
            return
        waiter, transform = self._replies.popleft()
        runtime = self._runtime
        if runtime.is_done(waiter):
            return  # cancelled by the user; the reply is consumed all the same
        try:
            result = transform(value)
        except Exception as exc:
            runtime.reject(waiter, exc)
        else:
            runtime.resolve(waiter, result)

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
        )
        message.message_count = event.message_count
        message._channel = self
        message._core_channel = self._core
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
        consumer._deliver(message)

    def _on_returned(self, event: Returned) -> None:
        message = Message(
            event.channel_id,
            "",
            0,
            False,
            event.exchange,
            event.routing_key,
            event.properties,
            event.body,
        )
        message._channel = self
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
        for entry in self._confirms.take_all():
            runtime.reject(entry.waiter, error)
        flow_held, self._flow_held = self._flow_held, deque()
        for _, waiter in flow_held:
            runtime.reject(waiter, error)
        consumers, self._consumers = self._consumers, {}
        for consumer in consumers.values():
            consumer._end(error)
        self._conn._drop_held_publishes(self, error)
