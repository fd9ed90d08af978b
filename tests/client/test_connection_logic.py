"""ConnectionLogic on its own, against the fake broker: handshake, close, errors, the
publish gate, heartbeats and read-side backpressure (no adapter, no sockets, no sleeps)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.client.support import Wire
from txamqp091.client.channel import ChannelLogic
from txamqp091.exceptions import (
    AMQPHeartbeatTimeout,
    ChannelClosedByBroker,
    ConnectionBlockedTimeout,
    ConnectionClosedByBroker,
    ProbableAuthenticationError,
)
from txamqp091.params import ConnectionParameters
from txamqp091.testing import FakeBroker


def channel_of(wire: Wire) -> ChannelLogic[Any]:
    wire.result(wire.client._opened)
    channel: ChannelLogic[Any] = wire.result(wire.client.channel())
    return channel


def test_the_handshake_opens_with_the_negotiated_limits() -> None:
    broker = FakeBroker(frame_max=8192, channel_max=10)
    wire = Wire(broker, ConnectionParameters(heartbeat=0, client_properties={"x": "y"}))
    wire.result(wire.client._opened)
    assert wire.client.is_open and not wire.client.is_closed
    negotiated = wire.client.negotiated
    assert (negotiated.frame_max, negotiated.channel_max, negotiated.heartbeat) == (8192, 10, 0)
    assert wire.client.server_properties["product"] == "RabbitMQ"
    assert wire.server.client_properties["x"] == "y" and wire.server.is_open


def test_a_refused_login_fails_the_opening() -> None:
    wire = Wire(FakeBroker(users={"app": "secret"}))
    error = wire.error(wire.client._opened)
    assert isinstance(error, ProbableAuthenticationError)
    assert wire.lost and not wire.client.is_open


def test_a_scripted_refusal_fails_the_opening_whatever_the_credentials() -> None:
    broker = FakeBroker()
    broker.script("refuse-login")
    wire = Wire(broker)
    assert isinstance(wire.error(wire.client._opened), ProbableAuthenticationError)
    assert broker.accepted == 1 and broker.connections == []


def test_close_asked_by_the_client_fires_closed_with_none() -> None:
    wire = Wire(FakeBroker())
    wire.result(wire.client._opened)
    channel = channel_of(wire)
    closed = wire.client.closed
    assert wire.result(wire.client.close()) is None
    assert closed.done and closed.value is None
    assert not channel.is_open and wire.server.method_names()[-1] == "connection.close"
    assert wire.lost and wire.broker.connections == []


def test_the_broker_closing_the_connection_fails_what_waits() -> None:
    broker = FakeBroker()
    wire = Wire(broker)
    channel = channel_of(wire)
    closed = wire.client.closed
    pending = channel.basic_get("nowhere-yet")  # answered only after the broker's close
    wire.server.close(320, "CONNECTION_FORCED - test")
    wire.flush()
    assert closed.done and isinstance(closed.value, ConnectionClosedByBroker)
    assert closed.value.reply_code == 320
    assert pending.done and pending.error is not None
    assert not channel.is_open and wire.lost


def test_a_channel_error_closes_only_that_channel() -> None:
    wire = Wire(FakeBroker())
    first, second = channel_of(wire), channel_of(wire)
    error = wire.error(first.queue_declare("missing", passive=True))
    assert isinstance(error, ChannelClosedByBroker) and error.reply_code == 404
    assert not first.is_open and second.is_open and wire.client.is_open
    assert wire.result(second.queue_declare("there")).queue == "there"


def test_publishes_wait_while_the_broker_blocks_the_connection() -> None:
    broker = FakeBroker()
    wire = Wire(broker)
    channel = channel_of(wire)
    wire.result(channel.queue_declare("q"))
    wire.server.block()
    wire.flush()
    assert wire.client.is_blocked
    held = channel.basic_publish("", "q", b"held")
    wire.flush()
    assert not held.done and broker.bodies("q") == []
    wire.server.unblock()
    wire.flush()
    assert held.done and held.error is None and broker.bodies("q") == [b"held"]


def test_blocked_callbacks_hear_the_reason_and_the_unblock() -> None:
    wire = Wire(FakeBroker())
    channel_of(wire)  # the handshake is done
    heard: list[str | None] = []
    wire.client.add_on_blocked_callback(heard.append)
    wire.server.block()
    wire.flush()
    wire.server.unblock()
    wire.flush()
    assert len(heard) == 2 and isinstance(heard[0], str) and heard[1] is None


def test_a_publish_blocked_longer_than_blocked_connection_timeout_fails() -> None:
    wire = Wire(FakeBroker(), ConnectionParameters(blocked_connection_timeout=5.0))
    channel = channel_of(wire)
    wire.server.block()
    wire.flush()
    held = channel.basic_publish("", "q", b"too late")
    wire.advance(4.9)
    assert not held.done
    wire.advance(0.2)
    assert isinstance(held.error, ConnectionBlockedTimeout)
    wire.server.unblock()
    wire.flush()
    assert wire.server.published == []  # never sent once it failed


def test_publishes_wait_while_the_transport_pushes_back() -> None:
    broker = FakeBroker()
    wire = Wire(broker)
    channel = channel_of(wire)
    wire.result(channel.queue_declare("q"))
    wire.client.pause_writing()
    first, second = channel.basic_publish("", "q", b"1"), channel.basic_publish("", "q", b"2")
    wire.flush()
    assert not first.done and broker.bodies("q") == []
    wire.client.resume_writing()
    wire.flush()
    assert first.done and second.done and broker.bodies("q") == [b"1", b"2"]


def test_a_silent_broker_is_a_heartbeat_timeout() -> None:
    broker = FakeBroker(heartbeat=10)
    wire = Wire(broker, ConnectionParameters(heartbeat=10))
    wire.result(wire.client._opened)
    assert wire.client.negotiated.heartbeat == 10
    closed = wire.client.closed
    wire.advance(15)
    assert wire.client.is_open  # the client's own heartbeats went out; the broker is quiet
    wire.advance(30)
    assert closed.done and isinstance(closed.value, AMQPHeartbeatTimeout)
    assert wire.runtime.closed_with is True  # aborted: a dead peer takes no close


def test_consumers_that_fall_behind_pause_reading_until_drained() -> None:
    broker = FakeBroker()
    wire = Wire(broker)
    wire.client.max_buffered, wire.client.resume_buffered = 4, 2
    channel = channel_of(wire)
    wire.result(channel.queue_declare("q"))
    consumer = wire.result(channel.basic_consume("q"))
    for n in range(6):
        broker.publish("", "q", str(n).encode())
    wire.flush()
    assert wire.runtime.reading_paused
    for n in range(6, 9):  # written by the broker, held back by the paused transport
        broker.publish("", "q", str(n).encode())
    wire.flush()
    taken = [wire.result(consumer.get()).body for _ in range(3)]
    assert wire.runtime.reading_paused and len(consumer._buffer) == 3
    # Down to resume_buffered: reading resumes and the three held deliveries arrive
    # (which pauses reading again, at five buffered).
    taken.append(wire.result(consumer.get()).body)
    assert len(consumer._buffer) == 5 and wire.runtime.reading_paused
    taken += [wire.result(consumer.get()).body for _ in range(5)]
    assert taken == [str(n).encode() for n in range(9)]


def test_update_secret_is_answered() -> None:
    wire = Wire(FakeBroker())
    wire.result(wire.client._opened)
    wire.result(wire.client.update_secret("new-token", "refresh"))
    assert "connection.update-secret" in wire.server.method_names()


@pytest.mark.parametrize("clean", [True, False])
def test_losing_the_transport_ends_every_channel(clean: bool) -> None:
    wire = Wire(FakeBroker())
    channel = channel_of(wire)
    closed = channel.closed
    if clean:
        wire.server.drop()
        wire.flush()
    else:
        wire.disconnect("reset by peer")
    assert closed.done and closed.value is not None and not channel.is_open
    assert wire.client.is_closed


def test_a_delivery_class_deriving_from_message_is_routed_to_its_consumer() -> None:
    """_dispatch routes Message by exact type; a subclass goes through the handler
    table, by its nearest base (it raised KeyError: the table had no entry)."""
    from dataclasses import dataclass

    from txamqp091.message import Message

    @dataclass(slots=True, eq=False, repr=False)
    class Tagged(Message):
        note: str = "tagged"

    broker = FakeBroker()
    wire = Wire(broker)
    channel = channel_of(wire)
    wire.client._core.delivery_class = Tagged
    wire.result(channel.queue_declare("q"))
    consumer = wire.result(channel.basic_consume("q"))
    for body in (b"one", b"two"):  # two reads, and then one read of two deliveries
        broker.publish("", "q", body)
        wire.flush()
    broker.publish("", "q", b"three")
    broker.publish("", "q", b"four")
    wire.flush()
    got = [wire.result(consumer.get()) for _ in range(4)]
    assert [m.body for m in got] == [b"one", b"two", b"three", b"four"]
    assert all(type(m) is Tagged and m.channel is channel for m in got)
    assert Tagged in wire.client._handlers  # found once, by its base


def test_an_event_class_without_a_handler_still_raises() -> None:
    wire = Wire(FakeBroker())
    wire.result(wire.client._opened)

    class Unknown:
        pass

    with pytest.raises(KeyError):
        wire.client._dispatch([Unknown()])  # type: ignore[list-item]


def test_the_buffered_count_pauses_and_resumes_at_its_bounds_in_every_order() -> None:
    """_buffered_changed's shortcut (reading on, under the bound, no consumer named)
    changes nothing the full rule would not: pause at max_buffered, resume at
    resume_buffered, a full consumer holds the pause whatever the total."""
    wire = Wire(FakeBroker())
    wire.result(wire.client._opened)
    client = wire.client
    client.max_buffered, client.resume_buffered = 4, 2
    changed = client._buffered_changed
    seen: list[tuple[int, bool]] = []
    for delta in (1, 1, 1, 1, -1, -1, 1, -1, -1, -1):  # up to 4, down to 0
        changed(delta)
        seen.append((client._buffered, wire.runtime.reading_paused))
    assert seen == [
        (1, False),
        (2, False),
        (3, False),
        (4, True),  # the bound: reading stops
        (3, True),
        (2, False),  # down to resume_buffered: reading again
        (3, False),
        (2, False),
        (1, False),
        (0, False),
    ]
    consumer = object()
    changed(1, consumer, True)  # a consumer over its own bound, the total low
    assert wire.runtime.reading_paused
    changed(1)  # the shortcut must not apply while reading is stopped
    assert wire.runtime.reading_paused
    changed(-1, consumer, False)
    assert not wire.runtime.reading_paused
