"""What a surviving channel declared: one small frozen record per declaration.

Each record knows the key it is filed under (what it declares: a repeat
declaration replaces the old record in place, a delete removes it and what
depended on it) and how to send itself again on a new channel. Server-named
queues are filed under the first name the broker gave them; ``names`` maps
that name to the one on the current connection, and every record that names
a queue looks it up there when it is replayed.

A replay *pipelines*: the declarations and bindings that can go out with ``nowait``
(:meth:`send_nowait`, where ``pipelined`` is true) are sent without a reply, so a
channel carrying 10,000 of them costs the broker's time, not 10,000 round trips (a
channel may have only one synchronous request outstanding, so asking for each
declare-ok would serialise them). A refused one closes the channel as a waited-for
one would; the close text names the entity (``subjects``), which tells whose it was.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core import spec

if TYPE_CHECKING:
    from .channel import ChannelLogic

__all__ = [
    "ConfirmSelect",
    "Entry",
    "ExchangeBinding",
    "ExchangeDeclaration",
    "Qos",
    "QueueBinding",
    "QueueDeclaration",
    "Record",
    "Topology",
    "TxSelect",
]

Arguments = dict[str, Any]
ArgumentsKey = tuple[tuple[str, str], ...]


def arguments_key(arguments: Arguments | None) -> ArgumentsKey:
    """A hashable stand-in for a declaration's ``arguments`` table."""
    return tuple(sorted((k, repr(v)) for k, v in (arguments or {}).items()))


@dataclass(frozen=True)
class ExchangeDeclaration:
    exchange: str
    exchange_type: str = "direct"
    durable: bool = False
    auto_delete: bool = False
    internal: bool = False
    arguments: Arguments | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, str]:
        return ("exchange", self.exchange)

    pipelined = True

    def replay(self, channel: ChannelLogic[Any], names: Mapping[str, str]) -> Any:
        return channel.exchange_declare(
            self.exchange,
            self.exchange_type,
            False,
            self.durable,
            self.auto_delete,
            self.internal,
            self.arguments,
        )

    def send_nowait(self, channel: ChannelLogic[Any], names: Mapping[str, str]) -> None:
        method = spec.ExchangeDeclare(
            exchange=self.exchange,
            type=self.exchange_type,
            durable=self.durable,
            auto_delete=self.auto_delete,
            internal=self.internal,
            nowait=True,
            arguments=self.arguments,
        )
        channel._rpc(method)

    def subjects(self, names: Mapping[str, str]) -> frozenset[str]:
        return frozenset((self.exchange,))


@dataclass(frozen=True)
class QueueDeclaration:
    #: The queue's name; for a server-named queue, the first name the broker gave it.
    queue: str
    durable: bool = False
    exclusive: bool = False
    auto_delete: bool = False
    arguments: Arguments | None = field(default=None, compare=False)
    #: Declared with an empty name: each new connection asks the broker for a new one.
    server_named: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return ("queue", self.queue)

    @property
    def pipelined(self) -> bool:
        return not self.server_named  # its new name comes in the declare-ok

    def replay(self, channel: ChannelLogic[Any], names: Mapping[str, str]) -> Any:
        name = "" if self.server_named else self.queue
        return channel.queue_declare(
            name, False, self.durable, self.exclusive, self.auto_delete, self.arguments
        )

    def send_nowait(self, channel: ChannelLogic[Any], names: Mapping[str, str]) -> None:
        method = spec.QueueDeclare(
            queue=self.queue,
            durable=self.durable,
            exclusive=self.exclusive,
            auto_delete=self.auto_delete,
            nowait=True,
            arguments=self.arguments,
        )
        channel._rpc(method)

    def subjects(self, names: Mapping[str, str]) -> frozenset[str]:
        return frozenset((self.queue, names.get(self.queue, self.queue)))


@dataclass(frozen=True)
class QueueBinding:
    queue: str
    exchange: str
    #: As given: None binds with the queue's (current) name, as pika does.
    routing_key: str | None = None
    arguments: Arguments | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, str, str, str, ArgumentsKey]:
        bound = self.queue if self.routing_key is None else self.routing_key
        return ("qbind", self.queue, self.exchange, bound, arguments_key(self.arguments))

    pipelined = True

    def replay(self, channel: ChannelLogic[Any], names: Mapping[str, str]) -> Any:
        current = names.get(self.queue, self.queue)
        bound = current if self.routing_key is None else self.routing_key
        return channel.queue_bind(current, self.exchange, bound, self.arguments)

    def send_nowait(self, channel: ChannelLogic[Any], names: Mapping[str, str]) -> None:
        current = names.get(self.queue, self.queue)
        bound = current if self.routing_key is None else self.routing_key
        method = spec.QueueBind(
            queue=current, exchange=self.exchange, routing_key=bound, nowait=True,
            arguments=self.arguments,
        )  # fmt: skip
        channel._rpc(method)

    def subjects(self, names: Mapping[str, str]) -> frozenset[str]:
        return frozenset((self.queue, names.get(self.queue, self.queue), self.exchange))


