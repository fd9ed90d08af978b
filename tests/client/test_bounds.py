"""Resource bounds of the client layer: the confirm window and the message size.

- ``max_unconfirmed`` (default 10,000): in confirm mode a channel has at most
  that many publishes waiting for the broker's ack; a further ``basic_publish``
  waits, unsent, and leaves in order as acks and nacks make room.
- ``max_message_size`` (default 128 MiB, RabbitMQ's default): a larger body is
  refused at ``basic_publish`` (and from the broker, by the core, from the
  content header: see ``tests/hostile``).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.client.support import Wire
from txamqp091 import ConnectionParameters
from txamqp091.client.channel import ChannelLogic
from txamqp091.exceptions import ChannelClosedByClient, NackError
from txamqp091.testing import FakeBroker


def confirming(**params: Any) -> tuple[Wire, ChannelLogic[Any]]:
    wire = Wire(FakeBroker(), ConnectionParameters(**params))
    wire.result(wire.client._opened)
    ch: ChannelLogic[Any] = wire.result(wire.client.channel())
    wire.result(ch.queue_declare("q"))
    wire.result(ch.confirm_delivery())
    return wire, ch


def stored(wire: Wire) -> list[bytes]:
    return [m.body for m in wire.broker.messages("q")]


def test_defaults() -> None:
    params = ConnectionParameters()
    assert params.max_unconfirmed == 10_000
    assert params.max_message_size == 128 * 1024 * 1024


def test_a_full_window_holds_publishes_until_acks_make_room() -> None:
    wire, ch = confirming(max_unconfirmed=3)
    wire.server.hold_confirms = True
    pending = [ch.basic_publish("", "q", str(n).encode()) for n in range(7)]
    wire.flush()
    assert stored(wire) == [b"0", b"1", b"2"]  # the other four were never sent
    assert not any(p.done for p in pending)
    wire.server.release_confirms(multiple=False)  # three single acks: room for three more
    wire.flush()
    assert [p.done for p in pending] == [True] * 3 + [False] * 4
    assert stored(wire) == [b"0", b"1", b"2", b"3", b"4", b"5"]
    wire.server.release_confirms()
    wire.flush()
    assert stored(wire) == [str(n).encode() for n in range(7)]
    wire.server.release_confirms()
    wire.flush()
    assert all(p.done and p.error is None for p in pending)


def test_a_nack_makes_room_too() -> None:
    wire, ch = confirming(max_unconfirmed=1)
    wire.result(
        ch.queue_declare("one", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    )
    first = ch.basic_publish("", "one", b"kept")
    second = ch.basic_publish("", "one", b"refused")  # waits for the first's ack
    wire.flush()
    assert first.done and first.error is None
    assert isinstance(wire.error(second), NackError)


def test_no_limit_with_zero() -> None:
    wire, ch = confirming(max_unconfirmed=0)
    wire.server.hold_confirms = True
    for _ in range(50):
        ch.basic_publish("", "q", b"m")
    wire.flush()
    assert len(stored(wire)) == 50


def test_held_publishes_fail_when_the_channel_closes() -> None:
    wire, ch = confirming(max_unconfirmed=1)
    wire.server.hold_confirms = True
    sent = ch.basic_publish("", "q", b"sent")
    held = ch.basic_publish("", "q", b"held")
    wire.flush()
    ch.close()
    wire.flush()
    assert isinstance(wire.error(held), ChannelClosedByClient)
    assert isinstance(wire.error(sent), ChannelClosedByClient)
    assert stored(wire) == [b"sent"]


def test_outside_confirm_mode_there_is_no_window() -> None:
    wire = Wire(FakeBroker(), ConnectionParameters(max_unconfirmed=1))
    wire.result(wire.client._opened)
    ch: ChannelLogic[Any] = wire.result(wire.client.channel())
    wire.result(ch.queue_declare("q"))
    waiters = [ch.basic_publish("", "q", b"m") for _ in range(5)]
    wire.flush()
    assert all(w.done for w in waiters) and len(stored(wire)) == 5


def test_a_body_over_max_message_size_is_refused_at_the_call() -> None:
    wire, ch = confirming(max_message_size=1024)
    with pytest.raises(ValueError, match="max_message_size"):
        ch.basic_publish("", "q", b"x" * 1025)
    assert wire.client._core.outgoing_frames == []
    wire.result(ch.basic_publish("", "q", b"x" * 1024))
    assert stored(wire) == [b"x" * 1024]


@pytest.mark.parametrize(
    ("name", "value"), [("max_unconfirmed", -1), ("max_message_size", 0), ("max_unconfirmed", "5")]
)
def test_bad_bounds_are_refused_by_the_parameters(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=name):
        ConnectionParameters(**{name: value})


def test_bounds_from_the_url() -> None:
    from txamqp091 import URLParameters

    params = URLParameters("amqp://localhost/?max_unconfirmed=5&max_message_size=65536")
    assert (params.max_unconfirmed, params.max_message_size) == (5, 65536)
