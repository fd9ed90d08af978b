"""Every way a channel or a connection ends, and what waits on it.

``closed`` (of a connection or a channel) fires with None after a close the
client asked for, otherwise with the exception that ended it; it never
errbacks. The ``logged_failures`` fixture checks that nothing is logged as an
unhandled error along the way.
"""

from __future__ import annotations

from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure

from tests.twisted_adapter.support import Wire, assert_no_result, failure_of, result_of
from txamqp091 import Message
from txamqp091.core import spec
from txamqp091.exceptions import (
    ChannelClosedByBroker,
    ChannelClosedByClient,
    ChannelWrongStateError,
    ConnectionClosedByBroker,
    ConsumerCancelled,
    ProtocolError,
    StreamLostError,
)
from txamqp091.twisted import Channel, Connection


def setup() -> tuple[Wire, Connection, Channel]:
    wire = Wire()
    conn = wire.open()
    return wire, conn, wire.channel(conn)


def consume(wire: Wire, ch: Channel, tag: str = "c1") -> object:
    d = ch.basic_consume("q", consumer_tag=tag)
    wire.sent()
    wire.feed(wire.frames.consume_ok(ch.channel_number, tag))
    return result_of(d)


# -- channels -----------------------------------------------------------------------------


def test_client_channel_close() -> None:
    wire, conn, ch = setup()
    closed = ch.closed
    pending = ch.queue_declare("q")
    wire.sent()
    d = ch.close()
    assert not ch.is_open
    assert wire.methods() == [(1, spec.ChannelClose(reply_code=200, reply_text="Normal shutdown"))]
    failure_of(pending, ChannelClosedByClient)
    assert_no_result(d)
    wire.feed(wire.frames.queue_declare_ok(1, "q"))  # discarded while closing
    wire.feed(wire.frames.channel_close_ok(1))
    assert result_of(d) is None
    assert result_of(closed) is None
    assert ch.is_closed and conn.is_open
    failure_of(ch.basic_publish("", "q", b"x"), ChannelWrongStateError)
    failure_of(ch.queue_declare("q"), ChannelWrongStateError)


def test_broker_channel_close_fails_pending_with_the_reply_code() -> None:
    wire, conn, ch = setup()
    closed = ch.closed
    reasons: list[BaseException] = []
    ch.add_on_close_callback(lambda channel, reason: reasons.append(reason))
    first = ch.queue_declare("missing", passive=True)
    second = ch.queue_bind("q", "x")
    wire.sent()
    wire.feed(wire.frames.channel_close(1, 404, "NOT_FOUND - no queue 'missing' in vhost '/'"))
    error = failure_of(first, ChannelClosedByBroker)
    assert isinstance(error, ChannelClosedByBroker)
    assert (error.reply_code, error.reply_text) == (
        404,
        "NOT_FOUND - no queue 'missing' in vhost '/'",
    )
    failure_of(second, ChannelClosedByBroker)
    assert result_of(closed) is error
    assert reasons == [error]
    assert wire.methods() == [(1, spec.ChannelCloseOk())]
    assert conn.is_open
    # The channel number is free again.
    again = conn.channel()
    assert wire.methods() == [(1, spec.ChannelOpen())]
    wire.feed(wire.frames.channel_open_ok(1))
    assert result_of(again).is_open


def test_broker_channel_close_ends_consumers() -> None:
    wire, _, ch = setup()
    consumer = consume(wire, ch)
    waiting = consumer.get()  # type: ignore[attr-defined]
    wire.feed(wire.frames.channel_close(1, 406, "PRECONDITION_FAILED - unknown delivery tag 9"))
    error = failure_of(waiting, ChannelClosedByBroker)
    assert isinstance(error, ChannelClosedByBroker) and error.reply_code == 406


def test_broker_cancels_a_consumer() -> None:
    wire, _, ch = setup()
    cancelled: list[str] = []
    ch.add_on_cancel_callback(cancelled.append)
    consumer = consume(wire, ch)
    waiting = consumer.get()  # type: ignore[attr-defined]
    wire.feed(wire.frames.cancel(1, "c1"))
    failure_of(waiting, ConsumerCancelled)
    assert cancelled == ["c1"]
    assert wire.methods() == [(1, spec.BasicCancelOk(consumer_tag="c1"))]
    assert ch.is_open


# -- connections ----------------------------------------------------------------------------


def test_client_connection_close() -> None:
    wire, conn, ch = setup()
    closed = conn.closed
    ch_closed = ch.closed
    d = conn.close()
    assert wire.methods() == [
        (0, spec.ConnectionClose(reply_code=200, reply_text="Normal shutdown"))
    ]
    assert_no_result(d)
    wire.feed(wire.frames.close_ok())
    assert result_of(d) is None
    assert result_of(closed) is None
    assert result_of(ch_closed) is None
    assert wire.transport.disconnecting and not conn.is_open
    assert result_of(conn.close()) is None  # closing twice is harmless
    assert wire.clock.getDelayedCalls() == []


