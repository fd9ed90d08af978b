"""Channel behaviour: request ordering, publishing, confirms, content assembly, closing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import describe, describe_all, protocol_error_code
from txamqp091.core import spec
from txamqp091.core.channel import Channel
from txamqp091.core.connection import Connection
from txamqp091.core.events import (
    ChannelClosed,
    ChannelFlow,
    ChannelOpened,
    ConnectionClosed,
    ConsumerCancelled,
    Delivery,
    Event,
    GetOk,
    MethodReply,
    PublishAcked,
    PublishNacked,
    Returned,
)
from txamqp091.core.states import ChannelState
from txamqp091.core.testing import (
    ServerFrames,
    open_channel,
    open_connection,
    parse_client_frames,
    parse_client_methods,
    parse_published_messages,
)
from txamqp091.exceptions import (
    ChannelClosedByBroker,
    ChannelClosedByClient,
    ChannelWrongStateError,
)

F = ServerFrames()
PROPS = spec.BasicProperties(
    content_type="text/plain", delivery_mode=2, headers={"a": 1, "nested": {"b": [1, "x"]}}
)


def setup(**kwargs: Any) -> tuple[Connection, Channel]:
    conn = open_connection(**kwargs)
    return conn, open_channel(conn)


def methods(conn: Connection) -> list[spec.Method]:
    return [m for _, m in parse_client_methods(conn.data_to_send())]


def feed(conn: Connection, data: bytes) -> list[Event]:
    return list(conn.receive_data(data, 0.0))


# -- one request in flight -----------------------------------------------------------------


def test_one_synchronous_request_in_flight_the_rest_in_order() -> None:
    conn, ch = setup()
    requests = [
        spec.QueueDeclare(queue="a"),
        spec.QueueDeclare(queue="b"),
        spec.QueueBind(queue="b", exchange="amq.topic", routing_key="#"),
    ]
    for request in requests:
        ch.send_method(request)
    assert methods(conn) == requests[:1]
    assert feed(conn, F.reply(1, requests[0])) == [
        MethodReply(
            channel_id=1, method=spec.QueueDeclareOk(queue="a", message_count=0, consumer_count=0)
        )
    ]
    assert methods(conn) == requests[1:2]
    assert feed(conn, F.queue_declare_ok(1, "b", 5, 1)) == [
        MethodReply(
            channel_id=1, method=spec.QueueDeclareOk(queue="b", message_count=5, consumer_count=1)
        )
    ]
    assert methods(conn) == requests[2:]
    assert feed(conn, F.reply(1, requests[2])) == [
        MethodReply(channel_id=1, method=spec.QueueBindOk())
    ]
    assert conn.data_to_send() == b""


def test_publishes_behind_a_queued_request_keep_call_order() -> None:
    conn, ch = setup()
    ch.send_method(spec.BasicQos(prefetch_count=5))  # in flight
    ch.send_method(spec.QueueDeclare(queue="q"))  # waits
    ch.publish("", "q", b"one")  # waits behind the declare
    ch.send_method(spec.BasicAck(delivery_tag=1))  # asynchronous, but still waits its turn
    ch.publish("", "q", b"two")
    ch.send_method(spec.QueueDelete(queue="q"))
    assert methods(conn) == [spec.BasicQos(prefetch_count=5)]
    feed(conn, F.qos_ok(1))
    assert methods(conn) == [spec.QueueDeclare(queue="q")]
    feed(conn, F.queue_declare_ok(1, "q"))
    sent = parse_client_frames(conn.data_to_send())
    assert [(f.frame_type, f.payload) for f in sent] == [
        (spec.FRAME_METHOD, spec.BasicPublish(routing_key="q")),
        (spec.FRAME_HEADER, (3, spec.BasicProperties())),
        (spec.FRAME_BODY, b"one"),
        (spec.FRAME_METHOD, spec.BasicAck(delivery_tag=1)),
        (spec.FRAME_METHOD, spec.BasicPublish(routing_key="q")),
        (spec.FRAME_HEADER, (3, spec.BasicProperties())),
        (spec.FRAME_BODY, b"two"),
        (spec.FRAME_METHOD, spec.QueueDelete(queue="q")),
    ]


def test_publish_and_async_methods_pass_a_request_in_flight_when_nothing_waits() -> None:
    conn, ch = setup()
    ch.send_method(spec.BasicQos(prefetch_count=1))
    ch.publish("ex", "rk", b"now")
    ch.send_method(spec.BasicAck(delivery_tag=3))
    frames = parse_client_frames(conn.data_to_send())
    assert [f.payload for f in frames if f.frame_type == spec.FRAME_METHOD] == [
        spec.BasicQos(prefetch_count=1),
        spec.BasicPublish(exchange="ex", routing_key="rk"),
        spec.BasicAck(delivery_tag=3),
    ]


def test_nowait_methods_do_not_wait_for_a_reply() -> None:
    conn, ch = setup()
    nowait = [
        spec.ExchangeDeclare(exchange="x", nowait=True),
        spec.QueueDeclare(queue="q", nowait=True),
        spec.QueueBind(queue="q", exchange="x", nowait=True),
        spec.BasicConsume(queue="q", consumer_tag="c", nowait=True),
    ]
    for method in nowait:
        assert not ch.expects_reply(method)
        ch.send_method(method)
    ch.send_method(spec.BasicQos(prefetch_count=2))
    assert ch.expects_reply(spec.BasicQos())
    assert not ch.expects_reply(spec.BasicAck())
    assert methods(conn) == [*nowait, spec.BasicQos(prefetch_count=2)]
    # Only the Qos is answered.
    assert feed(conn, F.qos_ok(1)) == [MethodReply(channel_id=1, method=spec.BasicQosOk())]


def test_nowait_method_while_a_request_is_in_flight() -> None:
    conn, ch = setup()
    ch.send_method(spec.BasicQos())
    ch.send_method(spec.QueueDelete(queue="q", nowait=True))
    assert methods(conn) == [spec.BasicQos(), spec.QueueDelete(queue="q", nowait=True)]


def test_publish_while_opening_waits_for_open_ok() -> None:
    conn = open_connection()
    ch = conn.open_channel()
    assert ch.state is ChannelState.OPENING
    assert ch.publish("", "q", b"early") == 0
    ch.send_method(spec.BasicQos(prefetch_count=1))
    assert methods(conn) == [spec.ChannelOpen()]
    events = feed(conn, F.channel_open_ok(1))
    assert events == [ChannelOpened(channel_id=1)]
    assert ch.state is ChannelState.OPEN
    sent = conn.data_to_send()
    assert [m.body for m in parse_published_messages(sent)] == [b"early"]
    assert [m for _, m in parse_client_methods(sent)][-1] == spec.BasicQos(prefetch_count=1)


# -- confirms --------------------------------------------------------------------------------


def test_confirm_sequence_numbers() -> None:
    conn, ch = setup()
    assert not ch.confirm_mode
    assert ch.next_publish_seq == 0
    assert ch.publish("", "q", b"unconfirmed") == 0
    ch.send_method(spec.BasicQos())  # in flight, so what follows waits
    ch.send_method(spec.ConfirmSelect())
    assert ch.confirm_mode
    assert ch.next_publish_seq == 1
    # Numbered at call time, though they wait for Qos-Ok before leaving.
    assert [ch.publish("", "q", b"%d" % i) for i in range(3)] == [1, 2, 3]
    assert ch.next_publish_seq == 4
    ch.send_method(spec.ConfirmSelect())  # again: no restart
    assert ch.publish("", "q", b"3") == 4
    sent = conn.data_to_send()
    assert [m.body for m in parse_published_messages(sent)] == [b"unconfirmed"]
    feed(conn, F.qos_ok(1))
    sent = conn.data_to_send()
    assert parse_client_methods(sent) == [(1, spec.ConfirmSelect())]
    feed(conn, F.confirm_select_ok(1))
    sent = conn.data_to_send()
    assert [m.body for m in parse_published_messages(sent)] == [b"0", b"1", b"2"]
    assert parse_client_methods(sent)[-1] == (1, spec.ConfirmSelect())
    feed(conn, F.confirm_select_ok(1))
    assert [m.body for m in parse_published_messages(conn.data_to_send())] == [b"3"]
    assert ch.publish("", "q", b"4") == 5


def test_publishes_after_an_immediate_confirm_select_are_numbered_from_one() -> None:
    conn, ch = setup()
    ch.send_method(spec.ConfirmSelect())
    assert [ch.publish("", "q", b"x") for _ in range(3)] == [1, 2, 3]
    sent = conn.data_to_send()
    assert parse_client_methods(sent)[0] == (1, spec.ConfirmSelect())
    assert len(parse_published_messages(sent)) == 3


def test_nowait_confirm_select() -> None:
    conn, ch = setup()
    ch.send_method(spec.ConfirmSelect(nowait=True))
    assert ch.publish("", "q", b"x") == 1
    assert len(parse_published_messages(conn.data_to_send())) == 1


def test_acks_and_nacks() -> None:
    conn, ch = setup()
    ch.send_method(spec.ConfirmSelect())
    feed(conn, F.confirm_select_ok(1))
    for _ in range(6):
        ch.publish("", "q", b"m")
    events = feed(
        conn, F.ack(1, 1) + F.ack(1, 3, multiple=True) + F.nack(1, 4) + F.nack(1, 6, True)
    )
    assert describe_all(events) == describe_all(
        [
            PublishAcked(1, 1, False),
            PublishAcked(1, 3, True),
            PublishNacked(channel_id=1, delivery_tag=4, multiple=False),
            PublishNacked(channel_id=1, delivery_tag=6, multiple=True),
        ]
    )
    assert repr(events[1]) == "PublishAcked(channel_id=1, delivery_tag=3, multiple=True)"


@pytest.mark.parametrize(
    ("confirm", "frame", "text"),
    [
        (True, F.ack(1, 2), "publish 2, never sent"),
        (True, F.nack(1, 7, True), "publish 7, never sent"),
        (False, F.ack(1, 1), "outside confirm mode"),
        (False, F.nack(1, 0, True), "outside confirm mode"),
    ],
)
def test_a_confirm_for_a_publish_never_sent_is_command_invalid(
    confirm: bool, frame: bytes, text: str
) -> None:
    conn, ch = setup()
    if confirm:
        ch.send_method(spec.ConfirmSelect())
        feed(conn, F.confirm_select_ok(1))
    ch.publish("", "q", b"m")
    conn.data_to_send()
    (closed,) = feed(conn, frame)
    assert isinstance(closed, ConnectionClosed) and closed.reply_code == 503
    assert text in closed.reply_text
    ((_, _, close),) = parse_client_frames(conn.data_to_send())
    assert isinstance(close, spec.ConnectionClose) and close.reply_code == 503


def test_ack_of_everything_with_tag_zero_is_allowed() -> None:
    conn, ch = setup()
    ch.send_method(spec.ConfirmSelect())
    feed(conn, F.confirm_select_ok(1))
    ch.publish("", "q", b"m")
    (acked,) = feed(conn, F.ack(1, 0, multiple=True))
    assert isinstance(acked, PublishAcked) and acked.delivery_tag == 0


# -- content --------------------------------------------------------------------------------


def test_return_with_content() -> None:
    conn, ch = setup()
    events = feed(
        conn,
        F.basic_return(1, b"bounced", PROPS, 312, "NO_ROUTE", "amq.direct", "nowhere"),
    )
    assert events == [
        Returned(
            channel_id=1,
            reply_code=312,
            reply_text="NO_ROUTE",
            exchange="amq.direct",
            routing_key="nowhere",
            properties=PROPS,
            body=b"bounced",
        )
    ]


@pytest.mark.parametrize("size", [0, 1, 4088, 4089, 3 * 4088, 3 * 4088 + 1, 20000])
def test_delivery_assembled_from_body_frames(size: int) -> None:
    conn, _ = setup(server_frame_max=4096)
    body = bytes(i % 251 for i in range(size))
    stream = F.deliver(1, "ctag", 7, body, PROPS, "ex", "rk", True, frame_max=4096)
    body_frames = [f for f in _server_frames(stream) if f[0] == spec.FRAME_BODY]
    assert len(body_frames) == -(-size // 4088)
    events = feed(conn, stream)
    assert len(events) == 1
    delivery = events[0]
    assert type(delivery) is Delivery
    assert (delivery.channel_id, delivery.consumer_tag, delivery.delivery_tag) == (1, "ctag", 7)
    assert (delivery.redelivered, delivery.exchange, delivery.routing_key) == (True, "ex", "rk")
    assert delivery.properties == PROPS
    assert delivery.body == body
    assert repr(delivery) == (
        f"<Delivery channel=1 tag=7 consumer='ctag' exchange='ex' routing_key='rk' "
        f"body={size} bytes>"
    )


def test_delivery_bodies_of_several_frames_in_separate_reads() -> None:
    conn, _ = setup(server_frame_max=4096)
    stream = F.deliver(1, "c", 1, b"a" * 5000 + b"b" * 5000, frame_max=4096)
    events = []
    for frame in _server_frames(stream):
        events.extend(feed(conn, frame[2]))
    [delivery] = events
    assert isinstance(delivery, Delivery)
    assert delivery.body == b"a" * 5000 + b"b" * 5000


def test_interleaved_channels_assemble_separately() -> None:
    conn = open_connection()
    open_channel(conn)
    open_channel(conn)
    one = _server_frames(F.deliver(1, "c1", 1, b"one"))
    two = _server_frames(F.deliver(2, "c2", 1, b"two"))
    stream = b"".join(f[2] for pair in zip(one, two) for f in pair)
    events = feed(conn, stream)
    assert [(e.channel_id, e.body) for e in events] == [(1, b"one"), (2, b"two")]  # type: ignore[attr-defined]


def test_custom_delivery_class() -> None:
    class Message(Delivery):
        __slots__ = ()

        def text(self) -> str:
            return self.body.decode()

    conn, _ = setup(delivery_class=Message)
    [event] = feed(conn, F.deliver(1, "c", 1, b"hi"))
    assert type(event) is Message
    assert event.text() == "hi"


def test_get_ok_completes_the_request_in_flight() -> None:
    conn, ch = setup()
    ch.send_method(spec.BasicGet(queue="q"))
    ch.send_method(spec.BasicGet(queue="q"))
    assert methods(conn) == [spec.BasicGet(queue="q")]
    # Get-Ok alone does not complete the request: the content is still due.
    stream = F.get_ok(1, 9, b"payload", PROPS, "ex", "rk", True, 41)
    frames = _server_frames(stream)
    assert feed(conn, frames[0][2] + frames[1][2]) == []
    assert conn.data_to_send() == b""
    assert feed(conn, frames[2][2]) == [
        GetOk(
            channel_id=1,
            delivery_tag=9,
            redelivered=True,
            exchange="ex",
            routing_key="rk",
            message_count=41,
            properties=PROPS,
            body=b"payload",
        )
    ]
    assert methods(conn) == [spec.BasicGet(queue="q")]
    assert feed(conn, F.get_empty(1)) == [MethodReply(channel_id=1, method=spec.BasicGetEmpty())]


def test_get_ok_with_empty_body() -> None:
    conn, ch = setup()
    ch.send_method(spec.BasicGet(queue="q"))
    [event] = feed(conn, F.get_ok(1, 1, b""))
    assert isinstance(event, GetOk) and event.body == b""


# -- broker-initiated methods -----------------------------------------------------------------


def test_broker_cancel() -> None:
    conn, _ = setup()
    assert feed(conn, F.cancel(1, "ctag")) == [ConsumerCancelled(channel_id=1, consumer_tag="ctag")]
    assert methods(conn) == [spec.BasicCancelOk(consumer_tag="ctag")]
    assert feed(conn, F.cancel(1, "other", nowait=True)) == [
        ConsumerCancelled(channel_id=1, consumer_tag="other")
    ]
    assert conn.data_to_send() == b""


def test_client_cancel_is_a_request() -> None:
    conn, ch = setup()
    ch.send_method(spec.BasicCancel(consumer_tag="ctag"))
    assert methods(conn) == [spec.BasicCancel(consumer_tag="ctag")]
    assert feed(conn, F.cancel_ok(1, "ctag")) == [
        MethodReply(channel_id=1, method=spec.BasicCancelOk(consumer_tag="ctag"))
    ]


def test_channel_flow() -> None:
    conn, ch = setup()
    assert ch.flow_active
    assert feed(conn, F.flow(1, False)) == [ChannelFlow(channel_id=1, active=False)]
    assert not ch.flow_active
    assert methods(conn) == [spec.ChannelFlowOk(active=False)]
    assert feed(conn, F.flow(1, True)) == [ChannelFlow(channel_id=1, active=True)]
    assert ch.flow_active
    assert methods(conn) == [spec.ChannelFlowOk(active=True)]


def test_client_flow_request() -> None:
    conn, ch = setup()
    ch.send_method(spec.ChannelFlow(active=False))
    assert feed(conn, F.reply(1, spec.ChannelFlow(active=False))) == [
        MethodReply(channel_id=1, method=spec.ChannelFlowOk(active=False))
    ]


def test_reply_to_the_wrong_request_is_command_invalid() -> None:
    conn, ch = setup()
    ch.send_method(spec.BasicQos())
    assert protocol_error_code(feed(conn, F.queue_declare_ok(1, "q"))) == 503


# -- closing ------------------------------------------------------------------------------------


def test_client_close() -> None:
    conn, ch = setup()
    ch.send_method(spec.BasicQos())
    ch.send_method(spec.QueueDeclare(queue="dropped"))
    conn.data_to_send()
    ch.close(200, "bye")
    assert ch.state is ChannelState.CLOSING
    assert methods(conn) == [spec.ChannelClose(reply_code=200, reply_text="bye")]
    for call in (
        lambda: ch.close(),
        lambda: ch.publish("", "q", b"x"),
        lambda: ch.send_method(spec.BasicQos()),
    ):
        with pytest.raises(ChannelWrongStateError, match="closing"):
            call()
    # Until Close-Ok, everything else the broker sends is discarded.
    late = (
        F.qos_ok(1)
        + F.deliver(1, "c", 1, b"late", PROPS)
        + F.ack(1, 1)
        + F.nack(1, 2)
        + F.basic_return(1, b"r")
        + F.flow(1, False)
        + F.cancel(1, "c")
        + F.header(1, 0)
        + F.body(1, b"stray")
        + F.queue_declare_ok(1, "dropped")
    )
    assert feed(conn, late) == []
    assert conn.data_to_send() == b""
    assert ch.flow_active
    events = feed(conn, F.channel_close_ok(1))
    assert describe_all(events) == [
        describe(
            ChannelClosed(
                channel_id=1,
                reply_code=200,
                reply_text="bye",
                error=ChannelClosedByClient(200, "bye"),
            )
        )
    ]
    assert ch.state is ChannelState.CLOSED
    with pytest.raises(ChannelWrongStateError, match="closed"):
        ch.publish("", "q", b"x")
    # The number is free again and frames for it are now an error.
    assert protocol_error_code(feed(conn, F.qos_ok(1))) == 504


def test_client_close_while_content_is_arriving() -> None:
    conn, ch = setup()
    frames = _server_frames(F.deliver(1, "c", 1, b"abc"))
    assert feed(conn, frames[0][2] + frames[1][2]) == []
    ch.close()
    assert feed(conn, frames[2][2]) == []
    [closed] = feed(conn, F.channel_close_ok(1))
    assert isinstance(closed, ChannelClosed)


def test_broker_close() -> None:
    conn, ch = setup()
    ch.send_method(spec.QueueDeclare(queue="missing", passive=True))
    ch.send_method(spec.BasicQos())
    conn.data_to_send()
    text = "NOT_FOUND - no queue 'missing' in vhost '/'"
    [event] = feed(conn, F.channel_close(1, 404, text, 50, 10))
    assert isinstance(event, ChannelClosed)
    assert (event.channel_id, event.reply_code, event.reply_text) == (1, 404, text)
    assert isinstance(event.error, ChannelClosedByBroker)
    assert (event.error.reply_code, event.error.reply_text) == (404, text)
    # Close-Ok and nothing else: the queued Qos is dropped.
    assert methods(conn) == [spec.ChannelCloseOk()]
    assert ch.state is ChannelState.CLOSED
    with pytest.raises(ChannelWrongStateError):
        ch.send_method(spec.BasicQos())
    with pytest.raises(ChannelWrongStateError):
        ch.close()
    assert open_channel(conn).channel_id == 1


def test_broker_close_while_opening() -> None:
    conn = open_connection()
    ch = conn.open_channel()
    conn.data_to_send()
    [event] = feed(conn, F.channel_close(1, 403, "ACCESS_REFUSED"))
    assert isinstance(event, ChannelClosed) and event.reply_code == 403
    assert ch.state is ChannelState.CLOSED
    assert methods(conn) == [spec.ChannelCloseOk()]


def test_simultaneous_close() -> None:
    conn, ch = setup()
    ch.close()
    conn.data_to_send()
    [event] = feed(conn, F.channel_close(1, 406, "PRECONDITION_FAILED"))
    assert isinstance(event, ChannelClosed)
    assert isinstance(event.error, ChannelClosedByBroker) and event.reply_code == 406
    assert methods(conn) == [spec.ChannelCloseOk()]
    assert ch.state is ChannelState.CLOSING
    # The number stays taken until the broker's Close-Ok for our Close.
    assert open_channel(conn).channel_id == 2
    assert feed(conn, F.channel_close_ok(1)) == []
    assert ch.state is ChannelState.CLOSED
    assert open_channel(conn).channel_id == 1


def test_channel_use_after_the_connection_ended() -> None:
    conn, ch = setup()
    feed(conn, F.close())
    for call in (
        lambda: ch.publish("", "q", b"x"),
        lambda: ch.send_method(spec.BasicQos()),
        lambda: ch.close(),
    ):
        with pytest.raises(ChannelWrongStateError, match="connection is closed"):
            call()
    conn2, ch2 = setup()
    conn2.close()
    with pytest.raises(ChannelWrongStateError, match="connection is closing"):
        ch2.close()
    with pytest.raises(ChannelWrongStateError, match="connection is closing"):
        ch2.publish("", "q", b"x")


# -- publishing --------------------------------------------------------------------------------


def test_publish_splits_bodies_by_frame_max() -> None:
    conn, ch = setup(server_frame_max=4096)
    assert conn.frame_max == 4096
    body = bytes(range(256)) * 40  # 10240 bytes
    ch.publish("amq.topic", "a.b", body, PROPS, mandatory=True)
    data = conn.data_to_send()
    frames = parse_client_frames(data)
    assert [(f.frame_type, f.channel_id) for f in frames] == [
        (spec.FRAME_METHOD, 1),
        (spec.FRAME_HEADER, 1),
        (spec.FRAME_BODY, 1),
        (spec.FRAME_BODY, 1),
        (spec.FRAME_BODY, 1),
    ]
    assert frames[0].payload == spec.BasicPublish(
        exchange="amq.topic", routing_key="a.b", mandatory=True
    )
    assert frames[1].payload == (10240, PROPS)
    assert [len(f.payload) for f in frames[2:]] == [4088, 4088, 2064]  # type: ignore[arg-type]
    assert b"".join(f.payload for f in frames[2:]) == body  # type: ignore[misc]
    # No frame is larger than frame_max.
    assert len(data) == sum(8 + len(_payload_bytes(f)) for f in frames)
    assert parse_published_messages(data)[0].body == body


@pytest.mark.parametrize(("size", "frames"), [(0, 0), (1, 1), (4088, 1), (4089, 2), (8176, 2)])
def test_publish_body_frame_count(size: int, frames: int) -> None:
    conn, ch = setup(server_frame_max=4096)
    ch.publish("", "q", b"z" * size)
    sent = parse_client_frames(conn.data_to_send())
    assert sum(f.frame_type == spec.FRAME_BODY for f in sent) == frames
    assert sent[1].payload == (size, spec.BasicProperties())


def test_publish_properties_too_large_for_a_frame() -> None:
    _, ch = setup(server_frame_max=4096)
    with pytest.raises(ValueError, match="do not fit"):
        ch.publish("", "q", b"", spec.BasicProperties(headers={"h": "x" * 5000}))


def test_publish_names_too_long() -> None:
    _, ch = setup()
    with pytest.raises(ValueError, match="exchange"):
        ch.publish("e" * 256, "q", b"")
    with pytest.raises(ValueError, match="routing_key"):
        ch.publish("", "r" * 256, b"")


def test_publish_method_cache_is_bounded() -> None:
    conn, ch = setup()
    for i in range(300):
        ch.publish("", f"q{i}", b"")
    ch.publish("", "q0", b"", mandatory=True)
    messages = parse_published_messages(conn.data_to_send())
    assert [m.method.routing_key for m in messages[:300]] == [f"q{i}" for i in range(300)]
    assert messages[-1].method == spec.BasicPublish(routing_key="q0", mandatory=True)
    assert len(ch._publish_cache) <= 256


def test_channel_repr() -> None:
    _, ch = setup()
    assert repr(ch) == "<core.Channel 1 open>"


# -- helpers -------------------------------------------------------------------------------------


def _server_frames(stream: bytes) -> list[tuple[int, int, bytes]]:
    """Split a server stream into (type, channel, whole frame bytes)."""
    out = []
    pos = 0
    while pos < len(stream):
        size = int.from_bytes(stream[pos + 3 : pos + 7], "big")
        end = pos + 8 + size
        out.append((stream[pos], int.from_bytes(stream[pos + 1 : pos + 3], "big"), stream[pos:end]))
        pos = end
    return out


def _payload_bytes(frame: object) -> bytes:
    from txamqp091.core.testing import ClientFrame

    assert isinstance(frame, ClientFrame)
    payload = frame.payload
    if isinstance(payload, spec.Method):
        return payload.encode()
    if isinstance(payload, tuple):
        properties: spec.BasicProperties = payload[1]
        return b"\x00" * 12 + properties.encode()
    assert isinstance(payload, bytes)
    return payload
