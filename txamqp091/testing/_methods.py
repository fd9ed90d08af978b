"""The fake broker's channel methods: declare, bind, consume, publish, ack, confirm, tx.

:class:`ChannelMethods` answers one client connection's channel-level requests
against its :class:`~._state.VirtualHost`. A handler that meets a condition
RabbitMQ treats as an error raises ``BrokerChannelError`` (the channel closes) or
``BrokerConnectionError`` (the connection closes) with RabbitMQ's reply code and
text; the connection (:mod:`._connection`) turns those into Channel.Close or
Connection.Close frames. The connection is reached through :class:`MethodHost`,
so this module does not import it.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any, Protocol

from ..core import spec
from ..core.codec import FieldTable
from ..core.testing import ServerFrames
from ._model import (
    EXCHANGE_TYPES,
    OVERFLOW_MODES,
    Binding,
    BrokerChannelError,
    BrokerConnectionError,
    FakeExchange,
    StoredMessage,
    flag,
)
from ._state import BrokerChannel, BrokerConsumer, ConnectionSide, FakeQueue, Unacked, VirtualHost

__all__ = ["ChannelMethods", "MethodHost"]


class MethodHost(ConnectionSide, Protocol):
    """What the channel methods need from the connection they run on."""

    vhost: VirtualHost
    virtual_host: str
    frames: ServerFrames
    frame_max: int
    channels: dict[int, BrokerChannel]
    hold_confirms: bool

    def write(self, data: bytes) -> None:
        """Send bytes to the client."""
        ...

    def send_confirm(self, channel: BrokerChannel, seq: int, ok: bool, multiple: bool) -> None:
        """Send Basic.Ack (``ok``) or Basic.Nack for publish ``seq``."""
        ...


class ChannelMethods:
    """Handlers for the channel methods of one client connection."""

    def __init__(self, conn: MethodHost) -> None:
        self.conn = conn
        self._ctag = 0

    def handle(self, channel: BrokerChannel, method: spec.Method) -> None:
        """Run the handler of ``method`` (the spec's reply is written by the handler)."""
        handler = self._HANDLERS.get(type(method))
        if handler is None:
            raise BrokerConnectionError(
                spec.NOT_IMPLEMENTED, f"NOT_IMPLEMENTED - {method.NAME} is not supported"
            )
        handler(self, channel, method)

    def _reply(self, channel: BrokerChannel, request: spec.Method, **fields: Any) -> None:
        if not getattr(request, "nowait", False):
            self.conn.write(self.conn.frames.reply(channel.channel_id, request, **fields))

    def _not_found(self, kind: str, name: str) -> BrokerChannelError:
        return BrokerChannelError(
            spec.NOT_FOUND, f"NOT_FOUND - no {kind} '{name}' in vhost '{self.conn.virtual_host}'"
        )

    def _exchange(self, name: str) -> FakeExchange:
        exchange = self.conn.vhost.exchanges.get(name)
        if exchange is None:
            raise self._not_found("exchange", name)
        return exchange

    def _queue(self, channel: BrokerChannel, name: str) -> FakeQueue:
        name = name or channel.last_queue
        queue = self.conn.vhost.queues.get(name)
        if queue is None:
            raise self._not_found("queue", name)
        if queue.owner is not None and queue.owner is not self.conn:
            raise BrokerChannelError(
                spec.RESOURCE_LOCKED,
                f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{name}' "
                f"in vhost '{self.conn.virtual_host}'",
            )
        return queue

    def _on_channel_close(self, channel: BrokerChannel, method: spec.ChannelClose) -> None:
        self.conn.vhost.release_channel(channel)
        del self.conn.channels[channel.channel_id]
        self.conn.write(self.conn.frames.channel_close_ok(channel.channel_id))

    def _on_ignored(self, channel: BrokerChannel, method: spec.Method) -> None:
        pass  # Close-Ok, Flow-Ok and Cancel-Ok answering the broker's own requests

    def _on_flow(self, channel: BrokerChannel, method: spec.ChannelFlow) -> None:
        if not method.active:
            # RabbitMQ does not let clients stop deliveries this way.
            raise BrokerConnectionError(spec.NOT_IMPLEMENTED, "NOT_IMPLEMENTED - active=false")
        self._reply(channel, method)

    def _on_exchange_declare(self, channel: BrokerChannel, method: spec.ExchangeDeclare) -> None:
        name = method.exchange
        exchange = self.conn.vhost.exchanges.get(name)
        if method.passive:
            self._exchange(name)
        elif name == "":
            raise BrokerChannelError(
                spec.ACCESS_REFUSED,
                "ACCESS_REFUSED - operation not permitted on the default exchange",
            )
        elif exchange is None:
            if name.startswith("amq."):
                raise BrokerChannelError(
                    spec.ACCESS_REFUSED,
                    f"ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'",
                )
            if method.type not in EXCHANGE_TYPES:
                raise BrokerConnectionError(
                    spec.COMMAND_INVALID, f"COMMAND_INVALID - unknown exchange type '{method.type}'"
                )
            self.conn.vhost.exchanges[name] = FakeExchange(
                name,
                method.type,
                method.durable,
                method.auto_delete,
                method.internal,
                dict(method.arguments),
            )
        else:
            for arg, received, current in (
                ("type", method.type, exchange.type),
                ("durable", flag(method.durable), flag(exchange.durable)),
                ("auto_delete", flag(method.auto_delete), flag(exchange.auto_delete)),
                ("internal", flag(method.internal), flag(exchange.internal)),
            ):
                if received != current:
                    raise BrokerChannelError(
                        spec.PRECONDITION_FAILED,
                        f"PRECONDITION_FAILED - inequivalent arg '{arg}' for exchange '{name}' in "
                        f"vhost '{self.conn.virtual_host}': received '{received}' but current is "
                        f"'{current}'",
                    )
        self._reply(channel, method)

    def _on_exchange_delete(self, channel: BrokerChannel, method: spec.ExchangeDelete) -> None:
        name = method.exchange
        if name == "" or name.startswith("amq."):
            raise BrokerChannelError(
                spec.ACCESS_REFUSED,
                f"ACCESS_REFUSED - operation not permitted on exchange '{name}'",
            )
        exchange = self.conn.vhost.exchanges.get(name)
        if exchange is not None:
            if method.if_unused and exchange.bindings:
                raise BrokerChannelError(
                    spec.PRECONDITION_FAILED,
                    f"PRECONDITION_FAILED - exchange '{name}' in vhost '{self.conn.virtual_host}' in use",
                )
            self.conn.vhost.delete_exchange(name)
        self._reply(channel, method)

    def _on_exchange_bind(self, channel: BrokerChannel, method: spec.ExchangeBind) -> None:
        self._exchange(method.destination)
        source = self._exchange(method.source)
        binding = Binding(method.destination, False, method.routing_key, dict(method.arguments))
        self.conn.vhost.add_binding(source, binding)
        self._reply(channel, method)

    def _on_exchange_unbind(self, channel: BrokerChannel, method: spec.ExchangeUnbind) -> None:
        source = self.conn.vhost.exchanges.get(method.source)
        if source is not None:
            binding = Binding(method.destination, False, method.routing_key, dict(method.arguments))
            self.conn.vhost.remove_binding(source, binding)
        self._reply(channel, method)

    def _on_queue_declare(self, channel: BrokerChannel, method: spec.QueueDeclare) -> None:
        vhost = self.conn.vhost
        name = method.queue
        if method.passive:
            queue = self._queue(channel, name)
        else:
            if name.startswith("amq."):
                raise BrokerChannelError(
                    spec.ACCESS_REFUSED,
                    f"ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'",
                )
            if name == "":
                token = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
                name = f"amq.gen-{token}"
            self._check_queue_arguments(method.arguments)
            existing = vhost.queues.get(name)
            if existing is None:
                queue = FakeQueue(
                    name,
                    method.durable,
                    method.exclusive,
                    method.auto_delete,
                    dict(method.arguments),
                    owner=self.conn if method.exclusive else None,
                )
                vhost.queues[name] = queue
            else:
                queue = self._queue(channel, name)
                for arg, received, current in (
                    ("durable", method.durable, queue.durable),
                    ("exclusive", method.exclusive, queue.exclusive),
                    ("auto_delete", method.auto_delete, queue.auto_delete),
                ):
                    if received != current:
                        raise BrokerChannelError(
                            spec.PRECONDITION_FAILED,
                            f"PRECONDITION_FAILED - inequivalent arg '{arg}' for queue '{name}' in "
                            f"vhost '{self.conn.virtual_host}': received '{flag(received)}' but "
                            f"current is '{flag(current)}'",
                        )
        channel.last_queue = queue.name
        self._reply(
            channel,
            method,
            queue=queue.name,
            message_count=len(queue.messages),
            consumer_count=len(queue.consumers),
        )

    @staticmethod
    def _check_queue_arguments(arguments: FieldTable) -> None:
        limit = arguments.get("x-max-length")
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise BrokerChannelError(
                spec.PRECONDITION_FAILED,
                f"PRECONDITION_FAILED - invalid arg 'x-max-length' for queue: {limit!r}",
            )
        overflow = arguments.get("x-overflow")
        if overflow is not None and overflow not in OVERFLOW_MODES:
            raise BrokerChannelError(
                spec.PRECONDITION_FAILED,
                f"PRECONDITION_FAILED - invalid arg 'x-overflow' for queue: {overflow!r}",
            )

    def _on_queue_bind(self, channel: BrokerChannel, method: spec.QueueBind) -> None:
        queue = self._queue(channel, method.queue)
        if method.exchange == "":
            raise BrokerChannelError(
                spec.ACCESS_REFUSED,
                "ACCESS_REFUSED - operation not permitted on the default exchange",
            )
        source = self._exchange(method.exchange)
        binding = Binding(queue.name, True, method.routing_key, dict(method.arguments))
        self.conn.vhost.add_binding(source, binding)
        self._reply(channel, method)

    def _on_queue_unbind(self, channel: BrokerChannel, method: spec.QueueUnbind) -> None:
        queue = self._queue(channel, method.queue)
        source = self.conn.vhost.exchanges.get(method.exchange)
        if source is not None:
            binding = Binding(queue.name, True, method.routing_key, dict(method.arguments))
            self.conn.vhost.remove_binding(source, binding)
        self._reply(channel, method)

    def _on_queue_purge(self, channel: BrokerChannel, method: spec.QueuePurge) -> None:
        queue = self._queue(channel, method.queue)
        count = len(queue.messages)
        queue.messages.clear()
        self._reply(channel, method, message_count=count)

    def _on_queue_delete(self, channel: BrokerChannel, method: spec.QueueDelete) -> None:
        name = method.queue or channel.last_queue
        count = 0
        if name in self.conn.vhost.queues:
            queue = self._queue(channel, name)
            if method.if_unused and queue.consumers:
                raise BrokerChannelError(
                    spec.PRECONDITION_FAILED,
                    f"PRECONDITION_FAILED - queue '{name}' in vhost '{self.conn.virtual_host}' in use",
                )
            if method.if_empty and queue.messages:
                raise BrokerChannelError(
                    spec.PRECONDITION_FAILED,
                    f"PRECONDITION_FAILED - queue '{name}' in vhost '{self.conn.virtual_host}' is not empty",
                )
            count = self.conn.vhost.delete_queue(queue)
        self._reply(channel, method, message_count=count)

    def _on_qos(self, channel: BrokerChannel, method: spec.BasicQos) -> None:
        if method.prefetch_size:
            raise BrokerConnectionError(
                spec.NOT_IMPLEMENTED, f"NOT_IMPLEMENTED - prefetch_size!=0 ({method.prefetch_size})"
            )
        if method.global_qos:
            channel.global_prefetch = method.prefetch_count
        else:
            channel.prefetch_count = method.prefetch_count
        self._reply(channel, method)

    def _on_consume(self, channel: BrokerChannel, method: spec.BasicConsume) -> None:
        queue = self._queue(channel, method.queue)
        tag = method.consumer_tag
        if not tag:
            self._ctag += 1
            tag = f"amq.ctag-fake-{id(self.conn):x}-{self._ctag}"
        if tag in channel.consumers:
            raise BrokerConnectionError(
                spec.NOT_ALLOWED, f"NOT_ALLOWED - attempt to reuse consumer tag '{tag}'"
            )
        if queue.consumers and (method.exclusive or any(c.exclusive for c in queue.consumers)):
            raise BrokerChannelError(
                spec.ACCESS_REFUSED,
                f"ACCESS_REFUSED - queue '{queue.name}' in vhost '{self.conn.virtual_host}' in "
                "exclusive use",
            )
        consumer = BrokerConsumer(
            tag, queue.name, channel, method.no_ack, method.exclusive, channel.prefetch_count
        )
        channel.consumers[tag] = consumer
        queue.consumers.append(consumer)
        self._reply(channel, method, consumer_tag=tag)

    def _on_cancel(self, channel: BrokerChannel, method: spec.BasicCancel) -> None:
        consumer = channel.consumers.get(method.consumer_tag)
        if consumer is not None:
            self.conn.vhost.remove_consumer(consumer)
        self._reply(channel, method)

    def _on_get(self, channel: BrokerChannel, method: spec.BasicGet) -> None:
        queue = self._queue(channel, method.queue)
        if not queue.messages:
            self.conn.write(self.conn.frames.get_empty(channel.channel_id))
            return
        message = queue.messages.popleft()
        tag = channel.next_delivery_tag
        channel.next_delivery_tag += 1
        if not method.no_ack:
            channel.unacked[tag] = Unacked(queue.name, message, None)
        self.conn.write(
            self.conn.frames.get_ok(
                channel.channel_id,
                tag,
                message.body,
                message.properties,
                message.exchange,
                message.routing_key,
                message.redelivered,
                len(queue.messages),
                frame_max=self.conn.frame_max,
            )
        )

    def _take_unacked(self, channel: BrokerChannel, tag: int, multiple: bool) -> list[Unacked]:
        if tag and tag not in channel.unacked:
            raise BrokerChannelError(
                spec.PRECONDITION_FAILED, f"PRECONDITION_FAILED - unknown delivery tag {tag}"
            )
        if not multiple:
            tags = [tag]
        else:
            tags = sorted(t for t in channel.unacked if not tag or t <= tag)
        return [channel.unacked.pop(t) for t in tags]

    def _settle(self, channel: BrokerChannel, tag: int, multiple: bool, requeue: bool) -> None:
        if channel.tx:
            # Validate now, apply on commit (RabbitMQ checks tags when they arrive).
            if tag and tag not in channel.unacked:
                self._take_unacked(channel, tag, multiple)

            def apply() -> None:
                if not tag or tag in channel.unacked:
                    self._apply_settle(self._take_unacked(channel, tag, multiple), requeue)

            channel.tx_pending.append(apply)
            return
        self._apply_settle(self._take_unacked(channel, tag, multiple), requeue)

    def _apply_settle(self, entries: list[Unacked], requeue: bool) -> None:
        if requeue:
            self.conn.vhost.requeue(entries)
            return
        for entry in entries:
            if entry.consumer is not None:
                entry.consumer.unacked -= 1

    def _on_ack(self, channel: BrokerChannel, method: spec.BasicAck) -> None:
        self._settle(channel, method.delivery_tag, method.multiple, requeue=False)

    def _on_nack(self, channel: BrokerChannel, method: spec.BasicNack) -> None:
        self._settle(channel, method.delivery_tag, method.multiple, method.requeue)

    def _on_reject(self, channel: BrokerChannel, method: spec.BasicReject) -> None:
        self._settle(channel, method.delivery_tag, False, method.requeue)

    def _on_recover(
        self, channel: BrokerChannel, method: spec.BasicRecover | spec.BasicRecoverAsync
    ) -> None:
        if not method.requeue:
            raise BrokerConnectionError(spec.NOT_IMPLEMENTED, "NOT_IMPLEMENTED - requeue=false")
        unacked, channel.unacked = channel.unacked, {}
        self.conn.vhost.requeue(unacked[tag] for tag in sorted(unacked))
        if isinstance(method, spec.BasicRecover):
            self._reply(channel, method)

    def _on_confirm_select(self, channel: BrokerChannel, method: spec.ConfirmSelect) -> None:
        if channel.tx:
            raise BrokerChannelError(
                spec.PRECONDITION_FAILED,
                "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
            )
        channel.confirm = True
        self._reply(channel, method)

    def _on_tx_select(self, channel: BrokerChannel, method: spec.TxSelect) -> None:
        if channel.confirm:
            raise BrokerChannelError(
                spec.PRECONDITION_FAILED,
                "PRECONDITION_FAILED - cannot switch from confirm to tx mode",
            )
        channel.tx = True
        self._reply(channel, method)

    def _on_tx_end(self, channel: BrokerChannel, method: spec.TxCommit | spec.TxRollback) -> None:
        if not channel.tx:
            raise BrokerChannelError(
                spec.PRECONDITION_FAILED, "PRECONDITION_FAILED - channel is not transactional"
            )
        pending, channel.tx_pending = channel.tx_pending, []
        if isinstance(method, spec.TxCommit):
            for action in pending:
                action()
        self._reply(channel, method)

    def publish(
        self,
        channel: BrokerChannel,
        method: spec.BasicPublish,
        properties: spec.BasicProperties,
        body: bytes,
    ) -> None:
        """A complete Basic.Publish: route it, return it if unroutable, confirm it."""
        vhost = self.conn.vhost
        exchange = self._exchange(method.exchange)
        if exchange.internal:
            raise BrokerChannelError(
                spec.ACCESS_REFUSED,
                f"ACCESS_REFUSED - cannot publish to internal exchange '{exchange.name}' in vhost "
                f"'{self.conn.virtual_host}'",
            )
        seq = 0
        if channel.confirm:
            seq = channel.next_publish_seq
            channel.next_publish_seq += 1

        def deliver() -> None:
            queues = vhost.route(method.exchange, method.routing_key, properties.headers)
            if not queues and method.mandatory:
                self.conn.write(
                    self.conn.frames.basic_return(
                        channel.channel_id,
                        body,
                        properties,
                        spec.NO_ROUTE,
                        "NO_ROUTE",
                        method.exchange,
                        method.routing_key,
                        frame_max=self.conn.frame_max,
                    )
                )
            accepted = True
            for queue in queues:
                message = StoredMessage(method.exchange, method.routing_key, body, properties)
                accepted = vhost.enqueue(queue, message) and accepted
            if seq:
                if self.conn.hold_confirms:
                    channel.held_confirms.append((seq, accepted))
                else:
                    self.conn.send_confirm(channel, seq, accepted, False)

        if channel.tx:
            channel.tx_pending.append(deliver)
        else:
            deliver()

    _HANDLERS: dict[type, Callable[[ChannelMethods, BrokerChannel, Any], None]] = {
        spec.ChannelClose: _on_channel_close,
        spec.ChannelCloseOk: _on_ignored,
        spec.ChannelFlow: _on_flow,
        spec.ChannelFlowOk: _on_ignored,
        spec.ExchangeDeclare: _on_exchange_declare,
        spec.ExchangeDelete: _on_exchange_delete,
        spec.ExchangeBind: _on_exchange_bind,
        spec.ExchangeUnbind: _on_exchange_unbind,
        spec.QueueDeclare: _on_queue_declare,
        spec.QueueBind: _on_queue_bind,
        spec.QueueUnbind: _on_queue_unbind,
        spec.QueuePurge: _on_queue_purge,
        spec.QueueDelete: _on_queue_delete,
        spec.BasicQos: _on_qos,
        spec.BasicConsume: _on_consume,
        spec.BasicCancel: _on_cancel,
        spec.BasicCancelOk: _on_ignored,
        spec.BasicGet: _on_get,
        spec.BasicAck: _on_ack,
        spec.BasicNack: _on_nack,
        spec.BasicReject: _on_reject,
        spec.BasicRecover: _on_recover,
        spec.BasicRecoverAsync: _on_recover,
        spec.ConfirmSelect: _on_confirm_select,
        spec.TxSelect: _on_tx_select,
        spec.TxCommit: _on_tx_end,
        spec.TxRollback: _on_tx_end,
    }
