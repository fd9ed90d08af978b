"""The in-memory broker behind :mod:`txamqp091.twisted.testing`.

:class:`FakeBroker` holds exchanges, queues and bindings for one virtual
host; each client connection gets a :class:`BrokerConnection`, a Twisted
``Protocol`` that reads the client's frames with
:func:`~txamqp91.core.testing.parse_client_frames` and answers with
:class:`~txamqp091.core.testing.ServerFrames`. Where RabbitMQ has a documented
behaviour (reply codes and texts, server-named queues, ``x-max-length`` with
``x-overflow``, the default exchange, exclusive queues, ``channel.flow`` and
``basic.recover`` limits), the fake follows it, so that code tested against
it meets no surprises against the real broker.

Not modelled: persistence, TTLs, dead-lettering, priorities, streams, and
TCP back-pressure from the broker side.
"""

from __future__ import annotations

import base64
import os
import struct
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, cast

from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from ..core import spec
from ..core.codec import FieldTable
from ..core.testing import DEFAULT_SERVER_PROPERTIES, ClientFrame, ServerFrames, parse_client_frames

__all__ = [
    "Binding",
    "BrokerChannel",
    "BrokerConnection",
    "FakeBroker",
    "FakeExchange",
    "FakeQueue",
    "StoredMessage",
]

_frame_header = struct.Struct(">BHI")
EXCHANGE_TYPES = ("direct", "fanout", "topic", "headers")
_OVERFLOW = ("drop-head", "reject-publish", "reject-publish-dlx")


@dataclass
class StoredMessage:
    """A message held in a :class:`FakeQueue` (or delivered and not yet acked)."""

    exchange: str
    routing_key: str
    body: bytes
    properties: spec.BasicProperties = field(default_factory=spec.BasicProperties)
    #: Set once the message was delivered and requeued.
    redelivered: bool = False


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
    consumers: list[_Consumer] = field(default_factory=list, repr=False)
    _next_consumer: int = field(default=0, repr=False)
    _had_consumers: bool = field(default=False, repr=False)

    @property
    def message_count(self) -> int:
        return len(self.messages)

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)


class _Consumer:
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
class _Unacked:
    queue: str
    message: StoredMessage
    consumer: _Consumer | None


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
        self.unacked: dict[int, _Unacked] = {}
        self.consumers: dict[str, _Consumer] = {}
        self.last_queue = ""
        self.held_confirms: list[tuple[int, bool]] = []
        self._tx_pending: list[Callable[[], None]] = []
        self._content: list[Any] | None = None

    def __repr__(self) -> str:
        return f"<BrokerChannel {self.channel_id} unacked={len(self.unacked)}>"


