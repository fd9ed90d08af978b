"""The fake broker's state: queues, consumers, channels, and the virtual host holding them.

:class:`VirtualHost` routes, enqueues, dispatches to consumers and requeues. It
reaches the connections through the small :class:`ConnectionSide` protocol
(deliver a message, tell a consumer it was cancelled), so this module knows
nothing of frames or of the per-connection protocol in :mod:`._connection`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ..core.codec import FieldTable
from ._model import Binding, FakeExchange, StoredMessage

__all__ = [
    "BrokerChannel",
    "BrokerConsumer",
    "ConnectionSide",
    "FakeQueue",
    "Unacked",
    "VirtualHost",
]


class ConnectionSide(Protocol):
    """What the virtual host needs from a client connection's broker side."""

    @property
    def is_open(self) -> bool:
        """The handshake is done and no close has started."""
        ...

    def deliver(self, consumer: BrokerConsumer, queue: FakeQueue, message: StoredMessage) -> None:
        """Send Basic.Deliver for ``message`` to ``consumer``."""
        ...

    def send_cancel(self, consumer: BrokerConsumer) -> None:
        """Send Basic.Cancel: the broker ended ``consumer`` (its queue went away)."""
        ...


@dataclass
class FakeQueue:
    """A queue: ready messages in order, and its consumers (served round-robin)."""

    name: str
    durable: bool = False
    exclusive: bool = False
    auto_delete: bool = False
    arguments: FieldTable = field(default_factory=dict)
    #: Ready messages, oldest first.
    messages: deque[StoredMessage] = field(default_factory=deque)
    #: The connection an exclusive queue belongs to.
    owner: ConnectionSide | None = field(default=None, repr=False)
    consumers: list[BrokerConsumer] = field(default_factory=list, repr=False)
    next_consumer: int = field(default=0, repr=False)

    @property
    def message_count(self) -> int:
        return len(self.messages)

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)


class BrokerChannel:
    """The broker's view of one open channel."""

    def __init__(self, connection: ConnectionSide, channel_id: int) -> None:
        self.connection = connection
        self.channel_id = channel_id
        #: The broker sent Channel.Close and waits for Close-Ok.
        self.closing = False
        self.confirm = False
        self.tx = False
        self.prefetch_count = 0
        self.global_prefetch = 0
        self.next_publish_seq = 1
        self.next_delivery_tag = 1
        #: Delivered, not yet acknowledged messages by delivery tag.
        self.unacked: dict[int, Unacked] = {}
        self.consumers: dict[str, BrokerConsumer] = {}
        self.last_queue = ""
        #: (publish sequence number, acked) of confirms held back by ``hold_confirms``.
        self.held_confirms: list[tuple[int, bool]] = []
        #: Actions a transaction applies on Tx.Commit.
        self.tx_pending: list[Callable[[], None]] = []
        #: A publish being assembled: [method, properties, body size, body parts].
        self.content: list[Any] | None = None

    def __repr__(self) -> str:
        return f"<BrokerChannel {self.channel_id} unacked={len(self.unacked)}>"


class BrokerConsumer:
    """A Basic.Consume subscription, as the broker tracks it."""

    __slots__ = ("channel", "exclusive", "no_ack", "prefetch", "queue", "tag", "unacked")

    def __init__(
        self,
        tag: str,
        queue: str,
        channel: BrokerChannel,
        no_ack: bool,
        exclusive: bool,
        prefetch: int,
    ) -> None:
        self.tag = tag
        self.queue = queue
        self.channel = channel
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.prefetch = prefetch
        self.unacked = 0

    def can_take(self) -> bool:
        """Room for one more delivery (the connection open, prefetch limits not reached)."""
        channel = self.channel
        if channel.closing or not channel.connection.is_open:
            return False
        if self.no_ack:
            return True
        if self.prefetch and self.unacked >= self.prefetch:
            return False
        return not (channel.global_prefetch and len(channel.unacked) >= channel.global_prefetch)


@dataclass
class Unacked:
    """A delivered message the client has not settled yet."""

    queue: str
    message: StoredMessage
    consumer: BrokerConsumer | None


