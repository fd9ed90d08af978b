"""The public broker-side toolkit, txamqp091.core.testing, that adapters and users test with."""

from __future__ import annotations

import pytest

from txamqp091.core import spec
from txamqp091.core.frames import encode_content, encode_publish_method
from txamqp091.core.states import ChannelState, ConnectionState
from txamqp091.core.testing import (
    DEFAULT_SERVER_PROPERTIES,
    ClientFrame,
    PublishedMessage,
    ServerFrames,
    StaticCredentials,
    open_channel,
    open_connection,
    parse_client_frames,
    parse_client_methods,
    parse_published_messages,
)

F = ServerFrames()


def test_open_connection_is_open_and_drained() -> None:
    conn = open_connection()
    assert conn.state is ConnectionState.OPEN
    assert conn.data_to_send() == b""
    assert conn.server_properties == DEFAULT_SERVER_PROPERTIES
    assert (conn.channel_max, conn.frame_max, conn.heartbeat) == (2047, 131072, 0)
    assert isinstance(conn.credentials, StaticCredentials)
    assert conn.credentials.asked == [b"AMQPLAIN PLAIN"]


def test_open_connection_passes_options_through() -> None:
    credentials = StaticCredentials("EXTERNAL", b"")
    conn = open_connection(
        credentials=credentials,
        mechanisms=b"EXTERNAL",
        server_properties={"product": "fake"},
        server_channel_max=10,
        server_frame_max=8192,
        server_heartbeat=30,
        now=50.0,
        virtual_host="/v",
        frames=ServerFrames(),
    )
    assert conn.credentials is credentials
    assert conn.server_properties == {"product": "fake"}
    assert (conn.channel_max, conn.frame_max, conn.heartbeat) == (10, 8192, 30)
    assert conn.next_deadline() == 65.0
    assert conn.virtual_host == "/v"
    assert repr(credentials) == "StaticCredentials('EXTERNAL')"


def test_open_connection_reports_a_failed_handshake() -> None:
    with pytest.raises(AssertionError, match="not ConnectionOpened"):
        open_connection(credentials=StaticCredentials("EXTERNAL", b""), mechanisms=b"PLAIN")


def test_open_channel() -> None:
    conn = open_connection()
    first = open_channel(conn)
    second = open_channel(conn, frames=F, now=1.0)
    assert (first.channel_id, second.channel_id) == (1, 2)
    assert first.state is second.state is ChannelState.OPEN
    assert conn.data_to_send() == b""


def test_open_channel_reports_a_refused_channel() -> None:
    class Refusing(ServerFrames):
        def channel_open_ok(self, channel_id: int) -> bytes:
            return self.channel_close(channel_id, 403, "ACCESS_REFUSED")

    with pytest.raises(AssertionError, match="opening channel 1"):
        open_channel(open_connection(), frames=Refusing())


def test_handshake_is_start_tune_open_ok() -> None:
    assert F.handshake(heartbeat=5) == F.start() + F.tune(heartbeat=5) + F.open_ok()


def test_protocol_header() -> None:
    assert F.protocol_header() == spec.PROTOCOL_HEADER
    assert F.protocol_header(1, 0, 0) == b"AMQP\x00\x01\x00\x00"


def test_content_splits_like_a_broker() -> None:
    frames = ServerFrames(frame_max=4096)
    data = frames.content(1, spec.BasicDeliver(consumer_tag="c", delivery_tag=1), None, b"x" * 5000)
    sizes = []
    pos = 0
    while pos < len(data):
        size = int.from_bytes(data[pos + 3 : pos + 7], "big")
        assert size + 8 <= 4096
        sizes.append(size)
        pos += size + 8
    assert sizes[2:] == [4088, 912]
    assert frames.content(
        1, spec.BasicDeliver(consumer_tag="c", delivery_tag=1), None, b"x", frame_max=100000
    )
    with pytest.raises(ValueError, match="no room"):
        frames.content(
            1, spec.BasicDeliver(consumer_tag="c", delivery_tag=1), None, b"x", frame_max=8
        )


@pytest.mark.parametrize(
    ("request_method", "fields", "reply"),
    [
        (spec.QueueDeclare(queue="q"), {}, spec.QueueDeclareOk("q", 0, 0)),
        (
            spec.QueueDeclare(queue=""),
            {"queue": "amq.gen-1"},
            spec.QueueDeclareOk("amq.gen-1", 0, 0),
        ),
        (spec.BasicConsume(consumer_tag="t"), {}, spec.BasicConsumeOk(consumer_tag="t")),
        (spec.BasicCancel(consumer_tag="t"), {}, spec.BasicCancelOk(consumer_tag="t")),
        (spec.ChannelFlow(active=False), {}, spec.ChannelFlowOk(active=False)),
        (spec.QueuePurge(queue="q"), {"message_count": 9}, spec.QueuePurgeOk(message_count=9)),
        (spec.BasicGet(queue="q"), {}, spec.BasicGetEmpty()),
        (spec.ConfirmSelect(), {}, spec.ConfirmSelectOk()),
    ],
)
def test_reply(request_method: spec.Method, fields: dict[str, object], reply: spec.Method) -> None:
    frames = F
    if isinstance(request_method, spec.BasicGet):
        with pytest.raises(ValueError, match="get_ok"):
            frames.reply(1, request_method)
        return
    assert frames.reply(3, request_method, **fields) == frames.method(3, reply)


def test_reply_errors() -> None:
    with pytest.raises(ValueError, match="has no reply"):
        F.reply(1, spec.BasicAck())
    with pytest.raises(ValueError, match="no field"):
        F.reply(1, spec.QueueDeclare(), bogus=1)


