"""Frame encoding, and the frame constants the parser in :mod:`.connection` checks.

A frame is ``type:octet channel:short size:long payload frame-end`` (spec 4.2.3).
Publishing builds the method, header and body frames of a message in one
``bytes`` so that a whole message, and many messages, leave in one write. The C
accelerator (:mod:`._accel`) replaces :func:`encode_message` and
:func:`encode_content` with versions that build it in one allocation; the Python
functions here stay the reference (``pure_encode_message``, ``pure_encode_content``)
and answer whatever the C code does not handle itself.
"""

from __future__ import annotations

import struct

from . import _accel
from .spec import (
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    BasicProperties,
    Method,
)

__all__ = [
    "FRAME_OVERHEAD",
    "HEARTBEAT_FRAME",
    "encode_content",
    "encode_message",
    "encode_method_frame",
    "encode_publish_method",
    "method_frame_head",
    "pure_encode_content",
    "pure_encode_message",
]

#: Frame header (7) plus frame-end octet (1): what ``frame_max`` counts besides the payload.
FRAME_OVERHEAD = 8
FRAME_END_BYTE = bytes((FRAME_END,))
HEARTBEAT_FRAME = struct.pack(">BHIB", FRAME_HEARTBEAT, 0, 0, FRAME_END)

_pack = struct.pack
_frame_header = struct.Struct(">BHI").pack
#: A frame-end octet followed by the next frame's header.
_end_and_frame = struct.Struct(">BBHI").pack
_end_and_header = struct.Struct(">BBHIHHQ").pack
_EMPTY_PROPERTIES = b"\x00\x00"


def encode_method_frame(channel_id: int, method: Method) -> bytes:
    payload = method.encode()
    return _frame_header(FRAME_METHOD, channel_id, len(payload)) + payload + FRAME_END_BYTE


def encode_publish_method(
    exchange: str, routing_key: str, mandatory: bool, immediate: bool
) -> bytes:
    """The Basic.Publish payload (ticket 0); callers cache it per destination."""
    ex = exchange.encode("utf-8")
    rk = routing_key.encode("utf-8")
    if len(ex) > 255:
        raise ValueError(f"exchange name is longer than 255 bytes ({len(ex)})")
    if len(rk) > 255:
        raise ValueError(f"routing_key is longer than 255 bytes ({len(rk)})")
    bits = (1 if mandatory else 0) | (2 if immediate else 0)
    return b"".join(
        (
            b"\x00\x3c\x00\x28\x00\x00",  # class 60 (basic), method 40 (publish), ticket 0
            _pack("B", len(ex)),
            ex,
            _pack("B", len(rk)),
            rk,
            _pack("B", bits),
        )
    )


def method_frame_head(channel_id: int, method_payload: bytes) -> bytes:
    """A method frame without its end octet: what :func:`encode_message` starts with.
    Channels cache it per publish destination."""
    return _frame_header(FRAME_METHOD, channel_id, len(method_payload)) + method_payload


def encode_content(
    channel_id: int,
    method_payload: bytes,
    body: bytes,
    properties: BasicProperties | None,
    frame_max: int,
) -> bytes:
    """Method frame, content header and body frames of one message, as one ``bytes``."""
    return encode_message(
        method_frame_head(channel_id, method_payload), channel_id, body, properties, frame_max
    )


def encode_message(
    head: bytes,
    channel_id: int,
    body: bytes,
    properties: BasicProperties | None,
    frame_max: int,
) -> bytes:
    """Method frame (``head`` plus its end octet), content header and body frames.

    Bodies are split so that no frame exceeds ``frame_max`` (spec 4.2.6.2: body
    frames carry at most ``frame_max - 8`` payload octets); an empty body sends
    no body frame. Each frame's end octet is packed with the next frame's
    header, so a small message is joined from six pieces.
    """
    props = _EMPTY_PROPERTIES if properties is None else properties.encode()
    size = len(body)
    header_payload_len = 12 + len(props)  # class, weight, body size, properties
    if header_payload_len + FRAME_OVERHEAD > frame_max:
        raise ValueError(f"message properties do not fit in a {frame_max}-byte frame")
    header = _end_and_header(FRAME_END, FRAME_HEADER, channel_id, header_payload_len, 60, 0, size)
    room = frame_max - FRAME_OVERHEAD
    if size <= room:
        if size == 0:
            return b"".join((head, header, props, FRAME_END_BYTE))
        return b"".join(
            (
                head,
                header,
                props,
                _end_and_frame(FRAME_END, FRAME_BODY, channel_id, size),
                body,
                FRAME_END_BYTE,
            )
        )
    parts: list[bytes | memoryview] = [head, header, props]
    view = memoryview(body)
    for start in range(0, size, room):
        chunk = view[start : start + room]
        parts.append(_end_and_frame(FRAME_END, FRAME_BODY, channel_id, len(chunk)))
        parts.append(chunk)
    parts.append(FRAME_END_BYTE)
    return b"".join(parts)


pure_encode_message = encode_message
pure_encode_content = encode_content
encode_message, encode_content = _accel.install_message_encoders(encode_message, encode_content)
