"""The connection state machine: handshake, negotiation, close, blocking, channels, heartbeats."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import closed_with, new_connection, protocol_error_code
from txamqp091.core import spec
from txamqp091.core.connection import Connection, negotiate, negotiate_heartbeat
from txamqp091.core.events import (
    ConnectionBlocked,
    ConnectionClosed,
    ConnectionOpened,
    ConnectionUnblocked,
    MethodReply,
)
from txamqp091.core.frames import HEARTBEAT_FRAME
from txamqp091.core.states import ConnectionState
from txamqp091.core.testing import (
    DEFAULT_SERVER_PROPERTIES,
    ServerFrames,
    StaticCredentials,
    open_channel,
    open_connection,
    parse_client_frames,
    parse_client_methods,
)
from txamqp091.exceptions import (
    AMQPHeartbeatTimeout,
    AuthenticationError,
    ChannelWrongStateError,
    ConnectionClosedByBroker,
    ConnectionClosedByClient,
    ConnectionWrongStateError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    StreamLostError,
)

F = ServerFrames()
CAPABILITIES = {
    "publisher_confirms": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "authentication_failure_close": True,
}


def sent_methods(conn: Connection) -> list[tuple[int, spec.Method]]:
    return parse_client_methods(conn.data_to_send())


# -- handshake -------------------------------------------------------------------------


def test_full_handshake() -> None:
    credentials = StaticCredentials("PLAIN", b"\x00user\x00secret")
    client_properties = {"product": "app", "capabilities": CAPABILITIES}
    conn = Connection(
        credentials=credentials,
        virtual_host="/vh",
        client_properties=client_properties,
        locale="fr_FR",
    )
    assert conn.state is ConnectionState.AWAIT_START
    assert conn.data_to_send() == spec.PROTOCOL_HEADER
    assert conn.data_to_send() == b""

    assert conn.receive_data(F.start(b"AMQPLAIN PLAIN"), 0.0) == []
    assert conn.state is ConnectionState.AWAIT_TUNE
    assert conn.server_properties == DEFAULT_SERVER_PROPERTIES
    assert credentials.asked == [b"AMQPLAIN PLAIN"]
    assert parse_client_frames(conn.data_to_send()) == [
        (
            spec.FRAME_METHOD,
            0,
            spec.ConnectionStartOk(
                client_properties=client_properties,
                mechanism="PLAIN",
                response=b"\x00user\x00secret",
                locale="fr_FR",
            ),
        )
    ]

    assert conn.receive_data(F.secure(b"challenge"), 0.0) == []
    assert conn.state is ConnectionState.AWAIT_TUNE
    assert credentials.asked[-1] == b"challenge"
    assert sent_methods(conn) == [(0, spec.ConnectionSecureOk(response=b"\x00user\x00secret"))]

    assert conn.receive_data(F.tune(2047, 131072, 60), 0.0) == []
    assert conn.state is ConnectionState.AWAIT_OPEN_OK
    assert sent_methods(conn) == [
        (0, spec.ConnectionTuneOk(channel_max=2047, frame_max=131072, heartbeat=60)),
        (0, spec.ConnectionOpen(virtual_host="/vh")),
    ]

    events = conn.receive_data(F.open_ok(), 0.0)
    assert events == [
        ConnectionOpened(
            server_properties=DEFAULT_SERVER_PROPERTIES,
            channel_max=2047,
            frame_max=131072,
            heartbeat=60,
        )
    ]
    assert conn.is_open and not conn.is_closed
    assert conn.data_to_send() == b""
    assert repr(conn) == "<core.Connection open channels=0>"


def test_client_properties_default_to_an_empty_table() -> None:
    conn = new_connection()
    conn.receive_data(F.start(), 0.0)
    [(_, start_ok)] = sent_methods(conn)
    assert isinstance(start_ok, spec.ConnectionStartOk)
    assert start_ok.client_properties == {}
    assert start_ok.locale == "en_US"


def test_external_mechanism() -> None:
    conn = new_connection(credentials=StaticCredentials("EXTERNAL", b""))
    conn.receive_data(F.start(b"PLAIN EXTERNAL"), 0.0)
    [(_, start_ok)] = sent_methods(conn)
    assert isinstance(start_ok, spec.ConnectionStartOk)
    assert (start_ok.mechanism, start_ok.response) == ("EXTERNAL", b"")


def test_mechanism_not_offered_is_an_authentication_error() -> None:
    conn = new_connection(credentials=StaticCredentials("EXTERNAL", b""))
    events = conn.receive_data(F.start(b"AMQPLAIN PLAIN"), 0.0)
    closed = closed_with(events)
    assert isinstance(closed.error, AuthenticationError)
    assert "EXTERNAL" in str(closed.error) and "AMQPLAIN PLAIN" in str(closed.error)
    assert conn.is_closed
    assert conn.data_to_send() == b""  # no Start-Ok with credentials the broker cannot use
    assert conn.receive_data(F.tune(), 0.0) == []


def test_secure_that_the_credentials_cannot_answer_ends_the_connection() -> None:
    """``PlainCredentials.response_for`` raises for a challenge; receive_data must not."""
    from txamqp091.params import PlainCredentials

    conn = new_connection(credentials=PlainCredentials("guest", "guest"))
    conn.receive_data(F.start(b"PLAIN"), 0.0)
    conn.data_to_send()
    events = conn.receive_data(F.secure(b"what?"), 0.0)
    closed = closed_with(events)
    assert isinstance(closed.error, AuthenticationError)
    assert conn.is_closed


def test_unsupported_protocol_version_in_start() -> None:
    conn = new_connection()
    events = conn.receive_data(F.start(version_major=0, version_minor=8), 0.0)
    assert protocol_error_code(events) == spec.NOT_IMPLEMENTED
    [(_, close)] = sent_methods(conn)
    assert isinstance(close, spec.ConnectionClose) and close.reply_code == 540


# -- negotiation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "server", "expected"),
    [(0, 0, 99), (0, 10, 10), (10, 0, 10), (10, 20, 10), (20, 10, 10), (7, 7, 7)],
)
def test_negotiate(client: int, server: int, expected: int) -> None:
    assert negotiate(client, server, 99) == expected


@pytest.mark.parametrize(
    ("client", "server", "expected"),
    [
        (None, 60, 60),
        (None, 0, 0),
        (0, 60, 0),
        (0, 0, 0),
        (30, 60, 30),
        (90, 60, 60),
        (30, 0, 30),
        (lambda s: s * 2, 60, 120),
        (lambda s: 0, 60, 0),
    ],
)
def test_negotiate_heartbeat(client: Any, server: int, expected: int) -> None:
    assert negotiate_heartbeat(client, server) == expected


@pytest.mark.parametrize(
    ("requested", "proposed", "expected"),
    [
        # channel_max, frame_max, heartbeat
        ((2047, 131072, None), (2047, 131072, 60), (2047, 131072, 60)),
        ((0, 0, None), (0, 0, 0), (65535, 2**31 - 1, 0)),
        ((100, 8192, 10), (2047, 131072, 60), (100, 8192, 10)),
        ((4000, 200000, 90), (2047, 131072, 60), (2047, 131072, 60)),
        ((0, 0, 30), (500, 65536, 0), (500, 65536, 30)),
        ((10, 1000, 0), (0, 0, 60), (10, 4096, 0)),  # frame_max never below FRAME_MIN_SIZE
    ],
)
def test_tune_negotiation(
    requested: tuple[int, int, int | None],
    proposed: tuple[int, int, int],
    expected: tuple[int, int, int],
) -> None:
    conn = new_connection(channel_max=requested[0], frame_max=requested[1], heartbeat=requested[2])
    conn.receive_data(F.start() + F.tune(*proposed), 0.0)
    methods = [m for _, m in sent_methods(conn)]
    assert methods[1] == spec.ConnectionTuneOk(
        channel_max=expected[0], frame_max=expected[1], heartbeat=expected[2]
    )
    assert (conn.channel_max, conn.frame_max, conn.heartbeat) == expected
    [opened] = conn.receive_data(F.open_ok(), 0.0)
    assert opened == ConnectionOpened(
        server_properties=DEFAULT_SERVER_PROPERTIES,
        channel_max=expected[0],
        frame_max=expected[1],
        heartbeat=expected[2],
    )
    assert conn.next_deadline() == (expected[2] / 2 if expected[2] else None)


def test_heartbeat_callable_sees_the_broker_proposal() -> None:
    asked: list[int] = []

    def choose(server: int) -> int:
        asked.append(server)
        return 15

    conn = open_connection(heartbeat=choose, server_heartbeat=580)
    assert asked == [580]
    assert conn.heartbeat == 15


def test_heartbeat_out_of_range_ends_the_connection_without_raising() -> None:
    conn = new_connection(heartbeat=lambda s: 70000)
    events = conn.receive_data(F.start() + F.tune(), 0.0)
    closed = closed_with(events)
    assert "heartbeat must be between 0 and 65535" in closed.reply_text
    assert conn.is_closed


# -- broker close during the handshake ---------------------------------------------------


def test_access_refused_while_awaiting_tune_is_probable_authentication_error() -> None:
    conn = new_connection()
    conn.receive_data(F.start(), 0.0)
    conn.data_to_send()
    text = "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN"
    events = conn.receive_data(F.close(403, text, 10, 11), 0.0)
    closed = closed_with(events)
    assert isinstance(closed.error, ProbableAuthenticationError)
    assert (closed.reply_code, closed.reply_text) == (403, text)
    assert text in str(closed.error)
    assert sent_methods(conn) == [(0, spec.ConnectionCloseOk())]
    assert conn.is_closed


@pytest.mark.parametrize("code", [403, 530])
def test_refused_vhost_is_probable_access_denied(code: int) -> None:
    conn = new_connection(virtual_host="nope")
    conn.receive_data(F.start() + F.tune(), 0.0)
    conn.data_to_send()
    events = conn.receive_data(F.close(code, "NOT_ALLOWED - vhost nope not found", 10, 40), 0.0)
    closed = closed_with(events)
    assert isinstance(closed.error, ProbableAccessDeniedError)
    assert closed.reply_code == code
    assert sent_methods(conn) == [(0, spec.ConnectionCloseOk())]


@pytest.mark.parametrize("stage", ["start", "tune"])
def test_other_close_codes_during_handshake_are_closed_by_broker(stage: str) -> None:
    conn = new_connection()
    if stage == "tune":
        conn.receive_data(F.start(), 0.0)
    events = conn.receive_data(F.close(541, "INTERNAL_ERROR"), 0.0)
    closed = closed_with(events)
    assert isinstance(closed.error, ConnectionClosedByBroker)
    assert closed.error.reply_code == 541


# -- connection_lost -----------------------------------------------------------------------


def _in_state(state: ConnectionState) -> Connection:
    conn = new_connection(virtual_host="/v")
    if state is ConnectionState.AWAIT_TUNE:
        conn.receive_data(F.start(), 0.0)
    elif state is ConnectionState.AWAIT_OPEN_OK:
        conn.receive_data(F.start() + F.tune(), 0.0)
    elif state is ConnectionState.OPEN:
        conn = open_connection()
    elif state is ConnectionState.CLOSING:
        conn = open_connection()
        conn.close()
    assert conn.state is state
    return conn


@pytest.mark.parametrize(
    ("state", "error_type"),
    [
        (ConnectionState.AWAIT_START, StreamLostError),
        (ConnectionState.AWAIT_TUNE, ProbableAuthenticationError),
        (ConnectionState.AWAIT_OPEN_OK, ProbableAccessDeniedError),
        (ConnectionState.OPEN, StreamLostError),
        (ConnectionState.CLOSING, None),
    ],
)
def test_connection_lost_in_each_state(state: ConnectionState, error_type: type | None) -> None:
    conn = _in_state(state)
    events = conn.connection_lost("reset by peer")
    closed = closed_with(events)
    if error_type is None:
        # We asked to close with 200 and the socket went: that is the end we wanted.
        assert closed == ConnectionClosed(reply_code=200, reply_text="Normal shutdown", error=None)
    else:
        assert type(closed.error) is error_type
        assert "reset by peer" in str(closed.error)
    assert conn.is_closed
    assert conn.connection_lost() == []
    assert conn.next_deadline() is None


def test_connection_lost_while_closing_with_an_error_code() -> None:
    conn = open_connection()
    conn.close(320, "going away")
    closed = closed_with(conn.connection_lost())
    assert isinstance(closed.error, StreamLostError)
    assert "connection lost" in str(closed.error)


def test_connection_lost_after_close_completed() -> None:
    conn = open_connection()
    conn.close()
    conn.receive_data(F.close_ok(), 0.0)
    assert conn.connection_lost() == []


# -- close ---------------------------------------------------------------------------------


def test_client_close_handshake() -> None:
    conn = open_connection()
    conn.close()
    assert conn.state is ConnectionState.CLOSING
    assert sent_methods(conn) == [
        (0, spec.ConnectionClose(reply_code=200, reply_text="Normal shutdown"))
    ]
    with pytest.raises(ConnectionWrongStateError):
        conn.close()
    with pytest.raises(ConnectionWrongStateError):
        conn.open_channel()
    events = conn.receive_data(F.close_ok(), 0.0)
    assert events == [ConnectionClosed(reply_code=200, reply_text="closed by client", error=None)]
    assert conn.is_closed
    assert conn.data_to_send() == b""
    with pytest.raises(ConnectionWrongStateError, match="closed"):
        conn.close()


def test_client_close_with_an_error_code() -> None:
    conn = open_connection()
    conn.close(320, "x" * 300)
    [(_, close)] = sent_methods(conn)
    assert isinstance(close, spec.ConnectionClose)
    assert close.reply_code == 320 and close.reply_text == "x" * 255
    closed = closed_with(conn.receive_data(F.close_ok(), 0.0))
    assert isinstance(closed.error, ConnectionClosedByClient)
    assert closed.reply_code == closed.error.reply_code == 320


def test_while_closing_only_close_and_close_ok_count() -> None:
    conn = open_connection()
    open_channel(conn)
    conn.update_secret(b"s", "r")
    conn.close()
    conn.data_to_send()
    noise = (
        F.deliver(1, "ctag", 1, b"late")
        + F.start()  # not allowed in any late state, but ignored while closing
        + F.open_ok()
        + F.blocked()
        + F.heartbeat()
        + F.update_secret_ok()  # the answer to a request made before closing
    )
    assert conn.receive_data(noise, 0.0) == [
        ConnectionBlocked(reason="low on memory"),
        MethodReply(channel_id=0, method=spec.ConnectionUpdateSecretOk()),
    ]
    assert conn.state is ConnectionState.CLOSING
    assert conn.data_to_send() == b""
    assert conn.receive_data(F.unblocked(), 0.0) == [ConnectionUnblocked()]
    assert closed_with(conn.receive_data(F.close_ok(), 0.0)).error is None


def test_simultaneous_close() -> None:
    conn = open_connection()
    conn.close()
    conn.data_to_send()
    events = conn.receive_data(F.close(320, "CONNECTION_FORCED - shutdown") + F.close_ok(), 0.0)
    closed = closed_with(events)
    assert isinstance(closed.error, ConnectionClosedByBroker)
    assert sent_methods(conn) == [(0, spec.ConnectionCloseOk())]


def test_broker_close() -> None:
    conn = open_connection()
    channel = open_channel(conn)
    text = "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
    events = conn.receive_data(F.close(320, text), 0.0)
    assert events == [
        ConnectionClosed(reply_code=320, reply_text=text, error=events[0].error)  # type: ignore[attr-defined]
    ]
    closed = closed_with(events)
    assert isinstance(closed.error, ConnectionClosedByBroker)
    assert (closed.error.reply_code, closed.error.reply_text) == (320, text)
    assert sent_methods(conn) == [(0, spec.ConnectionCloseOk())]
    assert conn.is_closed
    assert conn.receive_data(F.open_ok(), 0.0) == []
    with pytest.raises(ChannelWrongStateError):
        channel.send_method(spec.BasicQos())


# -- blocked, update-secret ----------------------------------------------------------------


def test_blocked_and_unblocked() -> None:
    conn = open_connection()
    assert not conn.is_blocked
    assert conn.receive_data(F.blocked("low on disk"), 0.0) == [
        ConnectionBlocked(reason="low on disk")
    ]
    assert conn.is_blocked
    assert conn.receive_data(F.unblocked(), 0.0) == [ConnectionUnblocked()]
    assert not conn.is_blocked


def test_blocked_before_open_ok() -> None:
    conn = new_connection()
    events = conn.receive_data(F.start() + F.tune() + F.blocked() + F.open_ok(), 0.0)
    assert [type(e) for e in events] == [ConnectionBlocked, ConnectionOpened]
    assert conn.is_blocked


def test_update_secret_round_trip() -> None:
    conn = open_connection()
    conn.update_secret(b"new-token", "token refresh")
    assert sent_methods(conn) == [
        (0, spec.ConnectionUpdateSecret(new_secret=b"new-token", reason="token refresh"))
    ]
    assert conn.receive_data(F.update_secret_ok(), 0.0) == [
        MethodReply(channel_id=0, method=spec.ConnectionUpdateSecretOk())
    ]
    # A second Update-Secret-Ok answers nothing.
    assert protocol_error_code(conn.receive_data(F.update_secret_ok(), 0.0)) == 503


def test_update_secret_needs_an_open_connection() -> None:
    with pytest.raises(ConnectionWrongStateError):
        new_connection().update_secret(b"x", "y")


# -- channel numbers ---------------------------------------------------------------------


def test_channel_ids_are_the_lowest_free_and_reused_after_close() -> None:
    conn = open_connection()
    channels = [open_channel(conn) for _ in range(3)]
    assert [c.channel_id for c in channels] == [1, 2, 3]
    assert conn.channel(2) is channels[1]
    assert repr(conn) == "<core.Connection open channels=3>"
    # The broker closes 2, the client closes 1.
    conn.receive_data(F.channel_close(2), 0.0)
    channels[0].close()
    assert open_channel(conn).channel_id == 2
    # 1 is free only once Close-Ok arrives.
    assert conn.open_channel().channel_id == 4
    conn.receive_data(F.channel_close_ok(1), 0.0)
    assert conn.open_channel().channel_id == 1
    with pytest.raises(KeyError):
        conn.channel(99)


def test_an_explicit_channel_number_is_used_if_free() -> None:
    conn = open_connection(server_channel_max=10)
    assert conn.open_channel(7).channel_id == 7
    assert conn.open_channel().channel_id == 1  # the lowest free number still
    with pytest.raises(ChannelWrongStateError, match="in use"):
        conn.open_channel(7)
    for bad in (0, 11, "3"):
        with pytest.raises(ValueError, match="channel_id"):
            conn.open_channel(bad)  # type: ignore[arg-type]


def test_channel_max_exhaustion() -> None:
    conn = open_connection(server_channel_max=2)
    assert conn.channel_max == 2
    first = open_channel(conn)
    open_channel(conn)
    with pytest.raises(ChannelWrongStateError, match="channel_max"):
        conn.open_channel()
    conn.receive_data(F.channel_close(first.channel_id), 0.0)
    assert conn.open_channel().channel_id == 1


def test_open_channel_before_open() -> None:
    with pytest.raises(ConnectionWrongStateError):
        new_connection().open_channel()


# -- heartbeats ------------------------------------------------------------------------------


def test_no_heartbeat_means_no_deadline() -> None:
    conn = open_connection(server_heartbeat=0)
    assert conn.next_deadline() is None
    assert conn.tick(1e9) == []
    assert conn.data_to_send() == b""


def test_heartbeat_sent_every_half_interval_while_idle() -> None:
    conn = open_connection(server_heartbeat=10, now=100.0)
    assert conn.heartbeat == 10
    # Tune-Ok and Open went out in the first half interval.
    assert conn.next_deadline() == 105.0
    assert conn.tick(105.0) == []
    assert conn.data_to_send() == b""
    assert conn.next_deadline() == 110.0
    # Idle for a whole half interval: a heartbeat, and again each half interval.
    for now in (110.0, 115.0):
        conn.receive_data(F.heartbeat(), now)
        assert conn.tick(now) == []
        assert conn.data_to_send() == HEARTBEAT_FRAME
        assert conn.next_deadline() == now + 5


def test_heartbeat_not_sent_when_data_was_sent() -> None:
    conn = open_connection(server_heartbeat=10, now=0.0)
    channel = open_channel(conn, now=1.0)
    conn.tick(5.0)
    conn.data_to_send()
    channel.publish("", "q", b"x")
    assert conn.data_to_send()  # written at 7.0
    assert conn.tick(10.0) == []
    assert conn.data_to_send() == b""
    assert conn.tick(15.0) == []
    assert conn.data_to_send() == HEARTBEAT_FRAME


def test_tick_before_the_deadline_does_nothing() -> None:
    conn = open_connection(server_heartbeat=10, now=0.0)
    assert conn.tick(4.9) == []
    assert conn.data_to_send() == b""
    assert conn.next_deadline() == 5.0


def test_silent_broker_times_out_after_two_intervals() -> None:
    conn = open_connection(server_heartbeat=10, now=0.0)
    for now in (5.0, 10.0, 15.0):
        assert conn.tick(now) == []
        conn.data_to_send()
    assert conn.next_deadline() == 20.0
    assert conn.tick(19.99) == []
    events = conn.tick(20.0)
    closed = closed_with(events)
    assert isinstance(closed.error, AMQPHeartbeatTimeout)
    assert "20" in str(closed.error)
    assert conn.is_closed
    assert conn.next_deadline() is None
    assert conn.tick(100.0) == []
    assert conn.receive_data(F.heartbeat(), 21.0) == []


def test_received_data_resets_the_timeout() -> None:
    conn = open_connection(server_heartbeat=10, now=0.0)
    assert conn.receive_data(F.heartbeat(), 18.0) == []
    assert conn.tick(20.0) == []
    assert conn.next_deadline() == 25.0
    conn.data_to_send()
    assert conn.tick(37.99) == []
    assert conn.tick(38.0)[0].error.__class__ is AMQPHeartbeatTimeout  # type: ignore[attr-defined]


def test_partial_frames_count_as_life() -> None:
    conn = open_connection(server_heartbeat=10, now=0.0)
    conn.receive_data(F.heartbeat()[:3], 19.0)
    assert conn.tick(20.0) == []


def test_heartbeats_stop_after_close() -> None:
    conn = open_connection(server_heartbeat=10, now=0.0)
    conn.close()
    conn.receive_data(F.close_ok(), 1.0)
    assert conn.next_deadline() is None
    assert conn.tick(50.0) == []
