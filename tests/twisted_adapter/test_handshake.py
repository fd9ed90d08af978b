"""The handshake through the Twisted protocol: what is written, when ``ready`` fires."""

from __future__ import annotations

from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure

from tests.twisted_adapter.support import Wire, assert_no_result, failure_of, result_of
from txamqp091.core import spec
from txamqp091.exceptions import (
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    StreamLostError,
)
from txamqp091.twisted import Connection
from txamqp091.twisted.testing import FakeBroker, connected


def test_protocol_header_is_written_on_connect() -> None:
    wire = Wire()
    assert wire.transport.value() == spec.PROTOCOL_HEADER
    assert wire.transport.producer is wire.protocol  # registered for write back-pressure


def test_handshake_step_by_step_then_ready_fires() -> None:
    wire = Wire(connection_name="orders-api", virtual_host="prod", heartbeat=30)
    assert wire.raw() == spec.PROTOCOL_HEADER

    wire.feed(wire.frames.start())
    ((_, start_ok),) = wire.methods()
    assert isinstance(start_ok, spec.ConnectionStartOk)
    assert start_ok.mechanism == "PLAIN"
    assert start_ok.response == b"\x00guest\x00guest"
    assert start_ok.client_properties["connection_name"] == "orders-api"
    assert start_ok.client_properties["capabilities"]["publisher_confirms"] is True
    assert_no_result(wire.protocol.ready)

    wire.feed(wire.frames.tune(channel_max=100, frame_max=65536, heartbeat=60))
    (_, tune_ok), (_, open_) = wire.methods()
    assert tune_ok == spec.ConnectionTuneOk(channel_max=100, frame_max=65536, heartbeat=30)
    assert open_ == spec.ConnectionOpen(virtual_host="prod")
    assert_no_result(wire.protocol.ready)

    wire.feed(wire.frames.open_ok())
    conn = result_of(wire.protocol.ready)
    assert isinstance(conn, Connection)
    assert conn.is_open and not conn.is_blocked
    assert (conn.negotiated.channel_max, conn.negotiated.frame_max) == (100, 65536)
    assert conn.negotiated.heartbeat == 30
    assert conn.server_properties["product"] == "RabbitMQ"


def test_handshake_fed_one_byte_at_a_time() -> None:
    wire = Wire()
    wire.raw()
    data = wire.frames.handshake(heartbeat=0)
    for i in range(len(data) - 1):
        wire.protocol.dataReceived(data[i : i + 1])
    assert_no_result(wire.protocol.ready)
    wire.feed(data[-1:])
    assert result_of(wire.protocol.ready).is_open


def test_refused_login_fails_ready_and_fires_closed() -> None:
    wire = Wire()
    wire.raw()
    closed = wire.protocol.connection.closed
    wire.feed(wire.frames.start())
    wire.feed(wire.frames.close(spec.ACCESS_REFUSED, "ACCESS_REFUSED - Login was refused"))
    failure_of(wire.protocol.ready, ProbableAuthenticationError)
    assert isinstance(result_of(closed), ProbableAuthenticationError)
    assert isinstance(wire.methods()[-1][1], spec.ConnectionCloseOk)


def test_connection_lost_while_opening_the_vhost_is_access_denied() -> None:
    wire = Wire()
    wire.raw()
    wire.feed(wire.frames.start() + wire.frames.tune(heartbeat=0))
    wire.protocol.connectionLost(Failure(ConnectionLost()))
    failure_of(wire.protocol.ready, ProbableAccessDeniedError)


def test_connection_lost_before_start_fails_ready() -> None:
    wire = Wire()
    wire.protocol.connectionLost(Failure(ConnectionLost()))
    failure_of(wire.protocol.ready, StreamLostError)


def test_fake_broker_handshake() -> None:
    broker = FakeBroker(frame_max=8192, channel_max=10)
    conn, pump = connected(broker, "amqp://guest:guest@localhost/?connection_name=fake")
    assert conn.is_open
    assert conn.negotiated.frame_max == 8192
    assert conn.negotiated.channel_max == 10
    assert pump.server.client_properties["connection_name"] == "fake"
    assert pump.server.virtual_host == "/"
    assert broker.connections == [pump.server]
