"""A scripted broker for testing code built on the sans-IO core, without a network.

Tests of the core, of the adapters' fakes and of benchmarks all need the same
two things: the bytes a RabbitMQ broker would send, and a readable form of the
bytes the client sent. This module provides both, plus shortcuts that bring a
:class:`~txamqp091.core.connection.Connection` and its channels to the open
state. It imports only the standard library and the core, so adapter-free code
can use it, and so can users testing their own code (as with treq's
``testing`` module).

:class:`ServerFrames` builds broker frames::

    frames = ServerFrames()
    conn = open_connection()                  # handshake done, output drained
    channel = open_channel(conn)              # Channel.Open-Ok fed
    channel.send_method(spec.BasicConsume(queue="q"))
    sent = parse_client_frames(conn.data_to_send())
    assert sent == [(spec.FRAME_METHOD, 1, spec.BasicConsume(queue="q"))]
    events = conn.receive_data(
        frames.method(1, spec.BasicConsumeOk(consumer_tag="ctag"))
        + frames.deliver(1, "ctag", 1, b"hello"),
        now=0.0,
    )

:func:`parse_client_frames` turns what the client wrote into
:class:`ClientFrame` tuples of ``(frame_type, channel_id, payload)``, where the
payload is a decoded :class:`~.spec.Method`, a ``(body_size, BasicProperties)``
pair for a content header, or the raw bytes of a body or heartbeat frame.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, cast

from . import spec
from .channel import Channel
from .client_frames import (
    ClientFrame,
    PublishedMessage,
    parse_client_frames,
    parse_client_methods,
    parse_published_messages,
)
from .codec import FieldTable
from .connection import Connection
from .events import ChannelOpened, ConnectionOpened, Event
from .frames import FRAME_OVERHEAD

__all__ = [
    "DEFAULT_SERVER_PROPERTIES",
    "ClientFrame",
    "PublishedMessage",
    "ServerFrames",
    "StaticCredentials",
    "open_channel",
    "open_connection",
    "parse_client_frames",
    "parse_client_methods",
    "parse_published_messages",
]

_frame_header = struct.Struct(">BHI")
_content_header = struct.Struct(">HHQ")

#: What :meth:`ServerFrames.start` announces unless told otherwise: enough of
#: RabbitMQ's Connection.Start table for code that looks at capabilities.
DEFAULT_SERVER_PROPERTIES: FieldTable = {
    "product": "RabbitMQ",
    "version": "3.13.0",
    "platform": "Erlang/OTP 26",
    "capabilities": {
        "publisher_confirms": True,
        "exchange_exchange_bindings": True,
        "basic.nack": True,
        "consumer_cancel_notify": True,
        "connection.blocked": True,
        "consumer_priorities": True,
        "authentication_failure_close": True,
        "per_consumer_qos": True,
        "direct_reply_to": True,
    },
}

# A reply field that neither the request nor the caller supplies gets the zero of its type.
_ZERO_BY_ANNOTATION: dict[str, Callable[[], Any]] = {
    "int": int,
    "str": str,
    "bool": bool,
    "bytes": bytes,
    "FieldTable": dict,
}


class StaticCredentials:
    """Credentials that give the same SASL response whatever the broker offers.

    :param mechanism: the SASL mechanism named in Connection.Start-Ok.
    :param response: the response sent in Start-Ok and in every Secure-Ok.
    """

    def __init__(self, mechanism: str = "PLAIN", response: bytes = b"\x00guest\x00guest") -> None:
        self.mechanism = mechanism
        self.response = response
        #: The ``mechanisms`` (Start) and ``challenge`` (Secure) values asked about, in order.
        self.asked: list[bytes] = []

    def response_for(self, mechanisms: bytes) -> bytes:
        self.asked.append(mechanisms)
        return self.response

    def __repr__(self) -> str:
        return f"StaticCredentials({self.mechanism!r})"


class ServerFrames:
    """A factory for the frames a broker sends, as ``bytes`` ready for ``receive_data``.

    The low-level methods (:meth:`frame`, :meth:`method`, :meth:`header`,
    :meth:`body`, :meth:`content`, :meth:`heartbeat`) build any frame,
    malformed ones included; the named helpers build common broker methods
    with RabbitMQ-like defaults.

    :param frame_max: the largest frame :meth:`content` produces unless told
        otherwise; content bodies are split into frames of at most
        ``frame_max - 8`` payload bytes, as a broker does.
    """

    def __init__(self, frame_max: int = 131072) -> None:
        self.frame_max = frame_max

    # -- any frame ---------------------------------------------------------------------

    @staticmethod
    def frame(
        frame_type: int, channel_id: int, payload: bytes, *, frame_end: int = spec.FRAME_END
    ) -> bytes:
        """One frame around ``payload``; pass another ``frame_end`` to make a broken one."""
        return (
            _frame_header.pack(frame_type, channel_id, len(payload)) + payload + bytes((frame_end,))
        )

    @staticmethod
    def protocol_header(major: int = 0, minor: int = 9, revision: int = 1) -> bytes:
        """What a broker writes instead of Connection.Start when it rejects our protocol version."""
        return b"AMQP\x00" + bytes((major, minor, revision))

    def method(self, channel_id: int, method: spec.Method) -> bytes:
        """A method frame carrying ``method``."""
        return self.frame(spec.FRAME_METHOD, channel_id, method.encode())

    def header(
        self,
        channel_id: int,
        body_size: int,
        properties: spec.BasicProperties | None = None,
        *,
        class_id: int = 60,
        weight: int = 0,
    ) -> bytes:
        """A content header frame announcing ``body_size`` body bytes."""
        props = (properties if properties is not None else spec.BasicProperties()).encode()
        payload = _content_header.pack(class_id, weight, body_size) + props
        return self.frame(spec.FRAME_HEADER, channel_id, payload)

    def body(self, channel_id: int, data: bytes) -> bytes:
        """One content body frame (not split, whatever its size)."""
        return self.frame(spec.FRAME_BODY, channel_id, data)

    def content(
        self,
        channel_id: int,
        method: spec.Method,
        properties: spec.BasicProperties | None,
        body: bytes,
        frame_max: int | None = None,
    ) -> bytes:
        """A content-carrying method, its header and its body split to fit ``frame_max``.

        An empty body sends no body frame (spec 4.2.6.2).
        """
        limit = self.frame_max if frame_max is None else frame_max
        room = limit - FRAME_OVERHEAD
        if room < 1:
            raise ValueError(f"frame_max {limit} leaves no room for a body")
        parts = [self.method(channel_id, method), self.header(channel_id, len(body), properties)]
        for start in range(0, len(body), room):
            parts.append(self.body(channel_id, body[start : start + room]))
        return b"".join(parts)

    def heartbeat(self, channel_id: int = 0) -> bytes:
        """A heartbeat frame; on a channel other than 0 it is a protocol error."""
        return self.frame(spec.FRAME_HEARTBEAT, channel_id, b"")

    # -- connection (channel 0) ------------------------------------------------------

    def start(
        self,
        mechanisms: bytes = b"AMQPLAIN PLAIN",
        server_properties: FieldTable | None = None,
        *,
        version_major: int = 0,
        version_minor: int = 9,
        locales: bytes = b"en_US",
    ) -> bytes:
        """Connection.Start; ``server_properties`` defaults to :data:`DEFAULT_SERVER_PROPERTIES`."""
        props = DEFAULT_SERVER_PROPERTIES if server_properties is None else server_properties
        return self.method(
            0,
            spec.ConnectionStart(
                version_major=version_major,
                version_minor=version_minor,
                server_properties=props,
                mechanisms=mechanisms,
                locales=locales,
            ),
        )

    def secure(self, challenge: bytes) -> bytes:
        """Connection.Secure with a SASL challenge."""
        return self.method(0, spec.ConnectionSecure(challenge=challenge))

    def tune(self, channel_max: int = 2047, frame_max: int = 131072, heartbeat: int = 60) -> bytes:
        """Connection.Tune with the broker's proposals (RabbitMQ's defaults)."""
        return self.method(
            0,
            spec.ConnectionTune(channel_max=channel_max, frame_max=frame_max, heartbeat=heartbeat),
        )

    def open_ok(self) -> bytes:
        """Connection.Open-Ok."""
        return self.method(0, spec.ConnectionOpenOk())

    def handshake(
        self,
        *,
        mechanisms: bytes = b"AMQPLAIN PLAIN",
        server_properties: FieldTable | None = None,
        channel_max: int = 2047,
        frame_max: int = 131072,
        heartbeat: int = 60,
    ) -> bytes:
        """Start, Tune and Open-Ok together: everything a broker sends to open a connection.

        The core parses them in one go, so a fake broker may write them as soon
        as it has read the client's protocol header.
        """
        return (
            self.start(mechanisms, server_properties)
            + self.tune(channel_max, frame_max, heartbeat)
            + self.open_ok()
        )

    def close(
        self,
        reply_code: int = spec.CONNECTION_FORCED,
        reply_text: str = "CONNECTION_FORCED - broker forced connection closure",
        class_id: int = 0,
        method_id: int = 0,
    ) -> bytes:
        """Connection.Close from the broker."""
        return self.method(
            0,
            spec.ConnectionClose(
                reply_code=reply_code, reply_text=reply_text, class_id=class_id, method_id=method_id
            ),
        )

    def close_ok(self) -> bytes:
        """Connection.Close-Ok: the answer to the client's Connection.Close."""
        return self.method(0, spec.ConnectionCloseOk())

    def blocked(self, reason: str = "low on memory") -> bytes:
        """Connection.Blocked (a resource alarm)."""
        return self.method(0, spec.ConnectionBlocked(reason=reason))

    def unblocked(self) -> bytes:
        """Connection.Unblocked."""
        return self.method(0, spec.ConnectionUnblocked())

    def update_secret_ok(self) -> bytes:
        """Connection.Update-Secret-Ok."""
        return self.method(0, spec.ConnectionUpdateSecretOk())

    # -- channels ------------------------------------------------------------------------

    def reply(self, channel_id: int, request: spec.Method, **fields: Any) -> bytes:
        """The first reply the spec lists for ``request``, as a broker would answer it.

        Reply fields are taken from ``fields``, else from the request's field of
        the same name (a Queue.Declare-Ok names the queue declared), else the
        zero of their type. Replies with content (Basic.Get-Ok) need
        :meth:`get_ok` instead.

        :raises ValueError: ``request`` expects no reply, or its reply carries content.
        """
        if not request.REPLIES:
            raise ValueError(f"{request.NAME} has no reply")
        reply_class = spec.METHODS[request.REPLIES[0]]
        if reply_class.HAS_CONTENT:
            raise ValueError(f"{reply_class.NAME} carries content: use get_ok()")
        unknown = set(fields) - set(reply_class.FIELDS)
        if unknown:
            raise ValueError(f"{reply_class.NAME} has no field {sorted(unknown)}")
        values: dict[str, Any] = {}
        for name in reply_class.FIELDS:
            if name in fields:
                values[name] = fields[name]
            elif name in request.FIELDS:
                values[name] = getattr(request, name)
            else:
                values[name] = _ZERO_BY_ANNOTATION[reply_class.__annotations__[name]]()
        make = cast(Callable[..., spec.Method], reply_class)
        return self.method(channel_id, make(**values))

    def channel_open_ok(self, channel_id: int) -> bytes:
        """Channel.Open-Ok."""
        return self.method(channel_id, spec.ChannelOpenOk())

    def channel_close(
        self,
        channel_id: int,
        reply_code: int = spec.NOT_FOUND,
        reply_text: str = "NOT_FOUND - no queue 'missing' in vhost '/'",
        class_id: int = 0,
        method_id: int = 0,
    ) -> bytes:
        """Channel.Close from the broker (a channel error)."""
        return self.method(
            channel_id,
            spec.ChannelClose(
                reply_code=reply_code, reply_text=reply_text, class_id=class_id, method_id=method_id
            ),
        )

    def channel_close_ok(self, channel_id: int) -> bytes:
        """Channel.Close-Ok: the answer to the client's Channel.Close."""
        return self.method(channel_id, spec.ChannelCloseOk())

    def flow(self, channel_id: int, active: bool) -> bytes:
        """Channel.Flow from the broker."""
        return self.method(channel_id, spec.ChannelFlow(active=active))

    def queue_declare_ok(
        self, channel_id: int, queue: str, message_count: int = 0, consumer_count: int = 0
    ) -> bytes:
        """Queue.Declare-Ok."""
        return self.method(
            channel_id,
            spec.QueueDeclareOk(
                queue=queue, message_count=message_count, consumer_count=consumer_count
            ),
        )

    def qos_ok(self, channel_id: int) -> bytes:
        """Basic.Qos-Ok."""
        return self.method(channel_id, spec.BasicQosOk())

    def consume_ok(self, channel_id: int, consumer_tag: str) -> bytes:
        """Basic.Consume-Ok."""
        return self.method(channel_id, spec.BasicConsumeOk(consumer_tag=consumer_tag))

    def cancel_ok(self, channel_id: int, consumer_tag: str) -> bytes:
        """Basic.Cancel-Ok."""
        return self.method(channel_id, spec.BasicCancelOk(consumer_tag=consumer_tag))

    def cancel(self, channel_id: int, consumer_tag: str, nowait: bool = False) -> bytes:
        """Basic.Cancel from the broker (consumer cancel notification)."""
        return self.method(channel_id, spec.BasicCancel(consumer_tag=consumer_tag, nowait=nowait))

    def confirm_select_ok(self, channel_id: int) -> bytes:
        """Confirm.Select-Ok."""
        return self.method(channel_id, spec.ConfirmSelectOk())

    def deliver(
        self,
        channel_id: int,
        consumer_tag: str,
        delivery_tag: int,
        body: bytes,
        properties: spec.BasicProperties | None = None,
        exchange: str = "",
        routing_key: str = "",
        redelivered: bool = False,
        frame_max: int | None = None,
    ) -> bytes:
        """Basic.Deliver with its content header and body frames."""
        method = spec.BasicDeliver(
            consumer_tag=consumer_tag,
            delivery_tag=delivery_tag,
            redelivered=redelivered,
            exchange=exchange,
            routing_key=routing_key,
        )
        return self.content(channel_id, method, properties, body, frame_max)

    def get_ok(
        self,
        channel_id: int,
        delivery_tag: int,
        body: bytes,
        properties: spec.BasicProperties | None = None,
        exchange: str = "",
        routing_key: str = "",
        redelivered: bool = False,
        message_count: int = 0,
        frame_max: int | None = None,
    ) -> bytes:
        """Basic.Get-Ok with its content: the answer to a Basic.Get that found a message."""
        method = spec.BasicGetOk(
            delivery_tag=delivery_tag,
            redelivered=redelivered,
            exchange=exchange,
            routing_key=routing_key,
            message_count=message_count,
        )
        return self.content(channel_id, method, properties, body, frame_max)

    def get_empty(self, channel_id: int) -> bytes:
        """Basic.Get-Empty."""
        return self.method(channel_id, spec.BasicGetEmpty())

    def basic_return(
        self,
        channel_id: int,
        body: bytes,
        properties: spec.BasicProperties | None = None,
        reply_code: int = spec.NO_ROUTE,
        reply_text: str = "NO_ROUTE",
        exchange: str = "",
        routing_key: str = "",
        frame_max: int | None = None,
    ) -> bytes:
        """Basic.Return with its content: a mandatory message that could not be routed."""
        method = spec.BasicReturn(
            reply_code=reply_code, reply_text=reply_text, exchange=exchange, routing_key=routing_key
        )
        return self.content(channel_id, method, properties, body, frame_max)

    def ack(self, channel_id: int, delivery_tag: int, multiple: bool = False) -> bytes:
        """Basic.Ack from the broker: a publisher confirm."""
        return self.method(channel_id, spec.BasicAck(delivery_tag=delivery_tag, multiple=multiple))

    def nack(
        self, channel_id: int, delivery_tag: int, multiple: bool = False, requeue: bool = False
    ) -> bytes:
        """Basic.Nack from the broker: a negative publisher confirm."""
        return self.method(
            channel_id,
            spec.BasicNack(delivery_tag=delivery_tag, multiple=multiple, requeue=requeue),
        )


