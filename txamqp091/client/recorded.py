"""The surviving channel's declarations, deletes and other requests: each records
what it changes in the :class:`~.topology.Topology` (or forgets it), then runs the
plain channel's own method on the current incarnation.

:class:`TopologyOperations` is the base of :class:`~.recovering.SurvivingChannel`,
which supplies ``_run`` (run now, or park until there is a channel) and ``_declare``
(record, then run).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, Generic

from .. import validation as validate
from .api import ChannelAPI, documented_by
from .channel import ChannelLogic
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

__all__ = ["Arguments", "TopologyOperations", "arguments_of"]

#: One call's arguments by parameter name (``a.queue``...), defaults applied.
Arguments = SimpleNamespace


def arguments_of(
    model: Callable[..., object],
) -> Callable[[Callable[[Any, Arguments], W]], Callable[..., W]]:
    """Give the decorated method the parameters of ``model``, the plain channel's method
    of the same name: its signature, names and defaults are ``model``'s by construction
    (not a copy that could drift), and the body gets the call's arguments by name.
    For the declarations, whose argument lists are long and whose calls are few."""
    signature = inspect.signature(model)
    first = next(iter(signature.parameters))

    def decorate(body: Callable[[Any, Arguments], W]) -> Callable[..., W]:
        def method(self: Any, *args: Any, **kwargs: Any) -> W:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments = bound.arguments
            del arguments[first]  # self
            return body(self, SimpleNamespace(**arguments))

        method.__name__ = body.__name__
        method.__qualname__ = body.__qualname__
        method.__signature__ = signature  # type: ignore[attr-defined]
        method.__wrapped__ = body  # type: ignore[attr-defined]  # its source, for inspect
        return method

    return decorate


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

    @arguments_of(ChannelLogic.exchange_declare)
    def exchange_declare(self, a: Arguments) -> W:
        validate.exchange_declare(
            a.exchange,
            a.exchange_type,
            a.passive,
            a.durable,
            a.auto_delete,
            a.internal,
            a.arguments,
        )
        subjects = frozenset((a.exchange,))
        if a.passive:
            return self._run(
                lambda inner: inner.exchange_declare(
                    a.exchange,
                    a.exchange_type,
                    True,
                    a.durable,
                    a.auto_delete,
                    a.internal,
                    a.arguments,
                ),
                subjects,
            )
        record = ExchangeDeclaration(
            a.exchange, str(a.exchange_type), a.durable, a.auto_delete, a.internal, a.arguments
        )
        return self._declare(record, subjects)

    def exchange_delete(self, exchange: str = "", if_unused: bool = False) -> W:
        validate.exchange_delete(exchange, if_unused)
        self._topology.remove_exchange(exchange)
        return self._run(
            lambda inner: inner.exchange_delete(exchange, if_unused), frozenset((exchange,))
        )

    @arguments_of(ChannelLogic.exchange_bind)
    def exchange_bind(self, a: Arguments) -> W:
        validate.exchange_bind(a.destination, a.source, a.routing_key, a.arguments)
        record = ExchangeBinding(a.destination, a.source, a.routing_key, a.arguments)
        return self._declare(record, frozenset((a.destination, a.source)))

    @arguments_of(ChannelLogic.exchange_unbind)
    def exchange_unbind(self, a: Arguments) -> W:
        validate.exchange_unbind(a.destination, a.source, a.routing_key, a.arguments)
        self._topology.remove(ExchangeBinding(a.destination, a.source, a.routing_key, a.arguments))
        return self._run(
            lambda inner: inner.exchange_unbind(
                a.destination, a.source, a.routing_key, a.arguments
            ),
            frozenset((a.destination, a.source)),
        )

    @arguments_of(ChannelLogic.queue_declare)
    def queue_declare(self, a: Arguments) -> W:
        validate.queue_declare(
            a.queue, a.passive, a.durable, a.exclusive, a.auto_delete, a.arguments
        )
        topology = self._topology
        if a.passive:
            return self._run(
                lambda inner: inner.queue_declare(
                    topology.name(a.queue), True, a.durable, a.exclusive, a.auto_delete, a.arguments
                ),
                self._queue_names(a.queue),
            )
        if a.queue:
            record = QueueDeclaration(a.queue, a.durable, a.exclusive, a.auto_delete, a.arguments)
            return self._declare(record, frozenset((a.queue,)))
        # Server-named: the first name the broker gives is the one the user holds; later
        # incarnations map it to the new name (Topology.names).
        waiter = self._run(
            lambda inner: inner.queue_declare(
                "", False, a.durable, a.exclusive, a.auto_delete, a.arguments
            )
        )

        def named(ok: Any) -> None:
            record = QueueDeclaration(
                ok.queue, a.durable, a.exclusive, a.auto_delete, a.arguments, server_named=True
            )
            topology.names[ok.queue] = ok.queue
            topology.add(record).applied = True

        self._runtime.observe(waiter, named, _ignore)
        return waiter

    @arguments_of(ChannelLogic.queue_bind)
    def queue_bind(self, a: Arguments) -> W:
        validate.queue_bind(a.queue, a.exchange, a.routing_key, a.arguments)
        record = QueueBinding(a.queue, a.exchange, a.routing_key, a.arguments)
        return self._declare(record, self._queue_names(a.queue) | {a.exchange})

    @arguments_of(ChannelLogic.queue_unbind)
    def queue_unbind(self, a: Arguments) -> W:
        validate.queue_unbind(a.queue, a.exchange, a.routing_key, a.arguments)
        self._topology.remove(QueueBinding(a.queue, a.exchange, a.routing_key, a.arguments))
        name = self._topology.name(a.queue)
        rk = name if a.routing_key is None else a.routing_key
        return self._run(
            lambda inner: inner.queue_unbind(name, a.exchange, rk, a.arguments),
            self._queue_names(a.queue) | {a.exchange},
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
