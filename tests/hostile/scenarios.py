"""The hostile scenarios, by name: what the "broker" sends, what the client must do.

Each :class:`Scenario` pairs a server script (run by
:class:`~tests.hostile.server.HostileServer` in its thread) with a client
step (an adapter-neutral coroutine using only the names both adapters share)
and the expected outcome: the error type, whether a ``ProtocolError`` must
be the error or in its ``__cause__`` chain, and the reply code of the
Connection.Close the client must send before it closes (``None``: no Close,
because no Connection.Start was received or the socket is gone).

Post-handshake scenarios leave operations pending on purpose (a
Queue.Declare, a consumer's ``get()``): the runner checks that each of them
fails with a typed error instead of hanging, and that nothing malformed
reached the application.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tests.hostile.server import Peer
from txamqp091.core import spec
from txamqp091.core.codec import MAX_NESTING_DEPTH
from txamqp091.exceptions import (
    AMQPHeartbeatTimeout,
    AuthenticationError,
    IncompatibleProtocolError,
    ProtocolError,
    StreamLostError,
)

__all__ = ["SCENARIOS", "ClientContext", "Scenario"]

_frame_header = struct.Struct(">BHI")
CTAG = "hostile-ctag"


class ClientContext:
    """What a client step started: operations that must end, messages that arrived."""

    def __init__(self) -> None:
        self.pending: list[Any] = []
        self.delivered: list[Any] = []


ClientStep = Callable[[Any, ClientContext], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    """One hostile case.

    :ivar name: the scenario's id in test names and reports.
    :ivar server: the broker's script.
    :ivar client: what the client does once connected (None: handshake cases).
    :ivar error: the type the client must fail with.
    :ivar close_code: the Connection.Close reply code the client must send first.
    :ivar protocol_error: a ProtocolError must be the error or in its cause chain.
    :ivar handshake: ``connect()`` itself must fail.
    :ivar deadline: seconds from the hostile bytes to the client's failure.
    """

    name: str
    server: Callable[[Peer], None]
    client: ClientStep | None
    error: type[BaseException]
    close_code: int | None
    protocol_error: bool = True
    handshake: bool = False
    deadline: float = 1.0
    url_options: dict[str, Any] = field(default_factory=dict)


# -- client steps ---------------------------------------------------------------------


async def declare_pending(conn: Any, ctx: ClientContext) -> None:
    """Open a channel and leave a Queue.Declare waiting for its reply."""
    ch = await conn.channel()
    ctx.pending.append(ch.queue_declare("hostile-q"))


async def consume_pending(conn: Any, ctx: ClientContext) -> None:
    """Consume, then leave a ``get()`` and a Queue.Declare waiting."""
    ch = await conn.channel()
    consumer = await ch.basic_consume("hostile-q", consumer_tag=CTAG)
    ctx.pending.append(consumer.get())
    ctx.pending.append(ch.queue_declare("hostile-q2"))


async def confirm_pending(conn: Any, ctx: ClientContext) -> None:
    """Confirm mode with nothing published, and a Queue.Declare waiting."""
    ch = await conn.channel()
    await ch.confirm_delivery()
    ctx.pending.append(ch.queue_declare("hostile-q"))


async def idle(conn: Any, ctx: ClientContext) -> None:
    """Nothing: the connection is open and quiet."""


# -- server scripts ---------------------------------------------------------------------


def after_declare(hostile: Callable[[Peer], bytes]) -> Callable[[Peer], None]:
    """Handshake, open the channel, wait for Queue.Declare, then send ``hostile(peer)``."""

    def script(peer: Peer) -> None:
        peer.handshake()
        peer.open_channel()
        peer.expect(spec.QueueDeclare)
        peer.hostile(hostile(peer))

    return script


def after_consume(hostile: Callable[[Peer], bytes]) -> Callable[[Peer], None]:
    """Handshake, channel, Consume-Ok, wait for Queue.Declare, then the hostile bytes."""

    def script(peer: Peer) -> None:
        peer.handshake()
        peer.open_channel()
        peer.answer(spec.BasicConsume)
        peer.expect(spec.QueueDeclare)
        peer.hostile(hostile(peer))

    return script


def after_confirm(hostile: Callable[[Peer], bytes]) -> Callable[[Peer], None]:
    def script(peer: Peer) -> None:
        peer.handshake()
        peer.open_channel()
        peer.answer(spec.ConfirmSelect)
        peer.expect(spec.QueueDeclare)
        peer.hostile(hostile(peer))

    return script


def before_start(hostile: bytes, *, hang_up: bool = False) -> Callable[[Peer], None]:
    """Read the client's protocol header, answer ``hostile`` instead of Connection.Start."""

    def script(peer: Peer) -> None:
        peer.read_protocol_header()
        peer.hostile(hostile)
        if hang_up:
            peer.hang_up()

    return script


