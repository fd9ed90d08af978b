"""The declaring requests of a channel: exchanges, queues, bindings, QoS, transactions.

Each is one synchronous method whose reply settles the waiter it returns
(:meth:`~.channel_base.ChannelBase._rpc`); the arguments are checked first by
:mod:`txamqp091.validation`, so a wrong one fails at the call, not as a channel error.
"""

from __future__ import annotations

from typing import Any

from .. import validation as validate
from ..core import spec
from .api import ChannelAPI, documented_by
from .channel_base import ChannelBase
from .runtime import W

__all__ = ["DeclaringChannel"]


@documented_by(ChannelAPI)
class DeclaringChannel(ChannelBase[W]):
    """The declare, bind, QoS, confirm-select and transaction methods of a channel."""

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
