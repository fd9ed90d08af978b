"""The surviving channel's declarations, deletes and other requests: each records
what it changes in the :class:`~.topology.Topology` (or forgets it), then runs the
plain channel's own method on the current incarnation.

:class:`TopologyOperations` is the base of :class:`~.recovering.SurvivingChannel`,
which supplies ``_run`` (run now, or park until there is a channel) and ``_declare``
(record, then run).
"""

from __future__ import annotations

from typing import Any, Generic

from .. import validation as validate
from .api import ChannelAPI, documented_by
from .parking import NOTHING, Operation
from .runtime import Runtime, W
from .topology import (
    ConfirmSelect,
    ExchangeBinding,
    ExchangeDeclaration,
    Qos,
    QueueBinding,
    QueueDeclaration,
    Record,
    Topology,
    TxSelect,
)

__all__ = ["TopologyOperations"]


def _ignore(value: object) -> None:
    return None


@documented_by(ChannelAPI)
class TopologyOperations(Generic[W]):
    """Channel requests that name exchanges and queues, recorded for replay."""

    _runtime: Runtime[W]
    _topology: Topology

    def _run(self, operation: Operation, subjects: frozenset[str] = NOTHING) -> W:
        raise NotImplementedError

    def _declare(self, record: Record, subjects: frozenset[str] = NOTHING) -> W:
        raise NotImplementedError

    def _queue_names(self, queue: str) -> frozenset[str]:
        """A queue's names: as the user knows it, and on the current connection."""
        return frozenset((queue, self._topology.name(queue)))

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
        subjects = frozenset((exchange,))
        if passive:
            return self._run(
                lambda inner: inner.exchange_declare(
                    exchange, exchange_type, True, durable, auto_delete, internal, arguments
                ),
                subjects,
            )
        record = ExchangeDeclaration(
            exchange, str(exchange_type), durable, auto_delete, internal, arguments
        )
        return self._declare(record, subjects)

    def exchange_delete(self, exchange: str = "", if_unused: bool = False) -> W:
        validate.exchange_delete(exchange, if_unused)
        self._topology.remove_exchange(exchange)
        return self._run(
            lambda inner: inner.exchange_delete(exchange, if_unused), frozenset((exchange,))
        )

    def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> W:
        validate.exchange_bind(destination, source, routing_key, arguments)
        record = ExchangeBinding(destination, source, routing_key, arguments)
        return self._declare(record, frozenset((destination, source)))

    def exchange_unbind(
        self,
        destination: str = "",
        source: str = "",
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> W:
        validate.exchange_unbind(destination, source, routing_key, arguments)
        self._topology.remove(ExchangeBinding(destination, source, routing_key, arguments))
        return self._run(
            lambda inner: inner.exchange_unbind(destination, source, routing_key, arguments),
            frozenset((destination, source)),
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
        validate.queue_declare(queue, passive, durable, exclusive, auto_delete, arguments)
        topology = self._topology
        if passive:
            return self._run(
                lambda inner: inner.queue_declare(
                    topology.name(queue), True, durable, exclusive, auto_delete, arguments
                ),
                self._queue_names(queue),
            )
        if queue:
            record = QueueDeclaration(queue, durable, exclusive, auto_delete, arguments)
            return self._declare(record, frozenset((queue,)))
        # Server-named: the first name the broker gives is the one the user holds; later
        # incarnations map it to the new name (Topology.names).
        waiter = self._run(
            lambda inner: inner.queue_declare("", False, durable, exclusive, auto_delete, arguments)
        )

        def named(ok: Any) -> None:
            record = QueueDeclaration(
                ok.queue, durable, exclusive, auto_delete, arguments, server_named=True
            )
            topology.names[ok.queue] = ok.queue
            topology.add(record).applied = True

        self._runtime.observe(waiter, named, _ignore)
        return waiter

    def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> W:
        validate.queue_bind(queue, exchange, routing_key, arguments)
        record = QueueBinding(queue, exchange, routing_key, arguments)
        return self._declare(record, self._queue_names(queue) | {exchange})

    def queue_unbind(
        self,
        queue: str,
        exchange: str = "",
        routing_key: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> W:
        validate.queue_unbind(queue, exchange, routing_key, arguments)
        self._topology.remove(QueueBinding(queue, exchange, routing_key, arguments))
        name = self._topology.name(queue)
        rk = name if routing_key is None else routing_key
        return self._run(
            lambda inner: inner.queue_unbind(name, exchange, rk, arguments),
            self._queue_names(queue) | {exchange},
        )

    def queue_purge(self, queue: str) -> W:
        validate.queue_purge(queue)
        return self._run(
            lambda inner: inner.queue_purge(self._topology.name(queue)), self._queue_names(queue)
        )

    def queue_delete(self, queue: str, if_unused: bool = False, if_empty: bool = False) -> W:
        validate.queue_delete(queue, if_unused, if_empty)
        self._topology.remove_queue(queue)
        name = self._topology.name(queue)
        return self._run(
            lambda inner: inner.queue_delete(name, if_unused, if_empty), self._queue_names(queue)
        )

    def basic_qos(
        self, prefetch_size: int = 0, prefetch_count: int = 0, global_qos: bool = False
    ) -> W:
        validate.basic_qos(prefetch_size, prefetch_count, global_qos)
        return self._declare(Qos(prefetch_size, prefetch_count, global_qos))

    def confirm_delivery(self) -> W:
        return self._declare(ConfirmSelect())

    def tx_select(self) -> W:
        return self._declare(TxSelect())

    def tx_commit(self) -> W:
        return self._run(lambda inner: inner.tx_commit())

    def tx_rollback(self) -> W:
        return self._run(lambda inner: inner.tx_rollback())

    def basic_recover(self, requeue: bool = False) -> W:
        validate.basic_recover(requeue)
        return self._run(lambda inner: inner.basic_recover(requeue))

    def flow(self, active: bool) -> W:
        validate.flow(active)
        return self._run(lambda inner: inner.flow(active))

    @property
    def publisher_confirms(self) -> bool:
        return self._topology.confirm_mode