def deliver(peer: Peer, body: bytes = b"hello", **kwargs: Any) -> bytes:
    return peer.frames.deliver(1, CTAG, 1, body, **kwargs)


def deliver_method(peer: Peer) -> bytes:
    return peer.frames.method(
        1,
        spec.BasicDeliver(
            consumer_tag=CTAG, delivery_tag=1, redelivered=False, exchange="", routing_key="q"
        ),
    )


def method_payload(class_id: int, method_id: int, rest: bytes = b"") -> bytes:
    return struct.pack(">HH", class_id, method_id) + rest


def start_with_table(table_bytes: bytes) -> bytes:
    """A Connection.Start frame whose server-properties are ``table_bytes`` as given."""
    payload = (
        method_payload(10, 10, b"\x00\x09")
        + table_bytes
        + struct.pack(">I", 5)
        + b"PLAIN"
        + struct.pack(">I", 5)
        + b"en_US"
    )
    return ServerFramesRaw.method_frame(0, payload)


class ServerFramesRaw:
    @staticmethod
    def frame(frame_type: int, channel_id: int, payload: bytes, frame_end: int = 0xCE) -> bytes:
        return (
            _frame_header.pack(frame_type, channel_id, len(payload)) + payload + bytes((frame_end,))
        )

    @classmethod
    def method_frame(cls, channel_id: int, payload: bytes) -> bytes:
        return cls.frame(spec.FRAME_METHOD, channel_id, payload)


raw = ServerFramesRaw


def nested_table(depth: int) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for _ in range(depth - 1):
        table = {"n": table}
    return table


