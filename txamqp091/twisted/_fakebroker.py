"""The in-memory broker behind :mod:`txamqp091.twisted.testing`: its model and routing.

:class:`FakeBroker` holds exchanges, queues and bindings for one virtual
host; each client connection gets a
:class:`~._brokerconnection.BrokerConnection`, a Twisted ``Protocol`` that
reads the client's frames with :func:`~txamqp091.core.testing.parse_client_frames`
and answers with :class:`~txamqp091.core.testing.ServerFrames`, and whose
:class:`~._brokermethods.ChannelMethods` carry out the channel methods. Where RabbitMQ has a documented
behaviour (reply codes and texts, server-named queues, ``x-max-length`` with
``x-overflow``, the default exchange, exclusive queues, ``channel.flow`` and
``basic.recover`` limits), the fake follows it, so that code tested against
it meets no surprises against the real broker.

Not modelled: persistence, TTLs, dead-lettering, priorities, streams, and
TCP back-pressure from the broker side.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import Factory

from ..core import spec
from ..core.codec import FieldTable
from ..core.testing import DEFAULT_SERVER_PROPERTIES

if TYPE_CHECKING:
    from ._brokerconnection import BrokerConnection

__all__ = [
    "Binding",
    "BrokerChannel",
    "FakeBroker",
    "FakeExchange",
    "FakeQueue",
    "StoredMessage",
]

EXCHANGE_TYPES = ("direct", "fanout", "topic", "headers")
OVERFLOW_MODES = ("drop-head", "reject-publish", "reject-publish-dlx")


@dataclass
class StoredMessage:
    """A message held in a :class:`FakeQueue` (or delivered and not yet acked)."""

    exchange: str
    routing_key: str
    body: bytes
    properties: spec.BasicProperties = field(default_factory=spec.BasicProperties)
    #: Set once the message was delivered and requeued.
    redelivered: bool = False
    #: Its place in the queue: a requeued message goes back where it was, as in RabbitMQ.
    position: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Binding:
    """A binding of a queue (``to_queue``) or an exchange to a source exchange."""

    destination: str
    to_queue: bool
    routing_key: str
    arguments: FieldTable = field(default_factory=dict, compare=False)

    def key(self) -> tuple[str, bool, str, str]:
        items = sorted(self.arguments.items(), key=lambda item: item[0])
        return (self.destination, self.to_queue, self.routing_key, repr(items))


@dataclass
class FakeExchange:
    """An exchange: its declared properties and the bindings it routes to."""

    name: str
    type: str = "direct"
    durable: bool = False
    auto_delete: bool = False
    internal: bool = False
    arguments: FieldTable = field(default_factory=dict)
    bindings: list[Binding] = field(default_factory=list)

    def matches(self, binding: Binding, routing_key: str, headers: FieldTable | None) -> bool:
        """Whether a message with ``routing_key``/``headers`` follows ``binding``."""
        if self.type == "fanout":
            return True
        if self.type == "topic":
            return _topic_match(binding.routing_key.split("."), routing_key.split("."))
        if self.type == "headers":
            return _headers_match(binding.arguments, headers or {})
        return binding.routing_key == routing_key


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
    owner: BrokerConnection | None = field(default=None, repr=False)
    consumers: list[BrokerConsumer] = field(default_factory=list, repr=False)
    _next_consumer: int = field(default=0, repr=False)
    _had_consumers: bool = field(default=False, repr=False)

    @property
    def message_count(self) -> int:
        return len(self.messages)

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)


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
        channel = self.channel
        if channel.closing or channel.connection.state != "open":
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


class BrokerChannel:
    """The broker's view of one open channel."""

    def __init__(self, connection: BrokerConnection, channel_id: int) -> None:
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
        self.held_confirms: list[tuple[int, bool]] = []
        self._tx_pending: list[Callable[[], None]] = []
        self._content: list[Any] | None = None

    def __repr__(self) -> str:
        return f"<BrokerChannel {self.channel_id} unacked={len(self.unacked)}>"