class VirtualHost:
    """Exchanges, queues and bindings, with RabbitMQ's routing and delivery order."""

    def __init__(self) -> None:
        self.exchanges: dict[str, FakeExchange] = {}
        self.queues: dict[str, FakeQueue] = {}
        self._dispatching = False
        self._positions = 0
        for name, kind in (
            ("", "direct"),
            ("amq.direct", "direct"),
            ("amq.fanout", "fanout"),
            ("amq.topic", "topic"),
            ("amq.headers", "headers"),
            ("amq.match", "headers"),
        ):
            self.exchanges[name] = FakeExchange(name, kind, durable=True)

    # -- routing and delivery -------------------------------------------------------------

    def route(self, exchange: str, routing_key: str, headers: FieldTable | None) -> list[FakeQueue]:
        """The queues a message published to ``exchange`` reaches (through e2e bindings too)."""
        if exchange == "":
            queue = self.queues.get(routing_key)
            return [] if queue is None else [queue]
        found: dict[str, FakeQueue] = {}
        seen: set[str] = set()
        pending = [exchange]
        while pending:
            name = pending.pop()
            source = self.exchanges.get(name)
            if name in seen or source is None:
                continue
            seen.add(name)
            for binding in source.bindings:
                if not source.matches(binding, routing_key, headers):
                    continue
                if not binding.to_queue:
                    pending.append(binding.destination)
                elif binding.destination in self.queues:
                    found.setdefault(binding.destination, self.queues[binding.destination])
        return list(found.values())

    def enqueue(self, queue: FakeQueue, message: StoredMessage) -> bool:
        """Append ``message``; False when ``x-overflow: reject-publish`` refuses it."""
        limit = queue.arguments.get("x-max-length")
        if isinstance(limit, int):
            if len(queue.messages) >= limit:
                if queue.arguments.get("x-overflow", "drop-head") != "drop-head":
                    return False
                while queue.messages and len(queue.messages) >= limit:
                    queue.messages.popleft()
                if limit == 0:
                    return True
        self._positions += 1
        message.position = self._positions
        queue.messages.append(message)
        return True

    def dispatch(self) -> None:
        """Hand ready messages to consumers that have room (round-robin per queue)."""
        if self._dispatching:
            return
        self._dispatching = True
        try:
            for queue in list(self.queues.values()):
                self._dispatch_queue(queue)
        finally:
            self._dispatching = False

    def _dispatch_queue(self, queue: FakeQueue) -> None:
        while queue.messages and queue.consumers:
            count = len(queue.consumers)
            for i in range(count):
                index = (queue.next_consumer + i) % count
                consumer = queue.consumers[index]
                if consumer.can_take():
                    queue.next_consumer = (index + 1) % count
                    message = queue.messages.popleft()
                    consumer.channel.connection.deliver(consumer, queue, message)
                    break
            else:
                return

    def requeue(self, entries: Iterable[Unacked]) -> None:
        """Put messages back in their queues where they were (RabbitMQ keeps the order)."""
        for entry in entries:
            if entry.consumer is not None:
                entry.consumer.unacked -= 1
            queue = self.queues.get(entry.queue)
            if queue is None:
                continue
            message = replace(entry.message, redelivered=True)
            messages = queue.messages
            index = 0
            while index < len(messages) and messages[index].position < message.position:
                index += 1
            messages.insert(index, message)

    def release_channel(self, channel: BrokerChannel) -> None:
        """The channel ends: cancel its consumers and requeue what it had not acked."""
        for consumer in list(channel.consumers.values()):
            self.remove_consumer(consumer)
        unacked, channel.unacked = channel.unacked, {}
        self.requeue(unacked[tag] for tag in sorted(unacked))
        channel.tx_pending.clear()
        channel.held_confirms.clear()

    # -- bindings and deletion --------------------------------------------------------------

    def add_binding(self, source: FakeExchange, binding: Binding) -> None:
        if all(b.key() != binding.key() for b in source.bindings):
            source.bindings.append(binding)

    def remove_binding(self, source: FakeExchange, binding: Binding) -> None:
        source.bindings = [b for b in source.bindings if b.key() != binding.key()]

    def delete_queue(self, queue: FakeQueue) -> int:
        """Delete ``queue``: drop its bindings, tell its consumers (Basic.Cancel)."""
        if self.queues.get(queue.name) is not queue:
            return 0
        del self.queues[queue.name]
        for exchange in self.exchanges.values():
            exchange.bindings = [
                b for b in exchange.bindings if not (b.to_queue and b.destination == queue.name)
            ]
        for consumer in list(queue.consumers):
            consumer.channel.consumers.pop(consumer.tag, None)
            consumer.channel.connection.send_cancel(consumer)
        queue.consumers.clear()
        return len(queue.messages)

    def delete_exchange(self, name: str) -> None:
        """Delete an exchange and every exchange-to-exchange binding to it."""
        del self.exchanges[name]
        for other in self.exchanges.values():
            other.bindings = [b for b in other.bindings if b.to_queue or b.destination != name]

    def remove_consumer(self, consumer: BrokerConsumer) -> None:
        """End a subscription; an auto-delete queue goes with its last consumer."""
        consumer.channel.consumers.pop(consumer.tag, None)
        queue = self.queues.get(consumer.queue)
        if queue is None or consumer not in queue.consumers:
            return
        queue.consumers.remove(consumer)
        queue.next_consumer = 0
        if queue.auto_delete and not queue.consumers:
            self.delete_queue(queue)
