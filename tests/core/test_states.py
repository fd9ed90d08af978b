"""The transition tables and the behaviour, checked against each other pair by pair.

For every state and every method in the spec: a pair missing from
``CONNECTION_TRANSITIONS`` / ``CHANNEL_TRANSITIONS`` is rejected (503
COMMAND_INVALID; 504 once a channel is gone; discarded while closing), and a
pair present is accepted and leads to the state the table names.

For every state and every client input: a pair missing from
``CONNECTION_CLIENT_TRANSITIONS`` / ``CHANNEL_CLIENT_TRANSITIONS`` raises the
wrong-state error and sends nothing, and a pair present leads to the state the
table names and puts on the wire what its action says. Adding or removing an
entry without changing the code (or the reverse) fails here.
"""

from __future__ import annotations

import pytest

from tests.helpers import new_connection, protocol_error_code, sample_method
from txamqp091.core import spec
from txamqp091.core.channel import Channel
from txamqp091.core.connection import Connection
from txamqp091.core.events import ConnectionClosed, Event
from txamqp091.core.states import (
    CHANNEL_CLIENT_TRANSITIONS,
    CHANNEL_TRANSITIONS,
    CONNECTION_CLIENT_TRANSITIONS,
    CONNECTION_TRANSITIONS,
    OPEN_CHANNEL_METHODS,
    Action,
    ChannelInput,
    ChannelState,
    ConnectionInput,
    ConnectionState,
)
from txamqp091.core.testing import (
    ServerFrames,
    open_connection,
    parse_client_methods,
    parse_published_messages,
)
from txamqp091.exceptions import ChannelWrongStateError, ConnectionWrongStateError

F = ServerFrames()
ALL_METHODS = list(spec.METHODS.values())
C = ConnectionState
H = ChannelState


def broker_sends(method_class: type[spec.Method], channel_id: int) -> bytes:
    """A well-formed broker frame sequence for ``method_class``.

    On a channel, content-carrying methods come with their header and body; on
    channel 0 (where content is a framing error of its own, see test_parser)
    only the method frame is sent.
    """
    if method_class is spec.ConnectionStart:
        return F.method(channel_id, spec.ConnectionStart(mechanisms=b"PLAIN"))
    method = sample_method(method_class)
    if method_class.HAS_CONTENT and channel_id:
        return F.content(channel_id, method, spec.BasicProperties(message_id="m"), b"body")
    return F.method(channel_id, method)


# -- connection ------------------------------------------------------------------------------


def connection_in(state: ConnectionState) -> Connection:
    if state is C.CLOSED:
        conn = open_connection()
        conn.receive_data(F.close(), 0.0)  # the broker closes it
    elif state is C.OPEN or state is C.CLOSING:
        conn = open_connection()
        if state is C.CLOSING:
            conn.close()
    else:
        conn = new_connection()
        if state is not C.AWAIT_START:
            conn.receive_data(F.start(), 0.0)
        if state is C.AWAIT_OPEN_OK:
            conn.receive_data(F.tune(), 0.0)
    conn.data_to_send()
    assert conn.state is state
    return conn


LIVE_CONNECTION_STATES = [C.AWAIT_START, C.AWAIT_TUNE, C.AWAIT_OPEN_OK, C.OPEN]


def test_connection_table_covers_every_state_but_closed() -> None:
    assert {s for s, _ in CONNECTION_TRANSITIONS} == set(C) - {C.CLOSED}
    assert all(index in spec.METHODS for _, index in CONNECTION_TRANSITIONS)
    assert all(spec.METHODS[i].CLASS_ID == 10 for _, i in CONNECTION_TRANSITIONS)


