"""Frame encoding: method frames, heartbeats, and publishes split by frame_max."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from txamqp091.core import spec
from txamqp091.core.frames import (
    FRAME_OVERHEAD,
    HEARTBEAT_FRAME,
    encode_content,
    encode_method_frame,
    encode_publish_method,
)
from txamqp091.core.testing import ServerFrames, parse_client_frames, parse_published_messages


def test_frame_constants() -> None:
    assert FRAME_OVERHEAD == 8
    assert HEARTBEAT_FRAME == b"\x08\x00\x00\x00\x00\x00\x00\xce"
    assert HEARTBEAT_FRAME == ServerFrames().heartbeat()


def test_method_frame_layout() -> None:
    frame = encode_method_frame(0x0102, spec.BasicQos(prefetch_count=3))
    payload = spec.BasicQos(prefetch_count=3).encode()
    assert frame == struct.pack(">BHI", 1, 0x0102, len(payload)) + payload + b"\xce"
    assert ServerFrames().method(0x0102, spec.BasicQos(prefetch_count=3)) == frame


@pytest.mark.parametrize(
    ("mandatory", "immediate", "bits"), [(False, False, 0), (True, False, 1), (False, True, 2)]
)
def test_publish_method_payload(mandatory: bool, immediate: bool, bits: int) -> None:
    payload = encode_publish_method("ex", "rk", mandatory, immediate)
    assert payload == b"\x00\x3c\x00\x28\x00\x00\x02ex\x02rk" + bytes([bits])
    assert (
        payload
        == spec.BasicPublish(
            exchange="ex", routing_key="rk", mandatory=mandatory, immediate=immediate
        ).encode()
    )


def test_publish_method_utf8_names() -> None:
    payload = encode_publish_method("\u00e9", "", False, False)
    assert payload[6:9] == b"\x02\xc3\xa9"
    with pytest.raises(ValueError, match="exchange name"):
        encode_publish_method("\u00e9" * 128, "", False, False)


def test_content_without_body_has_no_body_frame() -> None:
    method = encode_publish_method("", "q", False, False)
    data = encode_content(5, method, b"", None, 4096)
    frames = parse_client_frames(data)
    assert [(f.frame_type, f.channel_id) for f in frames] == [(1, 5), (2, 5)]
    assert frames[1].payload == (0, spec.BasicProperties())
    # An empty property list is two flag octets.
    assert data.endswith(struct.pack(">BHIHHQ", 2, 5, 14, 60, 0, 0) + b"\x00\x00\xce")


def test_content_with_properties() -> None:
    props = spec.BasicProperties(message_id="m", headers={"x": [1, 2]})
    method = encode_publish_method("", "q", True, False)
    [message] = parse_published_messages(encode_content(1, method, b"abc", props, 4096))
    assert message == (1, spec.BasicPublish(routing_key="q", mandatory=True), props, b"abc")


def test_content_properties_must_fit_one_frame() -> None:
    method = encode_publish_method("", "q", False, False)
    props = spec.BasicProperties(headers={"big": "x" * 4096})
    with pytest.raises(ValueError, match="do not fit in a 4096-byte frame"):
        encode_content(1, method, b"", props, 4096)


@given(
    size=st.integers(0, 20000),
    frame_max=st.integers(4096, 9000),
    channel=st.integers(1, 65535),
)
def test_content_frames_never_exceed_frame_max(size: int, frame_max: int, channel: int) -> None:
    body = bytes(i % 256 for i in range(size))
    method = encode_publish_method("ex", "rk", False, False)
    data = encode_content(channel, method, body, None, frame_max)
    frames = parse_client_frames(data)
    bodies = [f.payload for f in frames if f.frame_type == spec.FRAME_BODY]
    room = frame_max - FRAME_OVERHEAD
    assert len(bodies) == -(-size // room)
    assert all(len(b) == room for b in bodies[:-1])  # type: ignore[arg-type]
    assert b"".join(bodies) == body  # type: ignore[arg-type]
    assert {f.channel_id for f in frames} == {channel}
    # Same bytes as a broker would send for the same content.
    server = ServerFrames(frame_max).content(
        channel, spec.BasicPublish(exchange="ex", routing_key="rk"), None, body
    )
    assert data == server