@dataclass(frozen=True)
class ExchangeBinding:
    destination: str
    source: str
    routing_key: str = ""
    arguments: Arguments | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, str, str, str, ArgumentsKey]:
        return (
            "xbind",
            self.destination,
            self.source,
            self.routing_key,
            arguments_key(self.arguments),
        )

    pipelined = True

    def replay(self, channel: ChannelLogic[Any], names: Mapping[str, str]) -> Any:
        return channel.exchange_bind(
            self.destination, self.source, self.routing_key, self.arguments
        )

    def send_nowait(self, channel: ChannelLogic[Any], names: Mapping[str, str]) -> None:
        method = spec.ExchangeBind(
            destination=self.destination, source=self.source, routing_key=self.routing_key,
            nowait=True, arguments=self.arguments,
        )  # fmt: skip
        channel._rpc(method)

    def subjects(self, names: Mapping[str, str]) -> frozenset[str]:
        return frozenset((self.destination, self.source))


class _Waited:
    """A channel setting, replayed as a waited-for request: Basic.Qos has no ``nowait``,
    and Confirm.Select and Tx.Select go as the channel sends them. It names no entity."""

    pipelined = False

    def send_nowait(self, channel: ChannelLogic[Any], names: Mapping[str, str]) -> None:
        raise TypeError("not pipelined: replay() it")

    def subjects(self, names: Mapping[str, str]) -> frozenset[str]:
        return frozenset()


@dataclass(frozen=True)
class Qos(_Waited):
    prefetch_size: int = 0
    prefetch_count: int = 0
    global_qos: bool = False

    @property
    def key(self) -> tuple[str, bool]:
        return ("qos", self.global_qos)

    def replay(self, channel: ChannelLogic[Any], names: Mapping[str, str]) -> Any:
        return channel.basic_qos(self.prefetch_size, self.prefetch_count, self.global_qos)


@dataclass(frozen=True)
class ConfirmSelect(_Waited):
    @property
    def key(self) -> tuple[str]:
        return ("confirm",)

    def replay(self, channel: ChannelLogic[Any], names: Mapping[str, str]) -> Any:
        return channel.confirm_delivery()


@dataclass(frozen=True)
class TxSelect(_Waited):
    @property
    def key(self) -> tuple[str]:
        return ("tx",)

    def replay(self, channel: ChannelLogic[Any], names: Mapping[str, str]) -> Any:
        return channel.tx_select()


Record = (
    ExchangeDeclaration
    | QueueDeclaration
    | QueueBinding
    | ExchangeBinding
    | Qos
    | ConfirmSelect
    | TxSelect
)


class Entry:
    """A record in the topology, and whether the broker has accepted it yet."""

    __slots__ = ("applied", "record")

    def __init__(self, record: Record) -> None:
        self.record = record
        #: The broker accepted it once. Until then its own operation is pending (parked
        #: or in flight) and goes out by itself: the replay must not send it as well.
        self.applied = False


class Topology:
    """What a surviving channel declared, in the order it was declared."""

    def __init__(self) -> None:
        self._entries: dict[tuple[Any, ...], Entry] = {}
        #: Original server-assigned queue name -> the name on the current connection.
        self.names: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries.values()))

    def __contains__(self, record: Record) -> bool:
        return record.key in self._entries

    def records(self) -> list[Record]:
        return [entry.record for entry in self._entries.values()]

    def add(self, record: Record) -> Entry:
        """File ``record`` (replacing one with the same key, in its place)."""
        entry = Entry(record)
        self._entries[record.key] = entry
        return entry

    def discard(self, entry: Entry) -> None:
        """Forget ``entry`` if it is still the one filed under its key."""
        key = entry.record.key
        if self._entries.get(key) is entry:
            del self._entries[key]

    def remove(self, record: Record) -> None:
        self._entries.pop(record.key, None)

    def remove_exchange(self, exchange: str) -> None:
        """An exchange was deleted: forget it and every binding to or from it."""
        self._remove_where(
            lambda r: (
                (isinstance(r, ExchangeDeclaration) and r.exchange == exchange)
                or (isinstance(r, ExchangeBinding) and exchange in (r.source, r.destination))
                or (isinstance(r, QueueBinding) and r.exchange == exchange)
            )
        )

    def remove_queue(self, queue: str) -> None:
        """A queue was deleted: forget it and its bindings."""
        self._remove_where(
            lambda r: isinstance(r, (QueueDeclaration, QueueBinding)) and r.queue == queue
        )

    def _remove_where(self, doomed: Any) -> None:
        for key in [k for k, e in self._entries.items() if doomed(e.record)]:
            del self._entries[key]

    def name(self, queue: str) -> str:
        """The current name of ``queue`` (a server-named queue's first name maps to its latest)."""
        return self.names.get(queue, queue)

    @property
    def confirm_mode(self) -> bool:
        return ConfirmSelect().key in self._entries