@pytest.mark.parametrize(
    ("state", "method_class"),
    [
        (s, m)
        for s in LIVE_CONNECTION_STATES
        for m in ALL_METHODS
        if (s, m.INDEX) not in CONNECTION_TRANSITIONS
    ],
    ids=lambda v: v.value if isinstance(v, ConnectionState) else v.NAME,
)
def test_connection_rejects_pairs_missing_from_the_table(
    state: ConnectionState, method_class: type[spec.Method]
) -> None:
    conn = connection_in(state)
    events = conn.receive_data(broker_sends(method_class, 0), 0.0)
    assert protocol_error_code(events) == spec.COMMAND_INVALID
    [(_, close)] = parse_client_methods(conn.data_to_send())
    assert isinstance(close, spec.ConnectionClose) and close.reply_code == 503
    assert method_class.NAME in close.reply_text


@pytest.mark.parametrize(
    "method_class",
    [m for m in ALL_METHODS if (C.CLOSING, m.INDEX) not in CONNECTION_TRANSITIONS],
    ids=lambda m: m.NAME,
)
def test_closing_connection_ignores_pairs_missing_from_the_table(
    method_class: type[spec.Method],
) -> None:
    conn = connection_in(C.CLOSING)
    assert conn.receive_data(broker_sends(method_class, 0), 0.0) == []
    assert conn.state is C.CLOSING
    assert conn.data_to_send() == b""


@pytest.mark.parametrize(
    ("state", "index", "next_state"),
    [(s, i, n) for (s, i), n in CONNECTION_TRANSITIONS.items()],
    ids=lambda v: v.value if isinstance(v, ConnectionState) else spec.METHODS[v].NAME,
)
def test_connection_accepts_pairs_in_the_table(
    state: ConnectionState, index: int, next_state: ConnectionState
) -> None:
    conn = connection_in(state)
    method_class = spec.METHODS[index]
    if method_class is spec.ConnectionUpdateSecretOk:
        conn._update_secret_pending = 1  # a request is outstanding
    events = conn.receive_data(broker_sends(method_class, 0), 0.0)
    assert conn.state is next_state
    errors = [e for e in events if isinstance(e, ConnectionClosed)]
    if next_state is C.CLOSED:
        # Close (and Close-Ok) end the connection, but not with a protocol error.
        [closed] = errors
        assert closed.reply_code != spec.COMMAND_INVALID
    else:
        assert errors == []


# -- channels --------------------------------------------------------------------------------


def channel_in(state: ChannelState) -> tuple[Connection, Channel]:
    conn = open_connection()
    channel = conn.open_channel()
    if state is not H.OPENING:
        conn.receive_data(F.channel_open_ok(channel.channel_id), 0.0)
    if state is H.CLOSING or state is H.CLOSED:
        channel.close()
    if state is H.CLOSED:
        conn.receive_data(F.channel_close_ok(channel.channel_id), 0.0)
    conn.data_to_send()
    assert channel.state is state
    return conn, channel


def test_channel_table_covers_every_state_but_closed() -> None:
    assert {s for s, _ in CHANNEL_TRANSITIONS} == set(H) - {H.CLOSED}
    assert {i for s, i in CHANNEL_TRANSITIONS if s is H.OPEN} == {
        spec.ChannelClose.INDEX,
        *(m.INDEX for m in OPEN_CHANNEL_METHODS),
    }


@pytest.mark.parametrize(
    ("state", "method_class"),
    [
        (s, m)
        for s in (H.OPENING, H.OPEN)
        for m in ALL_METHODS
        if (s, m.INDEX) not in CHANNEL_TRANSITIONS
    ],
    ids=lambda v: v.value if isinstance(v, ChannelState) else v.NAME,
)
def test_channel_rejects_pairs_missing_from_the_table(
    state: ChannelState, method_class: type[spec.Method]
) -> None:
    conn, channel = channel_in(state)
    events = conn.receive_data(broker_sends(method_class, channel.channel_id), 0.0)
    assert protocol_error_code(events) == spec.COMMAND_INVALID
    assert method_class.NAME in events[-1].reply_text  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "method_class",
    [m for m in ALL_METHODS if (H.CLOSING, m.INDEX) not in CHANNEL_TRANSITIONS],
    ids=lambda m: m.NAME,
)
def test_closing_channel_discards_pairs_missing_from_the_table(
    method_class: type[spec.Method],
) -> None:
    conn, channel = channel_in(H.CLOSING)
    assert conn.receive_data(broker_sends(method_class, channel.channel_id), 0.0) == []
    assert channel.state is H.CLOSING
    assert conn.data_to_send() == b""