def peer_closes_mid_frame(peer: Peer) -> None:
    peer.handshake()
    peer.open_channel()
    peer.expect(spec.QueueDeclare)
    frame = peer.frames.queue_declare_ok(1, "hostile-q")
    peer.hostile(frame[: len(frame) // 2])
    peer.hang_up()


def heartbeat_silence(peer: Peer) -> None:
    peer.handshake(heartbeat=1)
    peer.hostile()  # and then nothing at all


def unsupported_mechanism(peer: Peer) -> None:
    peer.read_protocol_header()
    peer.hostile(peer.frames.start(mechanisms=b"EXTERNAL ANONYMOUS"))


def handshake_then(data: Callable[[Peer], bytes]) -> Callable[[Peer], None]:
    def script(peer: Peer) -> None:
        peer.read_protocol_header()
        peer.hostile(data(peer))

    return script


# -- the list ---------------------------------------------------------------------------

FRAME_ERROR = spec.FRAME_ERROR  # 501
SYNTAX_ERROR = spec.SYNTAX_ERROR  # 502
COMMAND_INVALID = spec.COMMAND_INVALID  # 503
CHANNEL_ERROR = spec.CHANNEL_ERROR  # 504
UNEXPECTED_FRAME = spec.UNEXPECTED_FRAME  # 505
NOT_IMPLEMENTED = spec.NOT_IMPLEMENTED  # 540

SCENARIOS: list[Scenario] = [
    Scenario(
        "bad_frame_end",
        after_declare(lambda p: raw.frame(1, 1, method_payload(50, 11), frame_end=0x00)),
        declare_pending,
        ProtocolError,
        FRAME_ERROR,
    ),
    Scenario(
        "frame_over_frame_max",
        after_declare(lambda p: raw.frame(spec.FRAME_BODY, 1, b"x" * 200_000)),
        declare_pending,
        ProtocolError,
        FRAME_ERROR,
    ),
    Scenario(
        # Only the 7-byte header: the client must refuse it without waiting for 2 GiB.
        "frame_size_2gib",
        after_declare(lambda p: _frame_header.pack(spec.FRAME_METHOD, 1, 2**31)),
        declare_pending,
        ProtocolError,
        FRAME_ERROR,
    ),
    Scenario(
        "unknown_frame_type",
        after_declare(lambda p: raw.frame(9, 0, b"")),
        declare_pending,
        ProtocolError,
        FRAME_ERROR,
    ),
    Scenario(
        "unknown_class_id",
        after_declare(lambda p: raw.method_frame(1, method_payload(999, 10))),
        declare_pending,
        ProtocolError,
        NOT_IMPLEMENTED,
    ),
    Scenario(
        "unknown_method_id",
        after_declare(lambda p: raw.method_frame(1, method_payload(50, 99))),
        declare_pending,
        ProtocolError,
        NOT_IMPLEMENTED,
    ),
    Scenario(
        # Connection.Start whose server-properties table claims more bytes than it has.
        "truncated_field_table",
        handshake_then(lambda p: start_with_table(struct.pack(">I", 40) + b"\x07product")),
        None,
        ProtocolError,
        SYNTAX_ERROR,
        handshake=True,
    ),
    Scenario(
        "unknown_field_type_in_start",
        handshake_then(lambda p: start_with_table(struct.pack(">I", 3) + b"\x01kZ")),
        None,
        ProtocolError,
        SYNTAX_ERROR,
        handshake=True,
    ),
    Scenario(
        "unknown_field_type_in_headers",
        after_consume(
            lambda p: (
                deliver_method(p)
                + raw.frame(
                    spec.FRAME_HEADER,
                    1,
                    struct.pack(">HHQH", 60, 0, 5, 0x2000) + struct.pack(">I", 3) + b"\x01kZ",
                )
                + p.frames.body(1, b"hello")
            )
        ),
        consume_pending,
        ProtocolError,
        SYNTAX_ERROR,
    ),
    Scenario(
        "field_table_nested_too_deep",
        after_consume(
            lambda p: deliver(
                p,
                properties=spec.BasicProperties(headers=nested_table(MAX_NESTING_DEPTH + 5)),
            )
        ),
        consume_pending,
        ProtocolError,
        SYNTAX_ERROR,
    ),
    Scenario(
        "body_longer_than_declared",
        after_consume(
            lambda p: deliver_method(p) + p.frames.header(1, 5) + p.frames.body(1, b"0123456789")
        ),
        consume_pending,
        ProtocolError,
        UNEXPECTED_FRAME,
    ),
    Scenario(
        # A header announcing 1 TiB: refused from the header, nothing buffered.
        "message_over_max_message_size",
        after_consume(lambda p: deliver_method(p) + p.frames.header(1, 1 << 40)),
        consume_pending,
        ProtocolError,
        FRAME_ERROR,
    ),
    Scenario(
        "heartbeat_on_channel",
        after_declare(lambda p: p.frames.heartbeat(1)),
        declare_pending,
        ProtocolError,
        FRAME_ERROR,
    ),
    Scenario(
        "header_without_method",
        after_declare(lambda p: p.frames.header(1, 5)),
        declare_pending,
        ProtocolError,
        UNEXPECTED_FRAME,
    ),
    Scenario(
        "body_without_method",
        after_declare(lambda p: p.frames.body(1, b"hello")),
        declare_pending,
        ProtocolError,
        UNEXPECTED_FRAME,
    ),
    Scenario(
        "body_without_header",
        after_consume(lambda p: deliver_method(p) + p.frames.body(1, b"hello")),
        consume_pending,
        ProtocolError,
        UNEXPECTED_FRAME,
    ),
    Scenario(
        "method_mid_content",
        after_consume(
            lambda p: (
                deliver_method(p)
                + p.frames.header(1, 10)
                + p.frames.body(1, b"01234")
                + p.frames.qos_ok(1)
            )
        ),
        consume_pending,
        ProtocolError,
        UNEXPECTED_FRAME,
    ),
    Scenario(
        "delivery_on_unopened_channel",
        after_consume(lambda p: p.frames.deliver(7, CTAG, 1, b"hello")),
        consume_pending,
        ProtocolError,
        CHANNEL_ERROR,
    ),
    Scenario(
        "content_on_channel_zero",
        after_declare(lambda p: p.frames.body(0, b"hello")),
        declare_pending,
        ProtocolError,
        CHANNEL_ERROR,
    ),
    Scenario(
        "ack_for_unsent_publish",
        after_confirm(lambda p: p.frames.method(1, spec.BasicAck(delivery_tag=5))),
        confirm_pending,
        ProtocolError,
        COMMAND_INVALID,
    ),
    Scenario(
        "reply_to_nothing",
        after_declare(lambda p: p.frames.qos_ok(1)),
        declare_pending,
        ProtocolError,
        COMMAND_INVALID,
    ),
    Scenario(
        "connection_start_after_open",
        after_declare(lambda p: p.frames.start()),
        declare_pending,
        ProtocolError,
        COMMAND_INVALID,
    ),
    Scenario(
        "peer_closes_mid_frame",
        peer_closes_mid_frame,
        declare_pending,
        StreamLostError,
        None,
        protocol_error=False,
    ),
    Scenario(
        "heartbeat_timeout",
        heartbeat_silence,
        idle,
        AMQPHeartbeatTimeout,
        None,
        protocol_error=False,
        deadline=2.0 + 0.75,  # two heartbeat intervals of 1 s, plus scheduling slack
        url_options={"heartbeat": 1},
    ),
    Scenario(
        "garbage_instead_of_start",
        before_start(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
        None,
        ProtocolError,
        None,
        handshake=True,
    ),
    Scenario(
        "different_protocol_header",
        before_start(b"AMQP\x00\x00\x08\x00", hang_up=True),
        None,
        IncompatibleProtocolError,
        None,
        handshake=True,
    ),
    Scenario(
        "protocol_version_0_8_in_start",
        handshake_then(lambda p: p.frames.start(version_major=8, version_minor=0)),
        None,
        ProtocolError,
        NOT_IMPLEMENTED,
        handshake=True,
    ),
    Scenario(
        "no_supported_mechanism",
        unsupported_mechanism,
        None,
        AuthenticationError,
        None,
        protocol_error=False,
        handshake=True,
    ),
]

BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