def test_client_close_without_close_ok_drops_the_transport_after_close_timeout() -> None:
    wire, conn, _ = setup()
    d = conn.close()
    wire.clock.advance(conn.close_timeout)
    assert result_of(d) is None
    assert wire.transport.disconnected


def test_broker_connection_close() -> None:
    wire, conn, ch = setup()
    closed = conn.closed
    pending = ch.queue_declare("q")
    publish = ch.basic_publish("", "q", b"x")
    wire.sent()
    wire.feed(wire.frames.close(320, "CONNECTION_FORCED - broker forced connection closure"))
    error = result_of(closed)
    assert isinstance(error, ConnectionClosedByBroker)
    assert (error.reply_code, error.reply_text) == (
        320,
        "CONNECTION_FORCED - broker forced connection closure",
    )
    assert failure_of(pending) is error
    result_of(publish)  # handed to the transport before the close
    assert isinstance(result_of(ch.closed), ConnectionClosedByBroker)
    assert wire.methods() == [(0, spec.ConnectionCloseOk())]
    assert wire.transport.disconnecting
    assert result_of(conn.close()) is error


def test_transport_lost() -> None:
    wire, conn, ch = setup()
    closed = conn.closed
    pending = ch.queue_declare("q")
    wire.protocol.connectionLost(Failure(ConnectionLost("gone")))
    error = result_of(closed)
    assert isinstance(error, StreamLostError)
    failure_of(pending, StreamLostError)
    assert isinstance(result_of(ch.closed), StreamLostError)
    failure_of(conn.channel())
    wire.clock.advance(0)  # the flush queue_declare scheduled
    assert wire.clock.getDelayedCalls() == []


def test_garbage_from_the_peer_is_a_protocol_error() -> None:
    wire, conn, ch = setup()
    closed = conn.closed
    pending = ch.queue_declare("q")
    wire.sent()
    bad_frame_end = wire.frames.frame(spec.FRAME_METHOD, 1, b"\x00\x32\x00\x0b", frame_end=0x00)
    wire.feed(bad_frame_end)
    ((channel_id, close),) = wire.methods()
    assert channel_id == 0 and isinstance(close, spec.ConnectionClose)
    assert close.reply_code == spec.FRAME_ERROR
    error = result_of(closed)
    assert isinstance(error, ProtocolError) and error.reply_code == 501
    failure_of(pending, ProtocolError)
    assert wire.transport.disconnecting
    wire.feed(b"more garbage after the end")  # ignored
    assert wire.raw() == b""


def test_unexpected_method_is_a_command_invalid_protocol_error() -> None:
    wire, conn, _ = setup()
    wire.feed(wire.frames.queue_declare_ok(1, "nobody-asked"))
    ((_, close),) = wire.methods()
    assert isinstance(close, spec.ConnectionClose) and close.reply_code == spec.COMMAND_INVALID
    error = result_of(conn.closed)
    assert isinstance(error, ProtocolError) and error.reply_code == 503


def test_closed_fires_for_late_observers_too() -> None:
    wire, conn, ch = setup()
    wire.protocol.connectionLost(Failure(ConnectionLost()))
    assert isinstance(result_of(conn.closed), StreamLostError)
    assert isinstance(result_of(ch.closed), StreamLostError)


def test_unobserved_closed_logs_nothing() -> None:
    # Make closed Deferreds nobody looks at, then end everything the worst ways.
    wire, conn, ch = setup()
    unobserved = [conn.closed, ch.closed]
    wire.feed(wire.frames.channel_close(1, 404, "NOT_FOUND"))
    wire.protocol.connectionLost(Failure(ConnectionLost()))
    del unobserved  # garbage now: logged_failures fails the test if one held a failure


# -- messages of a dead channel ----------------------------------------------------------------


def test_message_ack_after_the_channel_died_is_a_no_op() -> None:
    wire, conn, ch = setup()
    consumer = consume(wire, ch)
    wire.feed(wire.frames.deliver(1, "c1", 1, b"x"))
    message = result_of(consumer.get())  # type: ignore[attr-defined]
    assert isinstance(message, Message)
    wire.feed(wire.frames.channel_close(1, 406, "PRECONDITION_FAILED"))
    wire.sent()
    message.ack()
    message.nack()
    message.reject()
    assert wire.raw() == b""
    # A new channel reuses number 1 and delivery tag 1: the old message must not ack it.
    new = wire.channel(conn)
    assert new.channel_number == 1
    message.ack()
    assert wire.raw() == b""


def test_message_ack_after_the_connection_died_is_a_no_op() -> None:
    wire, _, ch = setup()
    consumer = consume(wire, ch)
    wire.feed(wire.frames.deliver(1, "c1", 1, b"x"))
    message = result_of(consumer.get())  # type: ignore[attr-defined]
    wire.protocol.connectionLost(Failure(ConnectionLost()))
    message.ack()
    assert wire.raw() == b""