@pytest.mark.parametrize("method_class", ALL_METHODS, ids=lambda m: m.NAME)
def test_closed_channel_rejects_everything_with_channel_error(
    method_class: type[spec.Method],
) -> None:
    conn, channel = channel_in(H.CLOSING)
    conn.receive_data(F.channel_close_ok(channel.channel_id), 0.0)
    assert channel.state is H.CLOSED
    events = conn.receive_data(broker_sends(method_class, channel.channel_id), 0.0)
    assert protocol_error_code(events) == spec.CHANNEL_ERROR


@pytest.mark.parametrize("method_class", ALL_METHODS, ids=lambda m: m.NAME)
def test_any_method_while_content_is_due_is_unexpected_frame(
    method_class: type[spec.Method],
) -> None:
    conn, channel = channel_in(H.OPEN)
    deliver = spec.BasicDeliver(consumer_tag="c", delivery_tag=1)
    conn.receive_data(F.method(channel.channel_id, deliver), 0.0)
    events = conn.receive_data(broker_sends(method_class, channel.channel_id), 0.0)
    assert protocol_error_code(events) == spec.UNEXPECTED_FRAME


def _request_for(index: int) -> spec.Method | None:
    """A client request the method ``index`` answers, or None if the broker sends it unasked."""
    for request_class in ALL_METHODS:
        if index in request_class.REPLIES and request_class.CLASS_ID != 10:
            request = sample_method(request_class)
            if "nowait" in request.FIELDS:
                request.nowait = False  # type: ignore[attr-defined]
            return request
    return None


@pytest.mark.parametrize(
    ("state", "index", "next_state"),
    [(s, i, n) for (s, i), n in CHANNEL_TRANSITIONS.items()],
    ids=lambda v: v.value if isinstance(v, ChannelState) else spec.METHODS[v].NAME,
)
def test_channel_accepts_pairs_in_the_table(
    state: ChannelState, index: int, next_state: ChannelState
) -> None:
    conn, channel = channel_in(state)
    method_class = spec.METHODS[index]
    unasked = (spec.BasicDeliver, spec.BasicReturn, spec.BasicAck, spec.BasicNack)
    broker_initiated = (spec.ChannelFlow, spec.BasicCancel, spec.ChannelClose, *unasked)
    if state is H.OPEN and method_class not in broker_initiated:
        request = _request_for(index)
        assert request is not None, method_class.NAME
        channel.send_method(request)
        conn.data_to_send()
    if state is H.OPEN and method_class in (spec.BasicAck, spec.BasicNack):
        # A confirm must name a publish made in confirm mode (else 503 COMMAND_INVALID).
        channel.send_method(spec.ConfirmSelect())
        conn.receive_data(F.confirm_select_ok(channel.channel_id), 0.0)
        tag = sample_method(method_class).delivery_tag  # type: ignore[attr-defined]
        for _ in range(tag):
            channel.publish("", "q", b"m")
        conn.data_to_send()
    events: list[Event] = conn.receive_data(broker_sends(method_class, channel.channel_id), 0.0)
    assert not any(isinstance(e, ConnectionClosed) for e in events), events
    assert channel.state is next_state
    if state is H.CLOSING and method_class is spec.ChannelClose:
        # Simultaneous close: we answer the broker's Close while waiting for our Close-Ok.
        assert parse_client_methods(conn.data_to_send()) == [(1, spec.ChannelCloseOk())]


# -- what the client starts: connection ------------------------------------------------------

