"""The frame parser: any split of the input gives the same events; bad input gives the right code.

Every malformed-input test runs twice, feeding the stream in one piece and a
byte at a time, and checks the same outcome both ways.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import (
    closed_with,
    describe_all,
    feed_bytewise,
    feed_chunks,
    new_connection,
    protocol_error_code,
)
from txamqp091.core import spec
from txamqp091.core.connection import Connection
from txamqp091.core.events import (
    ChannelClosed,
    ChannelFlow,
    ChannelOpened,
    ConnectionBlocked,
    ConnectionClosed,
    ConnectionOpened,
    ConnectionUnblocked,
    ConsumerCancelled,
    Delivery,
    Event,
    GetOk,
    MethodReply,
    PublishAcked,
    PublishNacked,
    Returned,
)
from txamqp091.core.testing import (
    DEFAULT_SERVER_PROPERTIES,
    ServerFrames,
    open_connection,
    parse_client_methods,
)
from txamqp091.exceptions import (
    ChannelClosedByBroker,
    ConnectionClosedByBroker,
    IncompatibleProtocolError,
    ProtocolError,
)

F = ServerFrames()
SMALL = ServerFrames(frame_max=4096)
PROPS = spec.BasicProperties(
    content_type="application/json",
    headers={"x-death": [{"count": 1, "reason": "expired"}], "n": 1.5},
    priority=3,
)


# -- a whole session, split every way -------------------------------------------------------


def handshake_stream() -> bytes:
    return F.start() + F.secure(b"more?") + F.tune(0, 4096, 0) + F.blocked() + F.open_ok()


def expected_handshake_events() -> list[Event]:
    return [
        ConnectionBlocked(reason="low on memory"),
        ConnectionOpened(
            server_properties=DEFAULT_SERVER_PROPERTIES,
            channel_max=2047,
            frame_max=4096,
            heartbeat=0,
        ),
    ]


def session_connection() -> Connection:
    """An open connection (frame_max 4096) with two channels and requests queued."""
    conn = open_connection(server_frame_max=4096)
    consumer = conn.open_channel()
    consumer.send_method(spec.BasicQos(prefetch_count=10))
    consumer.send_method(spec.BasicConsume(queue="q", consumer_tag="ct"))
    consumer.send_method(spec.BasicGet(queue="q"))
    consumer.send_method(spec.BasicGet(queue="q"))
    publisher = conn.open_channel()
    publisher.send_method(spec.ConfirmSelect())
    for i in range(4):
        publisher.publish("", "q", b"m%d" % i)
    publisher.send_method(spec.QueueDeclare(queue="", exclusive=True))
    conn.data_to_send()
    return conn


BIG_BODY = bytes(range(256)) * 20  # 5120 bytes: two body frames at frame_max 4096


def session_stream() -> bytes:
    return b"".join(
        [
            SMALL.channel_open_ok(1),
            SMALL.channel_open_ok(2),
            SMALL.qos_ok(1),
            SMALL.consume_ok(1, "ct"),
            SMALL.confirm_select_ok(2),
            SMALL.deliver(1, "ct", 1, b"small", PROPS, "amq.direct", "q"),
            SMALL.deliver(1, "ct", 2, BIG_BODY, redelivered=True),
            SMALL.deliver(1, "ct", 3, b""),
            SMALL.heartbeat(),
            SMALL.blocked("low on disk"),
            SMALL.ack(2, 1),
            SMALL.ack(2, 3, multiple=True),
            SMALL.nack(2, 4),
            SMALL.basic_return(2, b"bounced", PROPS, routing_key="nowhere"),
            SMALL.get_ok(1, 4, b"got", message_count=3),
            SMALL.get_empty(1),
            SMALL.queue_declare_ok(2, "amq.gen-1", 0, 0),
            SMALL.unblocked(),
            SMALL.flow(1, False),
            SMALL.cancel(1, "ct"),
            SMALL.channel_close(2, 406, "PRECONDITION_FAILED - inequivalent arg"),
            SMALL.close(320, "CONNECTION_FORCED - bye"),
        ]
    )


def expected_session_events() -> list[Any]:
    closed = ChannelClosedByBroker(406, "PRECONDITION_FAILED - inequivalent arg")
    return describe_all(
        [
            ChannelOpened(channel_id=1),
            ChannelOpened(channel_id=2),
            MethodReply(channel_id=1, method=spec.BasicQosOk()),
            MethodReply(channel_id=1, method=spec.BasicConsumeOk(consumer_tag="ct")),
            MethodReply(channel_id=2, method=spec.ConfirmSelectOk()),
            Delivery(1, "ct", 1, False, "amq.direct", "q", PROPS, b"small"),
            Delivery(1, "ct", 2, True, "", "", spec.BasicProperties(), BIG_BODY),
            Delivery(1, "ct", 3, False, "", "", spec.BasicProperties(), b""),
            ConnectionBlocked(reason="low on disk"),
            PublishAcked(2, 1, False),
            PublishAcked(2, 3, True),
            PublishNacked(channel_id=2, delivery_tag=4, multiple=False),
            Returned(
                channel_id=2,
                reply_code=312,
                reply_text="NO_ROUTE",
                exchange="",
                routing_key="nowhere",
                properties=PROPS,
                body=b"bounced",
            ),
            GetOk(
                channel_id=1,
                delivery_tag=4,
                redelivered=False,
                exchange="",
                routing_key="",
                message_count=3,
                properties=spec.BasicProperties(),
                body=b"got",
            ),
            MethodReply(channel_id=1, method=spec.BasicGetEmpty()),
            MethodReply(
                channel_id=2,
                method=spec.QueueDeclareOk(queue="amq.gen-1", message_count=0, consumer_count=0),
            ),
            ConnectionUnblocked(),
            ChannelFlow(channel_id=1, active=False),
            ConsumerCancelled(channel_id=1, consumer_tag="ct"),
            ChannelClosed(
                channel_id=2,
                reply_code=406,
                reply_text="PRECONDITION_FAILED - inequivalent arg",
                error=closed,
            ),
            ConnectionClosed(
                reply_code=320,
                reply_text="CONNECTION_FORCED - bye",
                error=ConnectionClosedByBroker(320, "CONNECTION_FORCED - bye"),
            ),
        ]
    )


def test_session_in_one_piece() -> None:
    conn = session_connection()
    events = conn.receive_data(session_stream(), 0.0)
    assert describe_all(events) == expected_session_events()
    # What the client answered: the queued requests, Flow-Ok, Cancel-Ok, Close-Oks.
    sent = [m for _, m in parse_client_methods(conn.data_to_send())]
    assert spec.ChannelFlowOk(active=False) in sent
    assert spec.BasicCancelOk(consumer_tag="ct") in sent
    assert sent[-2:] == [spec.ChannelCloseOk(), spec.ConnectionCloseOk()]


def test_session_byte_by_byte() -> None:
    conn = session_connection()
    events = feed_bytewise(conn, session_stream())
    assert describe_all(events) == expected_session_events()


def test_session_split_at_every_point() -> None:
    stream = session_stream()
    expected = expected_session_events()
    reference_output = None
    for split in range(len(stream) + 1):
        conn = session_connection()
        events = feed_chunks(conn, [stream[:split], stream[split:]])
        assert describe_all(events) == expected, f"split at {split}"
        output = conn.data_to_send()
        if reference_output is None:
            reference_output = output
        assert output == reference_output, f"split at {split}"


@given(st.data())
def test_session_split_randomly(data: st.DataObject) -> None:
    stream = session_stream()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=40)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    conn = session_connection()
    assert describe_all(feed_chunks(conn, chunks)) == expected_session_events()


def test_handshake_byte_by_byte_and_at_every_split() -> None:
    stream = handshake_stream()
    expected = describe_all(expected_handshake_events())
    conn = new_connection()
    assert describe_all(feed_bytewise(conn, stream)) == expected
    reference = conn.data_to_send()
    for split in range(len(stream) + 1):
        conn = new_connection()
        events = feed_chunks(conn, [stream[:split], stream[split:]])
        assert describe_all(events) == expected, f"split at {split}"
        assert conn.data_to_send() == reference


def test_empty_input_is_harmless() -> None:
    conn = new_connection()
    assert conn.receive_data(b"", 0.0) == []
    assert conn.receive_data(F.start(), 0.0) == []


# -- linear time ------------------------------------------------------------------------------


def delivery_stream(count: int, start: int = 1) -> bytes:
    return b"".join(
        F.deliver(1, "ctag", tag, b"message %d" % tag, routing_key="rk")
        for tag in range(start, start + count)
    )


def consuming_connection() -> Connection:
    conn = open_connection()
    conn.open_channel()
    conn.receive_data(F.channel_open_ok(1), 0.0)
    conn.data_to_send()
    return conn


def test_ten_thousand_messages_in_one_chunk() -> None:
    conn = consuming_connection()
    events = conn.receive_data(delivery_stream(10_000), 0.0)
    assert len(events) == 10_000
    assert all(isinstance(e, Delivery) for e in events)
    assert [e.delivery_tag for e in events] == list(range(1, 10_001))  # type: ignore[attr-defined]
    assert events[-1].body == b"message 10000"  # type: ignore[attr-defined]
    assert len(conn._buf) == 0


def test_one_chunk_and_byte_by_byte_agree_and_the_buffer_stays_small() -> None:
    stream = delivery_stream(2_000)
    whole = consuming_connection().receive_data(stream, 0.0)
    conn = consuming_connection()
    events: list[Event] = []
    largest = 0
    for i in range(len(stream)):
        events.extend(conn.receive_data(stream[i : i + 1], 0.0))
        largest = max(largest, len(conn._buf))
    assert describe_all(events) == describe_all(whole)
    # Parsed frames are dropped as they go: the buffer never holds more than one frame,
    # so feeding stays linear in the input however it is split.
    assert largest < 100


def test_a_partial_frame_after_many_is_kept() -> None:
    conn = consuming_connection()
    stream = delivery_stream(3_000)
    tail = F.deliver(1, "ctag", 3001, b"last")
    events = conn.receive_data(stream + tail[:10], 0.0)
    assert len(events) == 3_000
    assert bytes(conn._buf) == tail[:10]
    [last] = conn.receive_data(tail[10:], 0.0)
    assert isinstance(last, Delivery) and last.body == b"last"


# -- malformed input ------------------------------------------------------------------------


@pytest.fixture(params=["whole", "bytewise"])
def feed(request: pytest.FixtureRequest) -> Callable[[Connection, bytes], list[Event]]:
    if request.param == "whole":
        return lambda conn, data: conn.receive_data(data, 0.0)
    return feed_bytewise


def opened(**kwargs: Any) -> Connection:
    """An open connection with channel 1 open and nothing left to send."""
    conn = open_connection(**kwargs)
    conn.open_channel()
    conn.receive_data(F.channel_open_ok(1), 0.0)
    conn.data_to_send()
    return conn


def sent_close_code(conn: Connection) -> int:
    """The reply code of the one Connection.Close the client queued."""
    [(channel, close)] = parse_client_methods(conn.data_to_send())
    assert channel == 0 and isinstance(close, spec.ConnectionClose)
    return close.reply_code


def assert_fails(conn: Connection, events: list[Event], code: int) -> None:
    assert protocol_error_code(events) == code
    assert sent_close_code(conn) == code
    assert conn.is_closed
    # After a failure, further input yields nothing and sends nothing.
    assert conn.receive_data(F.heartbeat() + F.deliver(1, "c", 1, b"x") + F.close(), 0.0) == []
    assert conn.data_to_send() == b""
    assert conn.next_deadline() is None


def method_frame(channel: int, payload: bytes) -> bytes:
    return F.frame(spec.FRAME_METHOD, channel, payload)


MALFORMED: list[Any] = [
    # (id, stream after a channel-1-open connection, expected reply code)
    ("bad-frame-end", F.frame(spec.FRAME_METHOD, 1, spec.BasicQosOk().encode(), frame_end=0), 501),
    (
        "bad-frame-end-channel-0",
        F.frame(1, 0, spec.ConnectionBlocked().encode(), frame_end=0xCD),
        501,
    ),
    ("unknown-frame-type", F.frame(9, 0, b""), 501),
    ("unknown-frame-type-on-channel", F.frame(4, 1, b"abc"), 501),
    ("heartbeat-on-channel", F.heartbeat(1), 501),
    ("heartbeat-with-payload", F.frame(spec.FRAME_HEARTBEAT, 0, b"\x00"), 501),
    ("heartbeat-on-unopened-channel", F.heartbeat(7), 501),
    ("unknown-frame-type-on-unopened-channel", F.frame(0, 7, b""), 501),
    ("unopened-channel", F.qos_ok(2), 504),
    ("header-on-unopened-channel", F.header(2, 0), 504),
    ("body-on-unopened-channel", F.body(2, b"x"), 504),
    ("content-on-channel-0", F.header(0, 0), 504),
    ("body-on-channel-0", F.body(0, b"x"), 504),
    ("header-without-method", F.header(1, 3, PROPS), 505),
    ("body-without-header", F.body(1, b"abc"), 505),
    (
        "body-longer-than-declared",
        F.method(1, spec.BasicDeliver(consumer_tag="c", delivery_tag=1))
        + F.header(1, 2)
        + F.body(1, b"abc"),
        505,
    ),
    (
        "body-longer-than-remaining",
        F.method(1, spec.BasicDeliver(consumer_tag="c", delivery_tag=1))
        + F.header(1, 4)
        + F.body(1, b"ab")
        + F.body(1, b"abc"),
        505,
    ),
    (
        "method-while-expecting-header",
        F.method(1, spec.BasicDeliver(consumer_tag="c", delivery_tag=1)) + F.ack(1, 1),
        505,
    ),
    (
        "method-while-expecting-body",
        F.method(1, spec.BasicDeliver(consumer_tag="c", delivery_tag=1))
        + F.header(1, 5)
        + F.flow(1, True),
        505,
    ),
    (
        "header-for-another-class",
        F.method(1, spec.BasicDeliver(consumer_tag="c", delivery_tag=1))
        + F.header(1, 0, class_id=50),
        505,
    ),
    ("unknown-method-channel-0", method_frame(0, b"\x00\x0a\x00\x63"), 540),
    ("unknown-class-channel-0", method_frame(0, b"\x00\x63\x00\x0a"), 540),
    ("unknown-method-on-channel", method_frame(1, b"\x00\x3c\x00\x63"), 540),
    ("second-start", F.start(), 503),
    ("tune-when-open", F.tune(), 503),
    ("qos-ok-with-nothing-in-flight", F.qos_ok(1), 503),
    ("close-ok-with-no-close", F.channel_close_ok(1), 503),
    ("channel-open-ok-when-open", F.channel_open_ok(1), 503),
    ("connection-method-on-channel", F.method(1, spec.ConnectionBlocked()), 503),
    ("channel-method-on-channel-0", F.method(0, spec.ChannelOpenOk()), 503),
    ("client-only-method-from-broker", F.method(1, spec.BasicPublish()), 503),
    (
        "truncated-method-channel-0",
        method_frame(0, spec.ConnectionBlocked(reason="x").encode()[:-1]),
        502,
    ),
    (
        "truncated-method-on-channel",
        method_frame(1, spec.BasicCancel(consumer_tag="abc").encode()[:-2]),
        502,
    ),
    ("method-id-truncated-channel-0", method_frame(0, b"\x00\x0a\x00"), 502),
    ("method-id-truncated-on-channel", method_frame(1, b"\x00\x3c"), 502),
    ("method-with-trailing-bytes", method_frame(1, spec.BasicQosOk().encode() + b"\x00"), 502),
    (
        "deliver-with-trailing-bytes",
        method_frame(1, spec.BasicDeliver(consumer_tag="c", delivery_tag=1).encode() + b"\x00"),
        502,
    ),
    (
        "deliver-truncated",
        method_frame(1, spec.BasicDeliver(consumer_tag="c", delivery_tag=1).encode()[:12]),
        502,
    ),
    (
        "ack-with-trailing-bytes",
        method_frame(1, spec.BasicAck(delivery_tag=1).encode() + b"\x00"),
        502,
    ),
    ("ack-truncated", method_frame(1, spec.BasicAck(delivery_tag=1).encode()[:-1]), 502),
    (
        "content-header-truncated",
        F.method(1, spec.BasicDeliver(consumer_tag="c", delivery_tag=1))
        + F.frame(spec.FRAME_HEADER, 1, b"\x00\x3c\x00\x00\x00\x00"),
        502,
    ),
    (
        "bad-properties",
        F.method(1, spec.BasicDeliver(consumer_tag="c", delivery_tag=1))
        + F.frame(
            spec.FRAME_HEADER, 1, struct.pack(">HHQ", 60, 0, 0) + b"\x20\x00\x00\x00\x00\x05"
        ),
        502,
    ),
    (
        "bad-utf8-routing-key",
        method_frame(1, b"\x00\x3c\x00\x3c\x01c" + struct.pack(">QB", 1, 0) + b"\x00\x02\xc3\x28"),
        502,
    ),
    (
        "bad-server-properties",
        method_frame(0, b"\x00\x0a\x00\x3c\x02\xff\xfe"),  # Connection.Blocked, reason not UTF-8
        502,
    ),
    ("bad-bit-in-table", method_frame(1, b"\x00\x32\x00\x0b"), 502),  # Queue.Declare-Ok, empty
]


@pytest.mark.parametrize(
    ("stream", "code"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_input(
    stream: bytes, code: int, feed: Callable[[Connection, bytes], list[Event]]
) -> None:
    conn = opened()
    events = feed(conn, stream)
    assert_fails(conn, events, code)


def test_unexpected_reply_text_names_the_method() -> None:
    conn = opened()
    closed = closed_with(conn.receive_data(F.qos_ok(1), 0.0))
    assert closed.reply_text == "COMMAND_INVALID - got basic.qos-ok, expected nothing"
    assert isinstance(closed.error, ProtocolError)
    assert str(closed.error) == "(503) COMMAND_INVALID - got basic.qos-ok, expected nothing"


def test_frame_larger_than_frame_max_fails_from_its_header(feed: Any) -> None:
    conn = opened(server_frame_max=4096)
    header = struct.pack(">BHI", spec.FRAME_BODY, 1, 4096 - 7)  # 4097 bytes with overhead
    events = feed(conn, header)  # the payload never needs to arrive
    assert_fails(conn, events, 501)
    assert "4097" in closed_with(events).reply_text


def test_frame_of_exactly_frame_max_is_fine() -> None:
    conn = opened(server_frame_max=4096)
    body = b"x" * (4096 - 8)
    events = conn.receive_data(F.deliver(1, "c", 1, body, frame_max=4096), 0.0)
    assert [type(e) for e in events] == [Delivery]


def test_frame_max_before_tune_is_our_own_proposal() -> None:
    conn = new_connection(frame_max=8192)
    events = conn.receive_data(struct.pack(">BHI", 1, 0, 8192 - 7), 0.0)
    assert protocol_error_code(events) == 501


def test_errors_after_good_frames_report_the_good_ones_first() -> None:
    conn = opened()
    events = conn.receive_data(F.blocked() + F.deliver(1, "c", 1, b"ok") + F.heartbeat(3), 0.0)
    assert [type(e) for e in events] == [ConnectionBlocked, Delivery, ConnectionClosed]
    assert protocol_error_code(events) == 501


@pytest.mark.parametrize(
    ("header", "version"),
    [
        (b"AMQP\x00\x00\x09\x01", "0.9.1"),
        (b"AMQP\x01\x01\x00\x0a", "1.0.10"),
        (b"AMQP\x00\x00\x08\x00", "0.8.0"),
    ],
)
def test_protocol_header_from_the_broker(header: bytes, version: str, feed: Any) -> None:
    conn = new_connection()
    events = feed(conn, header)
    closed = closed_with(events)
    assert type(closed.error) is IncompatibleProtocolError
    assert isinstance(closed.error, ProtocolError) and closed.error.reply_code == 0
    assert version in str(closed.error)
    assert conn.is_closed
    assert conn.data_to_send() == b""
    assert conn.receive_data(F.start(), 0.0) == []


def test_partial_protocol_header_waits() -> None:
    conn = new_connection()
    assert conn.receive_data(b"AMQP\x00\x00", 0.0) == []
    assert not conn.is_closed
    assert [type(e) for e in conn.receive_data(b"\x09\x01", 0.0)] == [ConnectionClosed]


def test_a_failure_after_the_end_changes_nothing() -> None:
    conn = opened()
    closed_with(conn.receive_data(F.qos_ok(1), 0.0))
    conn.data_to_send()
    conn.fail_with_protocol_error(
        501, "late"
    )  # e.g. a channel noticing something once the connection ended
    assert conn.data_to_send() == b""
    assert conn._events[-1].reply_code == 503  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["c", "python"])
@pytest.mark.parametrize("size", [100, 101, 2000])
def test_a_whole_delivery_over_max_message_size_is_refused_on_both_paths(
    path: str, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery in one read, its body in one frame but over max_message_size."""
    from txamqp091.core import channel as channel_module

    if path == "python":
        monkeypatch.setattr(channel_module, "_c_take_delivery", None)
    elif channel_module._c_take_delivery is None:
        pytest.skip("the C accelerator is not built or disabled")
    conn = opened(max_message_size=100)
    events = conn.receive_data(F.deliver(1, "c", 1, b"x" * size), 0.0)
    if size <= 100:
        assert [type(e) for e in events] == [Delivery]
        assert events[0].body == b"x" * size  # type: ignore[attr-defined]
    else:
        assert protocol_error_code(events) == spec.FRAME_ERROR
        assert "max_message_size 100" in closed_with(events).reply_text
