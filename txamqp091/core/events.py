"""What the core tells its adapter: one event per thing that happened on the wire.

``Connection.receive_data`` and ``Connection.tick`` return lists of these. Events
are plain data: the core never calls user code, so an adapter dispatches them
after parsing has returned and may call back into the core while it does.

Most events are frozen, slotted, keyword-only dataclasses. The two that occur
once per message (:class:`Delivery` and :class:`PublishAcked`) are slotted
classes with a positional constructor instead, because the frozen dataclass
``__init__`` costs more than the rest of decoding a small message; treat them
as read-only all the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .spec import BasicProperties, Method

__all__ = [
    "ChannelClosed",
    "ChannelFlow",
    "ChannelOpened",
    "ConnectionBlocked",
    "ConnectionClosed",
    "ConnectionOpened",
    "ConnectionUnblocked",
    "ConsumerCancelled",
    "Delivery",
    "Event",
    "GetOk",
    "MethodReply",
    "PublishAcked",
    "PublishNacked",
    "Returned",
]


class Event:
    """Base of every event."""

    __slots__ = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionOpened(Event):
    """Connection.Open-Ok arrived: the connection is usable."""

    #: The broker's Connection.Start server-properties table.
    server_properties: dict[str, Any]
    #: Negotiated highest channel number.
    channel_max: int
    #: Negotiated largest frame, in bytes, frame header and end octet included.
    frame_max: int
    #: Negotiated heartbeat interval in seconds; 0 means none.
    heartbeat: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed(Event):
    """The connection has ended; the adapter should drop the transport.

    ``error`` is ``None`` only when a close this client asked for completed
    with 200; otherwise it is the exception that ended the connection
    (``ConnectionClosedByBroker``, ``ProtocolError``, ``AMQPHeartbeatTimeout``,
    ``StreamLostError``, ``ProbableAuthenticationError``, ...).
    """

    reply_code: int
    reply_text: str
    error: Exception | None = field(default=None)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionBlocked(Event):
    """The broker stopped reading from this connection (a resource alarm)."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionUnblocked(Event):
    """The broker resumed reading from this connection."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelOpened(Event):
    """Channel.Open-Ok arrived."""

    channel_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelClosed(Event):
    """The channel ended: by the broker (``error`` is ``ChannelClosedByBroker``)
    or by this client's close completing (``ChannelClosedByClient``)."""

    channel_id: int
    reply_code: int
    reply_text: str
    error: Exception


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelFlow(Event):
    """The broker asked to stop (``active=False``) or resume publishing on a channel."""

    channel_id: int
    active: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodReply(Event):
    """The reply to the synchronous request in flight on a channel (0 for the connection).

    Replies arrive in request order, one per request, so an adapter keeps a FIFO
    of waiters per channel and pops one per reply.
    """

    channel_id: int
    method: Method


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsumerCancelled(Event):
    """The broker cancelled a consumer (Basic.Cancel from the broker)."""

    channel_id: int
    consumer_tag: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishNacked(Event):
    """Basic.Nack in confirm mode: the broker does not have these messages."""

    channel_id: int
    delivery_tag: int
    multiple: bool


class PublishAcked(Event):
    """Basic.Ack in confirm mode: the broker has the message ``delivery_tag``
    (and, with ``multiple``, every earlier one)."""

    __slots__ = ("channel_id", "delivery_tag", "multiple")

    def __init__(self, channel_id: int, delivery_tag: int, multiple: bool) -> None:
        self.channel_id = channel_id
        self.delivery_tag = delivery_tag
        self.multiple = multiple

    def __repr__(self) -> str:
        return (
            f"PublishAcked(channel_id={self.channel_id}, delivery_tag={self.delivery_tag}, "
            f"multiple={self.multiple})"
        )


@dataclass(slots=True, eq=False, repr=False)
class Delivery(Event):
    """A complete message pushed to a consumer (Basic.Deliver + header + body).

    Adapters may pass a subclass as the connection's ``delivery_class`` so that
    this one object is also the user's message (one allocation per delivery).
    Unlike the other events it is mutable and compares by identity: a frozen
    dataclass's ``__init__`` goes through ``object.__setattr__``, too slow for the
    one event built per message; a subclass adds its own fields after these
    (:class:`txamqp091.Message` does), and one generated ``__init__`` sets them all.
    """

    #: The channel the message arrived on.
    channel_id: int
    #: The consumer it was delivered to.
    consumer_tag: str
    #: The broker's number for it on this channel (what ``basic_ack`` takes).
    delivery_tag: int
    #: Whether the broker delivered it before (to this or another consumer).
    redelivered: bool
    #: The exchange it was published to.
    exchange: str
    #: The routing key it was published with.
    routing_key: str
    #: Its content header's properties.
    properties: BasicProperties
    #: Its body, whole.
    body: bytes

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} channel={self.channel_id} tag={self.delivery_tag} "
            f"consumer={self.consumer_tag!r} exchange={self.exchange!r} "
            f"routing_key={self.routing_key!r} body={len(self.body)} bytes>"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class GetOk(Event):
    """The reply to Basic.Get when the queue had a message; completes the request in flight."""

    channel_id: int
    delivery_tag: int
    redelivered: bool
    exchange: str
    routing_key: str
    message_count: int
    properties: BasicProperties
    body: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Returned(Event):
    """A mandatory message the broker could not route (Basic.Return + header + body)."""

    channel_id: int
    reply_code: int
    reply_text: str
    exchange: str
    routing_key: str
    properties: BasicProperties
    body: bytes