CONNECTION_CALLS = {
    ConnectionInput.OPEN_CHANNEL: lambda conn: conn.open_channel(),
    ConnectionInput.UPDATE_SECRET: lambda conn: conn.update_secret(b"token", "rotated"),
    ConnectionInput.CLOSE: lambda conn: conn.close(320, "going away"),
}
#: What each input puts on the wire when its action sends at once: (channel, method).
CONNECTION_SENDS = {
    ConnectionInput.OPEN_CHANNEL: (1, spec.ChannelOpen()),
    ConnectionInput.UPDATE_SECRET: (
        0,
        spec.ConnectionUpdateSecret(new_secret=b"token", reason="rotated"),
    ),
    ConnectionInput.CLOSE: (0, spec.ConnectionClose(reply_code=320, reply_text="going away")),
}
ALL_CONNECTION_STATES = list(C)


def test_every_connection_input_is_tested() -> None:
    assert set(CONNECTION_CALLS) == set(CONNECTION_SENDS) == set(ConnectionInput)
    assert {i for _, i in CONNECTION_CLIENT_TRANSITIONS} == set(ConnectionInput)


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (s, i)
        for s in ALL_CONNECTION_STATES
        for i in ConnectionInput
        if (s, i) not in CONNECTION_CLIENT_TRANSITIONS
    ],
    ids=lambda v: v.name,
)
def test_connection_input_missing_from_the_table_is_a_wrong_state_error(
    state: ConnectionState, event: ConnectionInput
) -> None:
    conn = connection_in(state)
    with pytest.raises(ConnectionWrongStateError, match=f"cannot {event.value}: .*{state.value}"):
        CONNECTION_CALLS[event](conn)
    assert conn.state is state
    assert conn.data_to_send() == b""


@pytest.mark.parametrize(
    ("state", "event", "action", "next_state"),
    [(s, i, a, n) for (s, i), (a, n) in CONNECTION_CLIENT_TRANSITIONS.items()],
    ids=lambda v: v.name,
)
def test_connection_input_in_the_table_does_its_action(
    state: ConnectionState, event: ConnectionInput, action: Action, next_state: ConnectionState
) -> None:
    conn = connection_in(state)
    CONNECTION_CALLS[event](conn)
    assert conn.state is next_state
    # Every connection action sends one method at once, SEND_CLOSE and ALLOCATE_CHANNEL
    # included (the channel is the lowest free number: 1 on a fresh connection).
    assert action in (Action.SEND, Action.SEND_CLOSE, Action.ALLOCATE_CHANNEL)
    assert parse_client_methods(conn.data_to_send()) == [CONNECTION_SENDS[event]]
    assert conn.close_requested is (event is ConnectionInput.CLOSE)


def test_close_requested_stays_true_after_close_ok_and_is_false_for_other_ends() -> None:
    conn = open_connection()
    assert not conn.close_requested
    conn.close()
    conn.receive_data(F.close_ok(), 0.0)
    assert conn.is_closed and conn.close_requested
    by_broker = connection_in(C.CLOSED)
    assert by_broker.is_closed and not by_broker.close_requested
    failed = open_connection()
    failed.receive_data(F.qos_ok(9), 0.0)  # a frame on a channel never opened
    assert failed.is_closed and not failed.close_requested


# -- what the client starts: channels --------------------------------------------------------

#: A method that expects no reply, so Action.SEND puts it on the wire at once even
#: while Channel.Open is the request in flight; Action.HOLD keeps it back.
NO_REPLY = spec.QueueDelete(queue="q", nowait=True)
CHANNEL_CALLS = {
    ChannelInput.SEND: lambda ch: ch.send_method(NO_REPLY),
    ChannelInput.PUBLISH: lambda ch: ch.publish("ex", "rk", b"payload"),
    ChannelInput.CLOSE: lambda ch: ch.close(200, "bye"),
}
ALL_CHANNEL_STATES = list(H)


def test_every_channel_input_is_in_the_table() -> None:
    assert {i for _, i in CHANNEL_CLIENT_TRANSITIONS} == set(ChannelInput)
    # A Channel object is made CLOSED and opened at once; nothing else opens it.
    assert [s for s, i in CHANNEL_CLIENT_TRANSITIONS if i is ChannelInput.OPEN] == [H.CLOSED]