class _ChannelError(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text


class _ConnectionError(_ChannelError):
    pass


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


def _flag(value: bool) -> str:
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

    def _requeue(self, entries: Iterable[_Unacked]) -> None:
        """Put messages back at the head of their queues, in their original order."""
        for entry in reversed(list(entries)):
            if entry.consumer is not None:
                entry.consumer.unacked -= 1
            queue = self.queues.get(entry.queue)
            if queue is not None:
                queue.messages.appendleft(replace(entry.message, redelivered=True))

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

    def _remove_consumer(self, consumer: _Consumer) -> None:
        consumer.channel.consumers.pop(consumer.tag, None)
        queue = self.queues.get(consumer.queue)
        if queue is None or consumer not in queue.consumers:
            return
        queue.consumers.remove(consumer)
        queue._next_consumer = 0
        if queue.auto_delete and not queue.consumers:
            self._delete_queue(queue)


class BrokerConnection(Protocol):
    """The broker's side of one client connection.

    Tests reach it as ``pump.server`` or ``broker.connections[i]`` and use it to
    act as the broker would: :meth:`close`, :meth:`close_channel`,
    :meth:`block` / :meth:`unblock`, :meth:`cancel_consumer`, :meth:`drop`, and,
    with :attr:`hold_confirms`, :meth:`release_confirms`.
    """

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        #: ``header``, ``start-ok``, ``tune-ok``, ``opening``, ``open``, ``closing``, ``closed``.
        self.state = "header"
        self.frames = ServerFrames(broker.frame_max)
        self.clock = broker.clock
        self.channels: dict[int, BrokerChannel] = {}
        self.client_properties: FieldTable = {}
        self.virtual_host = ""
        self.username = ""
        self.channel_max = broker.channel_max
        self.frame_max = broker.frame_max
        self.heartbeat = 0
        #: Every frame the client sent, in order.
        self.received: list[ClientFrame] = []
        #: Keep publisher confirms until :meth:`release_confirms` (to test ``multiple``).
        self.hold_confirms = False
        self._buf = bytearray()
        self._heartbeat_call: IDelayedCall | None = None
        self._ctag = 0

    def __repr__(self) -> str:
        return f"<BrokerConnection {self.state} channels={sorted(self.channels)}>"

    # -- what a test does as the broker ------------------------------------------------------

    def close(
        self,
        reply_code: int = spec.CONNECTION_FORCED,
        reply_text: str = "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'",
    ) -> None:
        """Connection.Close from the broker; the transport closes on the client's Close-Ok."""
        self._connection_error(reply_code, reply_text)

    def close_channel(
        self,
        channel_id: int,
        reply_code: int = spec.PRECONDITION_FAILED,
        reply_text: str = "PRECONDITION_FAILED - closed by the test",
    ) -> None:
        """Channel.Close from the broker."""
        self._channel_error(self.channels[channel_id], reply_code, reply_text)

    def block(self, reason: str = "low on memory") -> None:
        """Connection.Blocked (a resource alarm)."""
        self._write(self.frames.blocked(reason))

    def unblock(self) -> None:
        """Connection.Unblocked."""
        self._write(self.frames.unblocked())

    def cancel_consumer(self, consumer_tag: str) -> None:
        """Cancel a consumer as the broker does when its queue goes away (Basic.Cancel)."""
        for channel in self.channels.values():
            consumer = channel.consumers.get(consumer_tag)
            if consumer is not None:
                self.broker._remove_consumer(consumer)
                self._send_cancel(consumer)
                return
        raise KeyError(consumer_tag)

    def drop(self) -> None:
        """Close the TCP connection without the AMQP close handshake."""
        if self.transport is not None:
            self.transport.loseConnection()

    def release_confirms(self, channel_id: int | None = None, multiple: bool = True) -> None:
        """Send the confirms held while :attr:`hold_confirms` was set.

        With ``multiple``, each run of acks (or nacks) becomes one frame with
        ``multiple=True``, as RabbitMQ batches them.
        """
        for channel in list(self.channels.values()):
            if channel_id is not None and channel.channel_id != channel_id:
                continue
            held, channel.held_confirms = channel.held_confirms, []
            for index, (seq, ok) in enumerate(held):
                last_of_run = index + 1 == len(held) or held[index + 1][1] != ok
                if multiple and not last_of_run:
                    continue
                self._send_confirm(channel, seq, ok, multiple)

    # -- Protocol -----------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.broker.connections.append(self)

    def dataReceived(self, data: bytes) -> None:
        if self.state == "closed":
            return
        buf = self._buf
        buf += data
        if self.state == "header":
            if len(buf) < 8:
                return
            header = bytes(buf[:8])
            del buf[:8]
            if header != spec.PROTOCOL_HEADER:
                self._write(spec.PROTOCOL_HEADER)
                self._lose()
                return
            self.state = "start-ok"
            self._write(
                self.frames.start(
                    mechanisms=b"PLAIN AMQPLAIN", server_properties=self.broker.server_properties
                )
            )
        pos = 0
        while len(buf) - pos >= 7 and self.state not in ("closed", "lost"):
            _, _, size = _frame_header.unpack_from(buf, pos)
            if size + 8 > max(self.frame_max, spec.FRAME_MIN_SIZE):
                self._connection_error(
                    spec.FRAME_ERROR, f"FRAME_ERROR - frame of {size + 8} bytes exceeds frame_max"
                )
                break
            end = pos + 8 + size
            if end > len(buf):
                break
            chunk = bytes(buf[pos:end])
            pos = end
            try:
                (frame,) = parse_client_frames(chunk)
            except (ValueError, struct.error, IndexError, UnicodeDecodeError) as exc:
                self._connection_error(spec.FRAME_ERROR, f"FRAME_ERROR - {exc}"[:255])
                break
            self.received.append(frame)
            self._handle_frame(frame)
        del buf[:pos]
        self.broker.dispatch()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self.state == "lost":
            return
        self.state = "lost"
        if self._heartbeat_call is not None and self._heartbeat_call.active():
            self._heartbeat_call.cancel()
        self._heartbeat_call = None
        self._release_all()
        broker = self.broker
        for queue in list(broker.queues.values()):
            if queue.owner is self:
                broker._delete_queue(queue)
        if self in broker.connections:
            broker.connections.remove(self)
        broker.dispatch()

    # -- output --------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self.transport is not None and self.state not in ("closed", "lost"):
            self.transport.write(data)

    def _lose(self) -> None:
        self.state = "closed"
        if self.transport is not None:
            self.transport.loseConnection()

    def _send_heartbeat(self) -> None:
        self._heartbeat_call = None
        if self.state in ("closed", "lost") or self.clock is None:
            return
        self._write(self.frames.heartbeat())
        self._heartbeat_call = self.clock.callLater(self.heartbeat / 2, self._send_heartbeat)

    def _send_cancel(self, consumer: _Consumer) -> None:
        channel = consumer.channel
        if not channel.closing and channel.connection is self:
            self._write(self.frames.cancel(channel.channel_id, consumer.tag, nowait=True))

    def _send_confirm(self, channel: BrokerChannel, seq: int, ok: bool, multiple: bool) -> None:
        if ok:
            self._write(self.frames.ack(channel.channel_id, seq, multiple))
        else:
            self._write(self.frames.nack(channel.channel_id, seq, multiple))

    def _deliver(self, consumer: _Consumer, queue: FakeQueue, message: StoredMessage) -> None:
        channel = consumer.channel
        tag = channel.next_delivery_tag
        channel.next_delivery_tag += 1
        if not consumer.no_ack:
            channel.unacked[tag] = _Unacked(queue.name, message, consumer)
            consumer.unacked += 1
        self._write(
            self.frames.deliver(
                channel.channel_id,
                consumer.tag,
                tag,
                message.body,
                message.properties,
                message.exchange,
                message.routing_key,
                message.redelivered,
                frame_max=self.frame_max,
            )
        )

    # -- errors ---------------------------------------------------------------------------------

    def _connection_error(self, code: int, text: str, method: spec.Method | None = None) -> None:
        if self.state in ("closing", "closed", "lost"):
            return
        self._release_all()
        class_id, method_id = (method.CLASS_ID, method.METHOD_ID) if method else (0, 0)
        self._write(self.frames.close(code, text[:255], class_id, method_id))
        self.state = "closing"

    def _channel_error(
        self, channel: BrokerChannel, code: int, text: str, method: spec.Method | None = None
    ) -> None:
        class_id, method_id = (method.CLASS_ID, method.METHOD_ID) if method else (0, 0)
        self._release_channel(channel)
        channel.closing = True
        self._write(
            self.frames.channel_close(channel.channel_id, code, text[:255], class_id, method_id)
        )

    def _release_channel(self, channel: BrokerChannel) -> None:
        """The channel ends: cancel its consumers and requeue what it had not acked."""
        broker = self.broker
        for consumer in list(channel.consumers.values()):
            broker._remove_consumer(consumer)
        unacked, channel.unacked = channel.unacked, {}
        broker._requeue(unacked[tag] for tag in sorted(unacked))
        channel._tx_pending.clear()
        channel.held_confirms.clear()

    def _release_all(self) -> None:
        for channel in list(self.channels.values()):
            self._release_channel(channel)

    # -- input ----------------------------------------------------------------------------------

    def _handle_frame(self, frame: ClientFrame) -> None:
        frame_type, channel_id, payload = frame
        if frame_type == spec.FRAME_HEARTBEAT:
            if channel_id:
                self._connection_error(spec.FRAME_ERROR, "FRAME_ERROR - heartbeat on a channel")
            return
        if self.state == "closing":
            if channel_id == 0 and isinstance(payload, spec.ConnectionCloseOk):
                self._lose()
            elif channel_id == 0 and isinstance(payload, spec.ConnectionClose):
                self._write(self.frames.close_ok())
                self._lose()
            return
        if channel_id == 0:
            if not isinstance(payload, spec.Method):
                self._connection_error(
                    spec.UNEXPECTED_FRAME, "UNEXPECTED_FRAME - content frame on channel 0"
                )
                return
            self._connection_method(payload)
            return
        if self.state != "open":
            self._connection_error(
                spec.CHANNEL_ERROR, f"CHANNEL_ERROR - frame on channel {channel_id} before open"
            )
            return
        self._channel_frame(channel_id, frame_type, payload)

    def _connection_method(self, method: spec.Method) -> None:
        state = self.state
        if state == "start-ok" and isinstance(method, spec.ConnectionStartOk):
            self.client_properties = method.client_properties
            if not self._authenticate(method):
                self._connection_error(
                    spec.ACCESS_REFUSED,
                    f"ACCESS_REFUSED - Login was refused using authentication mechanism "
                    f"{method.mechanism}. For details see the broker logfile.",
                )
                return
            self.state = "tune-ok"
            self._write(self.frames.tune(self.channel_max, self.frame_max, self.broker.heartbeat))
        elif state == "tune-ok" and isinstance(method, spec.ConnectionTuneOk):
            if method.frame_max and not spec.FRAME_MIN_SIZE <= method.frame_max <= self.frame_max:
                self._connection_error(
                    spec.NOT_ALLOWED, f"NOT_ALLOWED - frame_max {method.frame_max} out of range"
                )
                return
            self.frame_max = method.frame_max or self.frame_max
            self.frames.frame_max = self.frame_max
            self.channel_max = method.channel_max or self.channel_max
            self.heartbeat = method.heartbeat
            self.state = "opening"
        elif state == "opening" and isinstance(method, spec.ConnectionOpen):
            if method.virtual_host not in self.broker.vhosts:
                self._connection_error(
                    spec.NOT_ALLOWED, f"NOT_ALLOWED - vhost {method.virtual_host} not found"
                )
                return
            self.virtual_host = method.virtual_host
            self.state = "open"
            self._write(self.frames.open_ok())
            if self.heartbeat and self.clock is not None:
                self._heartbeat_call = self.clock.callLater(
                    self.heartbeat / 2, self._send_heartbeat
                )
        elif state == "open" and isinstance(method, spec.ConnectionClose):
            self._release_all()
            self._write(self.frames.close_ok())
            self._lose()
        elif state == "open" and isinstance(method, spec.ConnectionUpdateSecret):
            self._write(self.frames.update_secret_ok())
        else:
            self._connection_error(
                spec.COMMAND_INVALID,
                f"COMMAND_INVALID - {method.NAME} not expected while {state}",
                method,
            )

    def _authenticate(self, start_ok: spec.ConnectionStartOk) -> bool:
        users = self.broker.users
        if start_ok.mechanism != "PLAIN":
            return users is None
        parts = start_ok.response.split(b"\x00")
        if len(parts) != 3:
            return False
        self.username = parts[1].decode("utf-8", "replace")
        if users is None:
            return True
        return users.get(self.username) == parts[2].decode("utf-8", "replace")

    def _channel_frame(self, channel_id: int, frame_type: int, payload: object) -> None:
        channel = self.channels.get(channel_id)
        if isinstance(payload, spec.ChannelOpen):
            if channel is not None:
                self._connection_error(
                    spec.CHANNEL_ERROR, "CHANNEL_ERROR - second 'channel.open' seen", payload
                )
                return
            if channel_id > self.channel_max:
                self._connection_error(
                    spec.CHANNEL_ERROR, f"CHANNEL_ERROR - channel {channel_id} above channel_max"
                )
                return
            self.channels[channel_id] = BrokerChannel(self, channel_id)
            self._write(self.frames.channel_open_ok(channel_id))
            return
        if channel is None:
            self._connection_error(spec.CHANNEL_ERROR, "CHANNEL_ERROR - expected 'channel.open'")
            return
        if channel.closing:
            # spec 1.5.2.5: after Channel.Close only Close and Close-Ok count.
            if isinstance(payload, spec.ChannelCloseOk):
                del self.channels[channel_id]
            elif isinstance(payload, spec.ChannelClose):
                self._write(self.frames.channel_close_ok(channel_id))
            return
        content = channel._content
        if frame_type == spec.FRAME_METHOD:
            assert isinstance(payload, spec.Method)
            if content is not None:
                self._connection_error(
                    spec.UNEXPECTED_FRAME, "UNEXPECTED_FRAME - expected content", payload
                )
                return
            if isinstance(payload, spec.BasicPublish):
                channel._content = [payload, None, 0, []]
                return
            self._run(channel, payload, lambda: self._channel_method(channel, payload))
        elif frame_type == spec.FRAME_HEADER:
            if content is None or content[1] is not None:
                self._connection_error(
                    spec.UNEXPECTED_FRAME, "UNEXPECTED_FRAME - content header without a publish"
                )
                return
            body_size, properties = cast(tuple[int, spec.BasicProperties], payload)
            content[1], content[2] = properties, body_size
            if body_size == 0:
                self._content_done(channel)
        else:
            if content is None or content[1] is None:
                self._connection_error(
                    spec.UNEXPECTED_FRAME, "UNEXPECTED_FRAME - content body without a header"
                )
                return
            content[3].append(payload)
            received = sum(len(part) for part in content[3])
            if received > content[2]:
                self._connection_error(
                    spec.FRAME_ERROR, "FRAME_ERROR - content body longer than declared"
                )
            elif received == content[2]:
                self._content_done(channel)

    def _content_done(self, channel: BrokerChannel) -> None:
        assert channel._content is not None
        method, properties, _, parts = channel._content
        channel._content = None
        self._run(
            channel, method, lambda: self._publish(channel, method, properties, b"".join(parts))
        )

    def _run(self, channel: BrokerChannel, method: spec.Method, action: Callable[[], None]) -> None:
        try:
            action()
        except _ConnectionError as exc:
            self._connection_error(exc.code, exc.text, method)
        except _ChannelError as exc:
            self._channel_error(channel, exc.code, exc.text, method)

    # -- channel methods ---------------------------------------------------------------------------

    def _reply(self, channel: BrokerChannel, request: spec.Method, **fields: Any) -> None:
        if not getattr(request, "nowait", False):
            self._write(self.frames.reply(channel.channel_id, request, **fields))

    def _not_found(self, kind: str, name: str) -> _ChannelError:
        return _ChannelError(
            spec.NOT_FOUND, f"NOT_FOUND - no {kind} '{name}' in vhost '{self.virtual_host}'"
        )

    def _exchange(self, name: str) -> FakeExchange:
        exchange = self.broker.exchanges.get(name)
        if exchange is None:
            raise self._not_found("exchange", name)
        return exchange

    def _queue(self, channel: BrokerChannel, name: str) -> FakeQueue:
        name = name or channel.last_queue
        queue = self.broker.queues.get(name)
        if queue is None:
            raise self._not_found("queue", name)
        if queue.owner is not None and queue.owner is not self:
            raise _ChannelError(
                spec.RESOURCE_LOCKED,
                f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{name}' "
                f"in vhost '{self.virtual_host}'",
            )
        return queue

    def _channel_method(self, channel: BrokerChannel, method: spec.Method) -> None:
        handler = self._HANDLERS.get(type(method))
        if handler is None:
            raise _ConnectionError(
                spec.NOT_IMPLEMENTED, f"NOT_IMPLEMENTED - {method.NAME} is not supported"
            )
        handler(self, channel, method)

    def _on_channel_close(self, channel: BrokerChannel, method: spec.ChannelClose) -> None:
        self._release_channel(channel)
        del self.channels[channel.channel_id]
        self._write(self.frames.channel_close_ok(channel.channel_id))

    def _on_ignored(self, channel: BrokerChannel, method: spec.Method) -> None:
        pass  # Close-Ok, Flow-Ok and Cancel-Ok answering the broker's own requests

    def _on_flow(self, channel: BrokerChannel, method: spec.ChannelFlow) -> None:
        if not method.active:
            # RabbitMQ does not let clients stop deliveries this way.
            raise _ConnectionError(spec.NOT_IMPLEMENTED, "NOT_IMPLEMENTED - active=false")
        self._reply(channel, method)

    def _on_exchange_declare(self, channel: BrokerChannel, method: spec.ExchangeDeclare) -> None:
        name = method.exchange
        exchange = self.broker.exchanges.get(name)
        if method.passive:
            self._exchange(name)
        elif name == "":
            raise _ChannelError(
                spec.ACCESS_REFUSED,
                "ACCESS_REFUSED - operation not permitted on the default exchange",
            )
        elif exchange is None:
            if name.startswith("amq."):
                raise _ChannelError(
                    spec.ACCESS_REFUSED,
                    f"ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'",
                )
            if method.type not in EXCHANGE_TYPES:
                raise _ConnectionError(
                    spec.COMMAND_INVALID, f"COMMAND_INVALID - unknown exchange type '{method.type}'"
                )
            self.broker.exchanges[name] = FakeExchange(
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
                ("durable", _flag(method.durable), _flag(exchange.durable)),
                ("auto_delete", _flag(method.auto_delete), _flag(exchange.auto_delete)),
                ("internal", _flag(method.internal), _flag(exchange.internal)),
            ):
                if received != current:
                    raise _ChannelError(
                        spec.PRECONDITION_FAILED,
                        f"PRECONDITION_FAILED - inequivalent arg '{arg}' for exchange '{name}' in "
                        f"vhost '{self.virtual_host}': received '{received}' but current is "
                        f"'{current}'",
                    )
        self._reply(channel, method)

    def _on_exchange_delete(self, channel: BrokerChannel, method: spec.ExchangeDelete) -> None:
        name = method.exchange
        if name == "" or name.startswith("amq."):
            raise _ChannelError(
                spec.ACCESS_REFUSED,
                f"ACCESS_REFUSED - operation not permitted on exchange '{name}'",
            )
        exchange = self.broker.exchanges.get(name)
        if exchange is not None:
            if method.if_unused and exchange.bindings:
                raise _ChannelError(
                    spec.PRECONDITION_FAILED,
                    f"PRECONDITION_FAILED - exchange '{name}' in vhost '{self.virtual_host}' in use",
                )
            del self.broker.exchanges[name]
            for other in self.broker.exchanges.values():
                other.bindings = [b for b in other.bindings if b.to_queue or b.destination != name]
        self._reply(channel, method)

    def _on_exchange_bind(self, channel: BrokerChannel, method: spec.ExchangeBind) -> None:
        self._exchange(method.destination)
        source = self._exchange(method.source)
        binding = Binding(method.destination, False, method.routing_key, dict(method.arguments))
        self.broker._add_binding(source, binding)
        self._reply(channel, method)

    def _on_exchange_unbind(self, channel: BrokerChannel, method: spec.ExchangeUnbind) -> None:
        source = self.broker.exchanges.get(method.source)
        if source is not None:
            binding = Binding(method.destination, False, method.routing_key, dict(method.arguments))
            self.broker._remove_binding(source, binding)
        self._reply(channel, method)

    def _on_queue_declare(self, channel: BrokerChannel, method: spec.QueueDeclare) -> None:
        broker = self.broker
        name = method.queue
        if method.passive:
            queue = self._queue(channel, name)
        else:
            if name.startswith("amq."):
                raise _ChannelError(
                    spec.ACCESS_REFUSED,
                    f"ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'",
                )
            if name == "":
                token = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
                name = f"amq.gen-{token}"
            self._check_queue_arguments(method.arguments)
            existing = broker.queues.get(name)
            if existing is None:
                queue = FakeQueue(
                    name,
                    method.durable,
                    method.exclusive,
                    method.auto_delete,
                    dict(method.arguments),
                    owner=self if method.exclusive else None,
                )
                broker.queues[name] = queue
            else:
                queue = self._queue(channel, name)
                for arg, received, current in (
                    ("durable", method.durable, queue.durable),
                    ("exclusive", method.exclusive, queue.exclusive),
                    ("auto_delete", method.auto_delete, queue.auto_delete),
                ):
                    if received != current:
                        raise _ChannelError(
                            spec.PRECONDITION_FAILED,
                            f"PRECONDITION_FAILED - inequivalent arg '{arg}' for queue '{name}' in "
                            f"vhost '{self.virtual_host}': received '{_flag(received)}' but "
                            f"current is '{_flag(current)}'",
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
            raise _ChannelError(
                spec.PRECONDITION_FAILED,
                f"PRECONDITION_FAILED - invalid arg 'x-max-length' for queue: {limit!r}",
            )
        overflow = arguments.get("x-overflow")
        if overflow is not None and overflow not in _OVERFLOW:
            raise _ChannelError(
                spec.PRECONDITION_FAILED,
                f"PRECONDITION_FAILED - invalid arg 'x-overflow' for queue: {overflow!r}",
            )

    def _on_queue_bind(self, channel: BrokerChannel, method: spec.QueueBind) -> None:
        queue = self._queue(channel, method.queue)
        if method.exchange == "":
            raise _ChannelError(
                spec.ACCESS_REFUSED,
                "ACCESS_REFUSED - operation not permitted on the default exchange",
            )
        source = self._exchange(method.exchange)
        binding = Binding(queue.name, True, method.routing_key, dict(method.arguments))
        self.broker._add_binding(source, binding)
        self._reply(channel, method)

    def _on_queue_unbind(self, channel: BrokerChannel, method: spec.QueueUnbind) -> None:
        queue = self._queue(channel, method.queue)
        source = self.broker.exchanges.get(method.exchange)
        if source is not None:
            binding = Binding(queue.name, True, method.routing_key, dict(method.arguments))
            self.broker._remove_binding(source, binding)
        self._reply(channel, method)

    def _on_queue_purge(self, channel: BrokerChannel, method: spec.QueuePurge) -> None:
        queue = self._queue(channel, method.queue)
        count = len(queue.messages)
        queue.messages.clear()
        self._reply(channel, method, message_count=count)

    def _on_queue_delete(self, channel: BrokerChannel, method: spec.QueueDelete) -> None:
        name = method.queue or channel.last_queue
        count = 0
        if name in self.broker.queues:
            queue = self._queue(channel, name)
            if method.if_unused and queue.consumers:
                raise _ChannelError(
                    spec.PRECONDITION_FAILED,
                    f"PRECONDITION_FAILED - queue '{name}' in vhost '{self.virtual_host}' in use",
                )
            if method.if_empty and queue.messages:
                raise _ChannelError(
                    spec.PRECONDITION_FAILED,
                    f"PRECONDITION_FAILED - queue '{name}' in vhost '{self.virtual_host}' is not empty",
                )
            count = self.broker._delete_queue(queue)
        self._reply(channel, method, message_count=count)

    def _on_qos(self, channel: BrokerChannel, method: spec.BasicQos) -> None:
        if method.prefetch_size:
            raise _ConnectionError(
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
            tag = f"amq.ctag-fake-{id(self):x}-{self._ctag}"
        if tag in channel.consumers:
            raise _ConnectionError(
                spec.NOT_ALLOWED, f"NOT_ALLOWED - attempt to reuse consumer tag '{tag}'"
            )
        if queue.consumers and (method.exclusive or any(c.exclusive for c in queue.consumers)):
            raise _ChannelError(
                spec.ACCESS_REFUSED,
                f"ACCESS_REFUSED - queue '{queue.name}' in vhost '{self.virtual_host}' in "
                "exclusive use",
            )
        consumer = _Consumer(
            tag, queue.name, channel, method.no_ack, method.exclusive, channel.prefetch_count
        )
        channel.consumers[tag] = consumer
        queue.consumers.append(consumer)
        queue._had_consumers = True
        self._reply(channel, method, consumer_tag=tag)

    def _on_cancel(self, channel: BrokerChannel, method: spec.BasicCancel) -> None:
        consumer = channel.consumers.get(method.consumer_tag)
        if consumer is not None:
            self.broker._remove_consumer(consumer)
        self._reply(channel, method)

    def _on_get(self, channel: BrokerChannel, method: spec.BasicGet) -> None:
        queue = self._queue(channel, method.queue)
        if not queue.messages:
            self._write(self.frames.get_empty(channel.channel_id))
            return
        message = queue.messages.popleft()
        tag = channel.next_delivery_tag
        channel.next_delivery_tag += 1
        if not method.no_ack:
            channel.unacked[tag] = _Unacked(queue.name, message, None)
        self._write(
            self.frames.get_ok(
                channel.channel_id,
                tag,
                message.body,
                message.properties,
                message.exchange,
                message.routing_key,
                message.redelivered,
                len(queue.messages),
                frame_max=self.frame_max,
            )
        )

    def _take_unacked(self, channel: BrokerChannel, tag: int, multiple: bool) -> list[_Unacked]:
        if tag and tag not in channel.unacked:
            raise _ChannelError(
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

            channel._tx_pending.append(apply)
            return
        self._apply_settle(self._take_unacked(channel, tag, multiple), requeue)

    def _apply_settle(self, entries: list[_Unacked], requeue: bool) -> None:
        if requeue:
            self.broker._requeue(entries)
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
            raise _ConnectionError(spec.NOT_IMPLEMENTED, "NOT_IMPLEMENTED - requeue=false")
        unacked, channel.unacked = channel.unacked, {}
        self.broker._requeue(unacked[tag] for tag in sorted(unacked))
        if isinstance(method, spec.BasicRecover):
            self._reply(channel, method)

    def _on_confirm_select(self, channel: BrokerChannel, method: spec.ConfirmSelect) -> None:
        if channel.tx:
            raise _ChannelError(
                spec.PRECONDITION_FAILED,
                "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
            )
        channel.confirm = True
        self._reply(channel, method)

    def _on_tx_select(self, channel: BrokerChannel, method: spec.TxSelect) -> None:
        if channel.confirm:
            raise _ChannelError(
                spec.PRECONDITION_FAILED,
                "PRECONDITION_FAILED - cannot switch from confirm to tx mode",
            )
        channel.tx = True
        self._reply(channel, method)

    def _on_tx_end(self, channel: BrokerChannel, method: spec.TxCommit | spec.TxRollback) -> None:
        if not channel.tx:
            raise _ChannelError(
                spec.PRECONDITION_FAILED, "PRECONDITION_FAILED - channel is not transactional"
            )
        pending, channel._tx_pending = channel._tx_pending, []
        if isinstance(method, spec.TxCommit):
            for action in pending:
                action()
        self._reply(channel, method)

    def _publish(
        self,
        channel: BrokerChannel,
        method: spec.BasicPublish,
        properties: spec.BasicProperties,
        body: bytes,
    ) -> None:
        broker = self.broker
        exchange = self._exchange(method.exchange)
        if exchange.internal:
            raise _ChannelError(
                spec.ACCESS_REFUSED,
                f"ACCESS_REFUSED - cannot publish to internal exchange '{exchange.name}' in vhost "
                f"'{self.virtual_host}'",
            )
        seq = 0
        if channel.confirm:
            seq = channel.next_publish_seq
            channel.next_publish_seq += 1

        def deliver() -> None:
            queues = broker.route(method.exchange, method.routing_key, properties.headers)
            if not queues and method.mandatory:
                self._write(
                    self.frames.basic_return(
                        channel.channel_id,
                        body,
                        properties,
                        spec.NO_ROUTE,
                        "NO_ROUTE",
                        method.exchange,
                        method.routing_key,
                        frame_max=self.frame_max,
                    )
                )
            accepted = True
            for queue in queues:
                message = StoredMessage(method.exchange, method.routing_key, body, properties)
                accepted = broker._enqueue(queue, message) and accepted
            if seq:
                if self.hold_confirms:
                    channel.held_confirms.append((seq, accepted))
                else:
                    self._send_confirm(channel, seq, accepted, False)

        if channel.tx:
            channel._tx_pending.append(deliver)
        else:
            deliver()

    _HANDLERS: dict[type, Callable[[BrokerConnection, BrokerChannel, Any], None]] = {
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
