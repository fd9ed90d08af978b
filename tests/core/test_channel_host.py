"""The narrow interface between a core Channel and its connection (``ChannelHost``).

A channel runs here on a recording host that is not a ``Connection``: it has
the members the interface names and nothing else, so a channel reaching for
anything more would fail with an AttributeError. The bytes it writes are
checked octet by octet.
"""

from __future__ import annotations

import struct

import pytest

from txamqp091.core import spec
from txamqp091.core.channel import Channel, ChannelHost
from txamqp091.core.codec import Buffer
from txamqp091.core.events import ChannelClosed, ChannelOpened, Delivery, Event
from txamqp091.core.states import ChannelState, ConnectionState
from txamqp091.core.testing import ServerFrames, open_channel, open_connection
from txamqp091.exceptions import ChannelClosedByClient, ChannelWrongStateError

F = ServerFrames()
CHANNEL = 5


class RecordingHost:
    """A ChannelHost that records the two calls a channel may make."""

    __slots__ = (
        "delivery_class",
        "failures",
        "frame_max",
        "max_message_size",
        "outgoing_frames",
        "released",
        "state",
    )

    def __init__(self, frame_max: int = 4096) -> None:
        self.state = ConnectionState.OPEN
        self.frame_max = frame_max
        self.max_message_size = 1 << 27
        self.delivery_class: type[Delivery] = Delivery
        self.outgoing_frames: list[bytes] = []
        self.failures: list[tuple[int, str]] = []
        self.released: list[int] = []

    def fail_with_protocol_error(self, reply_code: int, reply_text: str) -> None:
        self.failures.append((reply_code, reply_text))

    def release_channel(self, channel_id: int) -> None:
        self.released.append(channel_id)


def sent(host: RecordingHost) -> bytes:
    data = b"".join(host.outgoing_frames)
    host.outgoing_frames.clear()
    return data


def route(channel: Channel, data: Buffer) -> list[Event]:
    """What Connection's parser does with complete frames for one channel, and no more."""
    events: list[Event] = []
    pos = 0
    while pos < len(data):
        frame_type, channel_id, size = struct.unpack_from(">BHI", data, pos)
        assert channel_id == channel.channel_id
        start, end = pos + 7, pos + 7 + size
        if frame_type == spec.FRAME_METHOD:
            (index,) = struct.unpack_from(">I", data, start)
            event = channel.handle_method(index, data, start + 4, end)
        elif frame_type == spec.FRAME_HEADER:
            event = channel.handle_header(data, start, end)
        else:
            event = channel.handle_body(data, start, end)
        if event is not None:
            events.append(event)
        pos = end + 1
    return events


def opened(host: RecordingHost) -> Channel:
    channel = Channel(host, CHANNEL)
    sent(host)
    assert route(channel, F.channel_open_ok(CHANNEL)) == [ChannelOpened(channel_id=CHANNEL)]
    return channel


# -- Connection implements it --------------------------------------------------------------


def test_connection_is_a_channel_host_sharing_one_output_list() -> None:
    conn = open_connection()
    host: ChannelHost = conn  # mypy checks the structural match here
    out = host.outgoing_frames
    channel = open_channel(conn)
    assert out == [] and conn.outgoing_frames is out
    channel.publish("", "q", b"x")
    assert out
    data = conn.data_to_send()
    assert data.endswith(b"\x03\x00\x01\x00\x00\x00\x01x\xce")  # the body frame, channel 1
    assert out == [] and conn.outgoing_frames is out  # emptied in place, never replaced


def test_connection_release_channel_frees_the_lowest_number() -> None:
    conn = open_connection()
    first, second = open_channel(conn), open_channel(conn)
    assert (first.channel_id, second.channel_id) == (1, 2)
    conn.release_channel(1)
    assert open_channel(conn).channel_id == 1
    conn.release_channel(9)  # a number not in use: nothing to do


def test_connection_fail_with_protocol_error_queues_close_and_reports_it() -> None:
    conn = open_connection()
    conn.fail_with_protocol_error(spec.UNEXPECTED_FRAME, "UNEXPECTED_FRAME - test")
    close = spec.ConnectionClose(reply_code=505, reply_text="UNEXPECTED_FRAME - test")
    assert conn.data_to_send() == F.method(0, close)
    assert conn.is_closed and not conn.close_requested