def _client_input(channel: Channel, event: ChannelInput) -> None:
    if event is ChannelInput.OPEN:
        # Only Connection.open_channel() reaches it, on a new Channel (state CLOSED);
        # the other states are reached through the channel's own transition step.
        channel._start(event)
    else:
        CHANNEL_CALLS[event](channel)


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (s, i)
        for s in ALL_CHANNEL_STATES
        for i in ChannelInput
        if (s, i) not in CHANNEL_CLIENT_TRANSITIONS
    ],
    ids=lambda v: v.name,
)
def test_channel_input_missing_from_the_table_is_a_wrong_state_error(
    state: ChannelState, event: ChannelInput
) -> None:
    conn, channel = channel_in(state)
    with pytest.raises(ChannelWrongStateError, match=f"channel 1 is {state.value}"):
        _client_input(channel, event)
    assert channel.state is state
    assert conn.data_to_send() == b""


@pytest.mark.parametrize(
    ("state", "event", "action", "next_state"),
    [(s, i, a, n) for (s, i), (a, n) in CHANNEL_CLIENT_TRANSITIONS.items()],
    ids=lambda v: v.name,
)
def test_channel_input_in_the_table_does_its_action(
    state: ChannelState, event: ChannelInput, action: Action, next_state: ChannelState
) -> None:
    if event is ChannelInput.OPEN:
        # (CLOSED, OPEN): a number a close released is opened again by a new Channel.
        conn, closed = channel_in(H.CLOSED)
        channel = conn.open_channel()
        assert channel.channel_id == closed.channel_id
        assert channel.state is next_state
        assert action is Action.SEND
        assert parse_client_methods(conn.data_to_send()) == [(1, spec.ChannelOpen())]
        return
    conn, channel = channel_in(state)
    if event is ChannelInput.CLOSE:
        # A request waiting its turn, for SEND_CLOSE to drop: in OPENING the Qos waits
        # behind Channel.Open; in OPEN behind the first Qos.
        if state is H.OPEN:
            channel.send_method(spec.BasicQos(prefetch_count=1))
        channel.send_method(spec.BasicQos(prefetch_count=2))
        conn.data_to_send()
    CHANNEL_CALLS[event](channel)
    assert channel.state is next_state
    sent = conn.data_to_send()
    if action is Action.SEND_CLOSE:
        assert parse_client_methods(sent) == [
            (1, spec.ChannelClose(reply_code=200, reply_text="bye"))
        ]
        # The waiting Qos is gone: the Close-Ok that ends the close sends nothing more.
        conn.receive_data(F.channel_close_ok(1), 0.0)
        assert conn.data_to_send() == b""
    elif action is Action.SEND:
        if event is ChannelInput.PUBLISH:
            assert [m.body for m in parse_published_messages(sent)] == [b"payload"]
        else:
            assert parse_client_methods(sent) == [(1, NO_REPLY)]
    else:
        assert action is Action.HOLD
        assert sent == b""
        conn.receive_data(F.channel_open_ok(1), 0.0)
        assert [m.body for m in parse_published_messages(conn.data_to_send())] == [b"payload"]


@pytest.mark.parametrize(
    ("state", "event"),
    [(s, i) for s, i in CHANNEL_CLIENT_TRANSITIONS if i is not ChannelInput.OPEN],
    ids=lambda v: v.name,
)
@pytest.mark.parametrize("connection_state", [C.CLOSING, C.CLOSED], ids=lambda v: v.name)
def test_channel_inputs_need_an_open_connection(
    state: ChannelState, event: ChannelInput, connection_state: ConnectionState
) -> None:
    conn, channel = channel_in(state)
    if connection_state is C.CLOSING:
        conn.close()
    else:
        conn.receive_data(F.close(), 0.0)
    conn.data_to_send()
    with pytest.raises(ChannelWrongStateError, match=f"connection is {connection_state.value}"):
        CHANNEL_CALLS[event](channel)
    assert channel.state is state
    assert conn.data_to_send() == b""
