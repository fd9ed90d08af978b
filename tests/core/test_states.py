"""The transition tables and the behaviour, checked against each other pair by pair.

For every state and every method in the spec: a pair missing from
``CONNECTION_TRANSITIONS`` / ``CHANNEL_TRANSITIONS`` is rejected (503
COMMAND_INVALID; 504 once a channel is gone; discarded while closing), and a
pair present is accepted and leads to the state the table names. Adding or
removing an entry without changing the code (or the reverse) fails here.
"""

from __future__ import annotations

import pytest

from tests.helpers import new_connection, protocol_error_code, sample_method
from txamqp091.core import spec
from txamqp091.core.channel import Channel
from txamqp091.core.connection import Connection
from txamqp091.core.events import ConnectionClosed, Event
from txamqp091.core.states import (
    CHANNEL_TRANSITIONS,
    CONNECTION_TRANSITIONS,
    OPEN_CHANNEL_METHODS,
    ChannelState,
    ConnectionState,
)
from txamqp091.core.testing import ServerFrames, open_connection, parse_client_methods

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
    if state is C.OPEN or state is C.CLOSING:
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
    if state is H.CLOSING:
        channel.close()
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
    events: list[Event] = conn.receive_data(broker_sends(method_class, channel.channel_id), 0.0)
    assert not any(isinstance(e, ConnectionClosed) for e in events), events
    assert channel.state is next_state
    if state is H.CLOSING and method_class is spec.ChannelClose:
        # Simultaneous close: we answer the broker's Close while waiting for our Close-Ok.
        assert parse_client_methods(conn.data_to_send()) == [(1, spec.ChannelCloseOk())]
