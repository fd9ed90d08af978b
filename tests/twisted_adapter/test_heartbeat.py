"""Heartbeats on the reactor's clock: sent when idle, and a silent broker detected."""

from __future__ import annotations

from tests.twisted_adapter.support import Wire, assert_no_result, result_of
from txamqp091.core import spec
from txamqp091.exceptions import AMQPHeartbeatTimeout
from txamqp091.twisted.testing import FakeBroker, connected

INTERVAL = 10


def heartbeats(wire: Wire) -> int:
    return sum(f.frame_type == spec.FRAME_HEARTBEAT and f.channel_id == 0 for f in wire.sent())


def test_idle_client_sends_a_heartbeat_every_half_interval() -> None:
    wire = Wire()
    wire.open(heartbeat=INTERVAL)
    sent_at = []
    for step in range(1, 61):  # 30 s in half-second steps
        wire.clock.advance(0.5)
        if heartbeats(wire):
            sent_at.append(step / 2)
        if step % 10 == 0:
            wire.feed(wire.frames.heartbeat())  # the broker stays alive
    # Tune-Ok and Open went out in the first half interval: that was traffic enough.
    assert sent_at == [10.0, 15.0, 20.0, 25.0, 30.0]


def test_no_heartbeat_while_other_frames_leave() -> None:
    wire = Wire()
    conn = wire.open(heartbeat=INTERVAL)
    ch = wire.channel(conn)
    for _ in range(4):
        wire.clock.advance(INTERVAL / 2 - 1)
        ch.basic_publish("", "q", b"traffic")
        sent = wire.sent()
        assert sent and all(f.frame_type != spec.FRAME_HEARTBEAT for f in sent)
        wire.feed(wire.frames.heartbeat())
        wire.clock.advance(1)
        assert heartbeats(wire) == 0


def test_silent_broker_is_detected_after_two_intervals() -> None:
    wire = Wire()
    conn = wire.open(heartbeat=INTERVAL)
    closed = conn.closed
    for _ in range(2 * INTERVAL * 2 - 1):
        wire.clock.advance(0.5)
    assert_no_result(closed)
    assert conn.is_open
    assert heartbeats(wire) >= 1  # we kept talking
    wire.clock.advance(0.5)
    error = result_of(closed)
    assert isinstance(error, AMQPHeartbeatTimeout)
    assert not conn.is_open
    assert wire.transport.disconnected  # aborted, not closed politely
    assert wire.clock.getDelayedCalls() == []  # no timers left behind


def test_any_frame_from_the_broker_counts_as_life() -> None:
    wire = Wire()
    conn = wire.open(heartbeat=INTERVAL)
    ch = wire.channel(conn)
    for _ in range(10):
        wire.clock.advance(INTERVAL)
        ch.basic_qos(prefetch_count=1)
        wire.sent()
        wire.feed(wire.frames.qos_ok(ch.channel_number))
    assert conn.is_open


def test_fake_broker_heartbeats_keep_a_long_idle_connection_open() -> None:
    broker = FakeBroker(heartbeat=INTERVAL)
    conn, pump = connected(broker)
    assert conn.negotiated.heartbeat == INTERVAL
    pump.advance(10 * INTERVAL)
    assert conn.is_open
    pump.result(conn.close())
