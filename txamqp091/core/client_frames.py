"""Reading what a client sent: whole frames decoded back into methods, headers and bodies.

Half of :mod:`txamqp091.core.testing`'s scripted broker (the other half writes the broker's
frames): tests assert on :class:`ClientFrame` tuples or on reassembled
:class:`PublishedMessage` values instead of on raw bytes. It decodes with the
same :mod:`.spec` classes as the connection, but on its own short path, so a bug
in the connection's incremental parser cannot hide itself in the tests' reading.
Import the names from :mod:`txamqp091.core.testing`, which re-exports them.
"""

from __future__ import annotations

import struct
from typing import NamedTuple, cast

from . import spec

__all__ = [
    "ClientFrame",
    "PublishedMessage",
    "parse_client_frames",
    "parse_client_methods",
    "parse_published_messages",
]

_frame_header = struct.Struct(">BHI")
_content_header = struct.Struct(">HHQ")


class ClientFrame(NamedTuple):
    """One frame the client sent; compares equal to a plain ``(type, channel, payload)`` tuple."""

    #: ``spec.FRAME_METHOD``, ``FRAME_HEADER``, ``FRAME_BODY`` or ``FRAME_HEARTBEAT``.
    frame_type: int
    channel_id: int
    #: A :class:`~.spec.Method`; ``(body_size, BasicProperties)`` for a content
    #: header; the payload ``bytes`` of a body or heartbeat frame.
    payload: object


class PublishedMessage(NamedTuple):
    """A Basic.Publish and its content, reassembled from the client's frames."""

    channel_id: int
    method: spec.BasicPublish
    properties: spec.BasicProperties
    body: bytes


def parse_client_frames(data: bytes | bytearray | memoryview) -> list[ClientFrame]:
    """Decode everything a client wrote, which must be whole frames.

    A leading AMQP protocol header (``AMQP\\x00\\x00\\x09\\x01``, the first thing
    a connection sends) is skipped; check for it with
    ``data.startswith(spec.PROTOCOL_HEADER)``.

    :raises ValueError: ``data`` is truncated or not well-formed frames.
    """
    data = bytes(data)
    pos = 0
    if data[:4] == b"AMQP":
        if data[:8] != spec.PROTOCOL_HEADER:
            raise ValueError(f"not the AMQP 0-9-1 protocol header: {data[:8]!r}")
        pos = 8
    frames: list[ClientFrame] = []
    size_of_data = len(data)
    while pos < size_of_data:
        if size_of_data - pos < 7:
            raise ValueError(f"truncated frame header at offset {pos}")
        frame_type, channel_id, size = _frame_header.unpack_from(data, pos)
        start = pos + 7
        end = start + size
        if end >= size_of_data:
            raise ValueError(f"truncated frame at offset {pos}: {size} payload bytes announced")
        if data[end] != spec.FRAME_END:
            raise ValueError(f"bad frame-end octet {data[end]:#04x} at offset {end}")
        payload: object
        if frame_type == spec.FRAME_METHOD:
            (index,) = struct.unpack_from(">I", data, start)
            method_class = spec.METHODS.get(index)
            if method_class is None:
                raise ValueError(f"unknown method {index >> 16}.{index & 0xFFFF}")
            payload = method_class.decode(data, start + 4, end)
        elif frame_type == spec.FRAME_HEADER:
            _, _, body_size = _content_header.unpack_from(data, start)
            payload = (body_size, spec.BasicProperties.decode(data, start + 12, end))
        elif frame_type in (spec.FRAME_BODY, spec.FRAME_HEARTBEAT):
            payload = data[start:end]
        else:
            raise ValueError(f"unknown frame type {frame_type} at offset {pos}")
        frames.append(ClientFrame(frame_type, channel_id, payload))
        pos = end + 1
    return frames


def parse_client_methods(data: bytes) -> list[tuple[int, spec.Method]]:
    """Just the ``(channel_id, method)`` of each method frame the client wrote."""
    return [
        (frame.channel_id, frame.payload)
        for frame in parse_client_frames(data)
        if isinstance(frame.payload, spec.Method)
    ]


def parse_published_messages(data: bytes) -> list[PublishedMessage]:
    """Every Basic.Publish the client wrote, with its properties and reassembled body.

    :raises ValueError: a publish's content frames are missing or out of place.
    """
    messages: list[PublishedMessage] = []
    # channel -> (method, properties, expected size, body parts) of a message in progress
    pending: dict[int, tuple[spec.BasicPublish, spec.BasicProperties | None, int, list[bytes]]]
    pending = {}

    def finish(channel_id: int) -> None:
        method, properties, size, parts = pending[channel_id]
        body = b"".join(parts)
        if properties is not None and len(body) == size:
            del pending[channel_id]
            messages.append(PublishedMessage(channel_id, method, properties, body))

    for frame_type, channel_id, payload in parse_client_frames(data):
        if frame_type == spec.FRAME_METHOD:
            if channel_id in pending:
                raise ValueError(f"method on channel {channel_id} before the content ended")
            if isinstance(payload, spec.BasicPublish):
                pending[channel_id] = (payload, None, 0, [])
        elif frame_type == spec.FRAME_HEADER:
            if channel_id not in pending or pending[channel_id][1] is not None:
                raise ValueError(f"content header on channel {channel_id} without a publish")
            body_size, properties = cast(tuple[int, spec.BasicProperties], payload)
            pending[channel_id] = (pending[channel_id][0], properties, body_size, [])
            finish(channel_id)
        elif frame_type == spec.FRAME_BODY:
            if channel_id not in pending or pending[channel_id][1] is None:
                raise ValueError(f"body frame on channel {channel_id} without a content header")
            pending[channel_id][3].append(cast(bytes, payload))
            finish(channel_id)
    if pending:
        raise ValueError(f"unfinished content on channels {sorted(pending)}")
    return messages