# -- a channel uses only the interface -------------------------------------------------------


def test_channel_open_byte_for_byte() -> None:
    host = RecordingHost()
    channel = Channel(host, CHANNEL)
    assert channel.state is ChannelState.OPENING
    # method frame, channel 5, 5 payload octets: class 20 method 10, empty shortstr
    assert sent(host) == bytes.fromhex("01 0005 00000005 0014 000a 00 ce")


def test_publish_and_ack_append_to_the_list_taken_at_creation() -> None:
    host = RecordingHost()
    channel = opened(host)
    taken = host.outgoing_frames
    host.outgoing_frames = []  # the channel must not look the list up again
    assert channel.publish("", "q", b"hi") == 0
    assert channel.send_ack(7)
    assert host.outgoing_frames == []
    assert b"".join(taken) == bytes.fromhex(
        # Basic.Publish: ticket 0, exchange "", routing key "q", no bits
        "01 0005 0000000a 003c 0028 0000 00 0171 00 ce"
        # content header: class 60, weight 0, body size 2, no properties
        "02 0005 0000000e 003c 0000 0000000000000002 0000 ce"
        # body
        "03 0005 00000002 6869 ce"
        # Basic.Ack: delivery tag 7, multiple off
        "01 0005 0000000d 003c 0050 0000000000000007 00 ce"
    )


def test_frame_max_and_delivery_class_come_from_the_host() -> None:
    class Text(Delivery):
        __slots__ = ()

    host = RecordingHost()
    host.delivery_class = Text
    channel = opened(host)
    data = bytearray(F.deliver(CHANNEL, "ctag", 3, b"body"))
    end = 7 + struct.unpack_from(">I", data, 3)[0]
    whole = channel.take_delivery(data, 11, end)
    assert whole is not None
    message, after = whole
    assert type(message) is Text and after == len(data)
    assert (message.consumer_tag, message.delivery_tag, message.body) == ("ctag", 3, b"body")
    # A header frame bigger than the host's frame_max leaves the message to the
    # frame-by-frame path, which reports the fault in one place.
    host.frame_max = 20
    assert channel.take_delivery(data, 11, end) is None
    # So does a body over the host's max_message_size (on both paths).
    host.frame_max = 131072
    host.max_message_size = 3
    assert channel.take_delivery(data, 11, end) is None
    host.max_message_size = 1 << 27
    assert channel.take_delivery(data, 11, end) is not None


def test_broker_faults_go_to_the_host_and_nothing_is_raised() -> None:
    host = RecordingHost()
    channel = opened(host)
    assert route(channel, F.header(CHANNEL, 0)) == []
    assert route(channel, F.frame(spec.FRAME_METHOD, CHANNEL, b"\x00\x63\x00\x01")) == []
    assert host.failures == [
        (505, "UNEXPECTED_FRAME - content header without a method"),
        (540, "NOT_IMPLEMENTED - unknown method 0x630001"),
    ]
    assert sent(host) == b""  # Connection.Close is the host's to send


def test_close_handshake_releases_the_number_through_the_host() -> None:
    host = RecordingHost()
    channel = opened(host)
    channel.close(200, "bye")
    assert sent(host) == F.method(CHANNEL, spec.ChannelClose(reply_code=200, reply_text="bye"))
    assert host.released == []
    [event] = route(channel, F.channel_close_ok(CHANNEL))
    assert isinstance(event, ChannelClosed)
    assert isinstance(event.error, ChannelClosedByClient)
    assert channel.state is ChannelState.CLOSED and host.released == [CHANNEL]


@pytest.mark.parametrize("state", [ConnectionState.CLOSING, ConnectionState.CLOSED])
def test_a_host_not_open_stops_every_send(state: ConnectionState) -> None:
    host = RecordingHost()
    channel = opened(host)
    host.state = state
    assert not channel.send_ack(1)
    for call in (
        lambda: channel.publish("", "q", b"x"),
        lambda: channel.send_method(spec.BasicQos()),
        lambda: channel.close(),
    ):
        with pytest.raises(ChannelWrongStateError, match=f"the connection is {state.value}"):
            call()
    assert sent(host) == b"" and channel.state is ChannelState.OPEN