class BrokerChannelError(Exception):
    """Raised by a channel-method handler: the broker closes the channel with ``code``."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text


class BrokerConnectionError(BrokerChannelError):
    """Raised by a handler for a hard error: the broker closes the whole connection."""


def _topic_match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head = pattern[0]
    if head == "#":
        return any(_topic_match(pattern[1:], words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _topic_match(pattern[1:], words[1:])


def _headers_match(arguments: FieldTable, headers: FieldTable) -> bool:
    mode = str(arguments.get("x-match", "all"))
    wanted = {k: v for k, v in arguments.items() if not k.startswith("x-")}

    def ok(key: str, value: Any) -> bool:
        return key in headers and (value is None or headers[key] == value)

    if mode.startswith("any"):
        return any(ok(k, v) for k, v in wanted.items())
    return all(ok(k, v) for k, v in wanted.items())


def flag(value: bool) -> str:
    return "true" if value else "false"


class FakeBroker(Factory):
    """One RabbitMQ virtual host in memory; see :mod:`txamqp091.twisted.testing`.

    :param users: ``{username: password}`` accepted with PLAIN; None accepts anyone.
    :param vhosts: the virtual host names a client may open.
    :param channel_max: proposed in Connection.Tune.
    :param frame_max: proposed in Connection.Tune.
    :param heartbeat: proposed in Connection.Tune; 0 (the default) turns
        heartbeats off unless the client asks for them.
    :param server_properties: the Connection.Start table.
    :param clock: sends the broker's heartbeats; None means none are sent.
    """

    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        vhosts: Iterable[str] = ("/",),
        channel_max: int = 2047,
        frame_max: int = 131072,
        heartbeat: int = 0,
        server_properties: FieldTable | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        self.users = users
        self.vhosts = set(vhosts)
        self.channel_max = channel_max
        self.frame_max = frame_max
        self.heartbeat = heartbeat
        self.server_properties = (
            DEFAULT_SERVER_PROPERTIES if server_properties is None else server_properties
        )
        self.clock = clock
        self.exchanges: dict[str, FakeExchange] = {}
        self.queues: dict[str, FakeQueue] = {}
        #: Open client connections, oldest first.
        self.connections: list[BrokerConnection] = []
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

    # -- Factory ----------------------------------------------------------------------------

    def buildProtocol(self, addr: IAddress | None = None) -> BrokerConnection:
        from ._brokerconnection import BrokerConnection

        return BrokerConnection(self)

    # -- set-up and inspection for tests ----------------------------------------------------

    def declare_queue(
        self,
        name: str,
        durable: bool = False,
        auto_delete: bool = False,
        arguments: FieldTable | None = None,
    ) -> FakeQueue:
        """Create (or return) a queue, as another client would have."""
        queue = self.queues.get(name)
        if queue is None:
            queue = FakeQueue(name, durable, False, auto_delete, dict(arguments or {}))
            self.queues[name] = queue
        return queue

    def declare_exchange(
        self, name: str, exchange_type: str = "direct", durable: bool = False
    ) -> FakeExchange:
        """Create (or return) an exchange."""
        if exchange_type not in EXCHANGE_TYPES:
            raise ValueError(f"exchange_type must be one of {EXCHANGE_TYPES}")
        exchange = self.exchanges.get(name)
        if exchange is None:
            exchange = FakeExchange(name, exchange_type, durable)
            self.exchanges[name] = exchange
        return exchange

    def bind_queue(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: FieldTable | None = None,
    ) -> None:
        """Bind ``queue`` to ``exchange`` (both must exist)."""
        self._add_binding(
            self.exchanges[exchange], Binding(queue, True, routing_key, arguments or {})
        )

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: spec.BasicProperties | None = None,
    ) -> int:
        """Route a message as if another client published it; return how many queues took it."""
        properties = properties if properties is not None else spec.BasicProperties()
        taken = 0
        for queue in self.route(exchange, routing_key, properties.headers):
            if self._enqueue(queue, StoredMessage(exchange, routing_key, body, properties)):
                taken += 1
        self.dispatch()
        return taken

    def messages(self, queue: str) -> list[StoredMessage]:
        """The ready (not delivered, or requeued) messages of ``queue``, oldest first."""
        return list(self.queues[queue].messages)

    def bodies(self, queue: str) -> list[bytes]:
        """The bodies of :meth:`messages`."""
        return [message.body for message in self.queues[queue].messages]

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

    def _enqueue(self, queue: FakeQueue, message: StoredMessage) -> bool:
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
                index = (queue._next_consumer + i) % count
                consumer = queue.consumers[index]
                if consumer.can_take():
                    queue._next_consumer = (index + 1) % count
                    message = queue.messages.popleft()
                    consumer.channel.connection._deliver(consumer, queue, message)
                    break
            else:
                return

    def _requeue(self, entries: Iterable[Unacked]) -> None:
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

    # -- bindings and deletion --------------------------------------------------------------

    def _add_binding(self, source: FakeExchange, binding: Binding) -> None:
        if all(b.key() != binding.key() for b in source.bindings):
            source.bindings.append(binding)

    def _remove_binding(self, source: FakeExchange, binding: Binding) -> None:
        source.bindings = [b for b in source.bindings if b.key() != binding.key()]

    def _delete_queue(self, queue: FakeQueue) -> int:
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
            consumer.channel.connection._send_cancel(consumer)
        queue.consumers.clear()
        return len(queue.messages)

    def _remove_consumer(self, consumer: BrokerConsumer) -> None:
        consumer.channel.consumers.pop(consumer.tag, None)
        queue = self.queues.get(consumer.queue)
        if queue is None or consumer not in queue.consumers:
            return
        queue.consumers.remove(consumer)
        queue._next_consumer = 0
        if queue.auto_delete and not queue.consumers:
            self._delete_queue(queue)