def test_named_helpers_build_the_methods_they_name() -> None:
    cases = [
        (F.secure(b"c"), 0, spec.ConnectionSecure(challenge=b"c")),
        (
            F.close(),
            0,
            spec.ConnectionClose(320, "CONNECTION_FORCED - broker forced connection closure"),
        ),
        (F.close_ok(), 0, spec.ConnectionCloseOk()),
        (F.blocked("r"), 0, spec.ConnectionBlocked(reason="r")),
        (F.unblocked(), 0, spec.ConnectionUnblocked()),
        (F.update_secret_ok(), 0, spec.ConnectionUpdateSecretOk()),
        (F.channel_open_ok(4), 4, spec.ChannelOpenOk()),
        (F.channel_close(4, 406, "x", 50, 10), 4, spec.ChannelClose(406, "x", 50, 10)),
        (F.channel_close_ok(4), 4, spec.ChannelCloseOk()),
        (F.flow(4, True), 4, spec.ChannelFlow(active=True)),
        (F.qos_ok(4), 4, spec.BasicQosOk()),
        (F.consume_ok(4, "t"), 4, spec.BasicConsumeOk(consumer_tag="t")),
        (F.cancel_ok(4, "t"), 4, spec.BasicCancelOk(consumer_tag="t")),
        (F.cancel(4, "t", True), 4, spec.BasicCancel(consumer_tag="t", nowait=True)),
        (F.confirm_select_ok(4), 4, spec.ConfirmSelectOk()),
        (F.get_empty(4), 4, spec.BasicGetEmpty()),
        (F.ack(4, 2, True), 4, spec.BasicAck(delivery_tag=2, multiple=True)),
        (F.nack(4, 2, True, True), 4, spec.BasicNack(delivery_tag=2, multiple=True, requeue=True)),
    ]
    for data, channel, method in cases:
        assert parse_client_frames(data) == [(spec.FRAME_METHOD, channel, method)]


# -- parsing what the client wrote ---------------------------------------------------------


def test_parse_client_frames_skips_the_protocol_header() -> None:
    data = spec.PROTOCOL_HEADER + F.heartbeat() + F.method(0, spec.ConnectionCloseOk())
    frames = parse_client_frames(data)
    assert frames == [
        (spec.FRAME_HEARTBEAT, 0, b""),
        (spec.FRAME_METHOD, 0, spec.ConnectionCloseOk()),
    ]
    assert isinstance(frames[0], ClientFrame)
    assert frames[1].frame_type == spec.FRAME_METHOD and frames[1].channel_id == 0
    assert parse_client_frames(b"") == []
    assert parse_client_frames(bytearray(F.heartbeat())) == [(8, 0, b"")]


def test_parse_client_frames_content() -> None:
    props = spec.BasicProperties(app_id="a")
    data = encode_content(2, encode_publish_method("", "q", False, False), b"hello", props, 4096)
    assert parse_client_frames(data) == [
        (spec.FRAME_METHOD, 2, spec.BasicPublish(routing_key="q")),
        (spec.FRAME_HEADER, 2, (5, props)),
        (spec.FRAME_BODY, 2, b"hello"),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"AMQP\x00\x00\x09\x02", "not the AMQP 0-9-1 protocol header"),
        (b"\x01\x00", "truncated frame header"),
        (F.heartbeat()[:-1], "truncated frame"),
        (F.frame(1, 0, b"\x00\x0a\x00\x33", frame_end=0), "bad frame-end"),
        (F.frame(1, 0, b"\x00\x63\x00\x01"), "unknown method 99.1"),
        (F.frame(7, 0, b""), "unknown frame type 7"),
    ],
)
def test_parse_client_frames_rejects_malformed_data(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_client_frames(data)


def test_parse_client_methods() -> None:
    data = (
        F.method(1, spec.BasicQos())
        + F.header(1, 0)
        + F.body(1, b"x")
        + F.heartbeat()
        + F.method(0, spec.ConnectionCloseOk())
    )
    assert parse_client_methods(data) == [(1, spec.BasicQos()), (0, spec.ConnectionCloseOk())]


def test_parse_published_messages() -> None:
    props = spec.BasicProperties(priority=1)
    publish = encode_publish_method("ex", "rk", True, False)
    data = (
        encode_content(1, publish, b"a" * 5000, props, 4096)
        + F.method(1, spec.BasicAck(delivery_tag=1))
        + F.heartbeat()
        + encode_content(2, publish, b"", None, 4096)
    )
    assert parse_published_messages(data) == [
        PublishedMessage(
            1,
            spec.BasicPublish(exchange="ex", routing_key="rk", mandatory=True),
            props,
            b"a" * 5000,
        ),
        (
            2,
            spec.BasicPublish(exchange="ex", routing_key="rk", mandatory=True),
            spec.BasicProperties(),
            b"",
        ),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (F.header(1, 0), "without a publish"),
        (F.body(1, b"x"), "without a content header"),
        (F.method(1, spec.BasicPublish()) + F.body(1, b"x"), "without a content header"),
        (F.method(1, spec.BasicPublish()) + F.header(1, 1) + F.header(1, 1), "without a publish"),
        (
            F.method(1, spec.BasicPublish()) + F.header(1, 2) + F.method(1, spec.BasicQos()),
            "before the content ended",
        ),
        (F.method(1, spec.BasicPublish()) + F.header(1, 2) + F.body(1, b"x"), "unfinished content"),
    ],
)
def test_parse_published_messages_rejects_broken_content(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_published_messages(data)