# -- shortcuts ------------------------------------------------------------------------


def open_connection(
    *,
    frames: ServerFrames | None = None,
    mechanisms: bytes = b"AMQPLAIN PLAIN",
    server_properties: FieldTable | None = None,
    server_channel_max: int = 2047,
    server_frame_max: int = 131072,
    server_heartbeat: int = 0,
    now: float = 0.0,
    **kwargs: Any,
) -> Connection:
    """A core :class:`~.connection.Connection` taken through the handshake.

    Keyword arguments not listed here go to ``Connection`` (``credentials``
    defaults to :class:`StaticCredentials` for guest/guest). The broker side
    offers ``mechanisms`` and proposes ``server_channel_max``,
    ``server_frame_max`` and ``server_heartbeat`` (0, no heartbeats, unless
    asked: tests then need not tick). The returned connection is
    ``OPEN`` and its :meth:`~.connection.Connection.data_to_send` is drained.

    :raises AssertionError: the handshake did not end with ``ConnectionOpened``.
    """
    kwargs.setdefault("credentials", StaticCredentials())
    conn = Connection(**kwargs)
    frames = frames if frames is not None else ServerFrames()
    conn.data_to_send()
    events = conn.receive_data(
        frames.handshake(
            mechanisms=mechanisms,
            server_properties=server_properties,
            channel_max=server_channel_max,
            frame_max=server_frame_max,
            heartbeat=server_heartbeat,
        ),
        now,
    )
    conn.data_to_send()
    _expect(events, ConnectionOpened, "the handshake")
    return conn


def open_channel(
    conn: Connection, *, frames: ServerFrames | None = None, now: float = 0.0
) -> Channel:
    """Open a channel on an open ``conn`` and feed its Channel.Open-Ok.

    ``conn.data_to_send()`` is drained before and after, so anything queued
    before the call is discarded.

    :raises AssertionError: Open-Ok did not produce ``ChannelOpened``.
    """
    frames = frames if frames is not None else ServerFrames()
    channel = conn.open_channel()
    conn.data_to_send()
    events = conn.receive_data(frames.channel_open_ok(channel.channel_id), now)
    conn.data_to_send()
    _expect(events, ChannelOpened, f"opening channel {channel.channel_id}")
    return channel


def _expect(events: list[Event], kind: type[Event], what: str) -> None:
    if not any(isinstance(event, kind) for event in events):
        raise AssertionError(f"{what} gave {events!r}, not {kind.__name__}")
