"""The bound on buffered deliveries, per consumer, on both adapters with the fake broker.

A consumer without a callback keeps deliveries until ``get()`` takes them. Once one
consumer holds ``max_buffered`` of them (default 10,000; settable per consumer), its
connection stops reading, so TCP holds the broker back, and a warning names that
consumer; reading starts again when ``get()`` has taken it down to half. The
connection keeps a higher, connection-wide bound (``max_buffered``, 20,000) for many
consumers each under their own. Everything here runs on the fake broker in memory:
Twisted's ``Pump`` on a ``task.Clock``, and an asyncio loop driven turn by turn, so
nothing sleeps and the counts are exact.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.logger import formatEvent, globalLogPublisher

from txamqp091 import ConnectionParameters
from txamqp091.client.connection import ConnectionLogic
from txamqp091.client.consumer import ConsumerLogic
from txamqp091.testing import FakeBroker as SansIOBroker
from txamqp091.testing.asyncio import MemoryEndpoint
from txamqp091.tornado import connect as tornado_connect
from txamqp091.twisted.testing import FakeBroker as TwistedBroker
from txamqp091.twisted.testing import connected


class TwistedDriver:
    """A Twisted connection to the fake broker, on a ``task.Clock`` and a ``Pump``."""

    name = "twisted"

    def __init__(self) -> None:
        self.broker = TwistedBroker()
        self.lines: list[str] = []
        globalLogPublisher.addObserver(self._observe)  # type: ignore[arg-type]
        self.conn, self.pump = connected(self.broker)

    def _observe(self, event: dict[str, Any]) -> None:
        self.lines.append(formatEvent(event))

    def result(self, waitable: Any) -> Any:
        return self.pump.result(waitable)

    def settle(self) -> None:
        self.pump.flush()

    @property
    def paused(self) -> bool:
        return bool(self.pump.client_transport.producerState == "paused")

    def close(self) -> None:
        globalLogPublisher.removeObserver(self._observe)  # type: ignore[arg-type]
        self.result(self.conn.close())


class AsyncioDriver(logging.Handler):
    """A Tornado/asyncio connection to the fake broker through ``MemoryEndpoint``, on a
    loop of its own that the test turns by hand (bytes move one loop turn after they
    are written, as on a socket)."""

    name = "tornado"

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        logging.getLogger("txamqp091").addHandler(self)
        self.loop = asyncio.new_event_loop()
        self.broker = SansIOBroker()
        self.endpoint = MemoryEndpoint(self.broker)
        self.conn = self.result(tornado_connect(ConnectionParameters(), endpoint=self.endpoint))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def result(self, waitable: Any) -> Any:
        self.settle()
        return self.loop.run_until_complete(asyncio.wait_for(waitable, 5))

    def settle(self) -> None:
        for _ in range(50):  # a few loop turns: both sides go quiet
            self.loop.run_until_complete(asyncio.sleep(0))

    @property
    def paused(self) -> bool:
        return not self.endpoint.transports[-1].is_reading()

    def close(self) -> None:
        logging.getLogger("txamqp091").removeHandler(self)
        try:
            self.result(self.conn.close())
        finally:
            self.loop.close()


@pytest.fixture(params=[TwistedDriver, AsyncioDriver], ids=["twisted", "tornado"])
def driver(request: pytest.FixtureRequest) -> Iterator[Any]:
    made = request.param()
    try:
        yield made
    finally:
        made.close()


def consume(driver: Any, queue: str, bound: int | None = None) -> Any:
    """A buffering consumer (no callback) on a channel of its own; with ``bound``,
    set before any delivery can arrive (the queue is filled afterwards)."""
    ch = driver.result(driver.conn.channel())
    driver.result(ch.queue_declare(queue))
    consumer = driver.result(ch.basic_consume(queue))
    if bound is not None:
        consumer.max_buffered = bound
    return consumer


def fill(driver: Any, queue: str, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        driver.broker.publish("", queue, b"%d" % n)
    driver.settle()


def take(driver: Any, consumer: Any, count: int) -> list[bytes]:
    bodies = []
    for _ in range(count):
        message = driver.result(consumer.get())
        message.ack()
        bodies.append(message.body)
    driver.settle()
    return bodies


def warnings(driver: Any) -> list[str]:
    return [line for line in driver.lines if "max_buffered" in line]


def test_the_documented_defaults() -> None:
    assert ConsumerLogic.max_buffered == 10_000
    assert (ConnectionLogic.max_buffered, ConnectionLogic.resume_buffered) == (20_000, 10_000)


def test_a_consumer_at_its_bound_stops_the_reading_until_get_takes_it_to_half(
    driver: Any,
) -> None:
    consumer = consume(driver, "slow", bound=4)
    fill(driver, "slow", 3)
    assert len(consumer._buffer) == 3 and not driver.paused
    assert warnings(driver) == []
    fill(driver, "slow", 1, start=3)
    assert len(consumer._buffer) == 4 and driver.paused
    (line,) = warnings(driver)  # one clear line, naming the consumer and its queue
    assert consumer.consumer_tag in line and "slow" in line and "holds 4 unread" in line
    assert "down to 2" in line and "basic_qos" in line
    # Reading stopped: what the broker sends now waits in the transport, not in memory.
    fill(driver, "slow", 6, start=4)
    assert len(consumer._buffer) == 4 and driver.paused
    assert take(driver, consumer, 1) == [b"0"]
    assert driver.paused  # 3 left: above half the bound
    assert take(driver, consumer, 1) == [b"1"]
    # Down to 2: reading again; the held deliveries arrive (and stop it once more).
    assert len(consumer._buffer) >= 4 and driver.paused
    assert take(driver, consumer, 8) == [b"%d" % n for n in range(2, 10)]
    assert not driver.paused and len(consumer._buffer) == 0
    assert len(warnings(driver)) == 2  # once per time it stopped the reading


def test_the_bound_is_per_consumer_not_per_connection(driver: Any) -> None:
    busy = consume(driver, "busy")  # the default bound: 10,000
    slow = consume(driver, "slow", bound=5)
    # 50 buffered in one consumer: far under its own bound, reading goes on.
    fill(driver, "busy", 50)
    assert len(busy._buffer) == 50 and not driver.paused
    fill(driver, "slow", 5)
    assert driver.paused
    (line,) = warnings(driver)
    assert slow.consumer_tag in line and busy.consumer_tag not in line
    # Taking from the busy consumer does not help: the slow one is still full.
    take(driver, busy, 50)
    assert driver.paused
    take(driver, slow, 3)
    assert not driver.paused


def test_the_connection_wide_bound_still_holds_many_consumers(driver: Any) -> None:
    driver.conn.max_buffered, driver.conn.resume_buffered = 12, 6
    first, second = consume(driver, "a"), consume(driver, "b")
    fill(driver, "a", 6)
    fill(driver, "b", 5)
    assert not driver.paused  # 11: each far under its own bound of 10,000
    fill(driver, "b", 1, start=5)
    assert driver.paused and warnings(driver) == []  # the connection's bound, no consumer's
    take(driver, first, 5)
    assert driver.paused  # 7 left: above the connection's resume mark
    take(driver, second, 1)
    assert not driver.paused


def test_what_get_takes_leaves_the_connection_wide_count(driver: Any) -> None:
    # Delivery and get() each move the connection's count on their fast path (reading
    # on, under both bounds): a count that only grew would stop the reading by the
    # second round here, though nothing stays buffered.
    driver.conn.max_buffered, driver.conn.resume_buffered = 12, 6
    consumer = consume(driver, "steady")
    for round_ in range(4):
        fill(driver, "steady", 10, start=10 * round_)
        assert len(consumer._buffer) == 10 and not driver.paused
        assert take(driver, consumer, 10) == [
            b"%d" % n for n in range(10 * round_, 10 * round_ + 10)
        ]
        assert not driver.paused
    fill(driver, "steady", 12, start=40)
    assert driver.paused  # the bound itself still holds
    take(driver, consumer, 12)
    assert not driver.paused


def test_a_cancelled_consumer_over_its_bound_lets_the_others_read(driver: Any) -> None:
    other = consume(driver, "other")
    full = consume(driver, "full", bound=3)
    fill(driver, "full", 3)
    assert driver.paused
    assert driver.result(full.cancel()) == 3  # handed back (nacked): nothing stays buffered
    assert not driver.paused
    fill(driver, "other", 2)
    assert take(driver, other, 2) == [b"0", b"1"]
    assert sorted(driver.broker.bodies("full")) == [b"0", b"1", b"2"]


# -- a surviving channel's consumer across a reconnect (the shared layer, on a fake runtime) --


def test_a_surviving_consumer_keeps_its_bound_on_the_next_connection() -> None:
    from tests.client.support import Wire
    from txamqp091.client.recovering import SurvivingChannel
    from txamqp091.client.session import RecoverySession

    broker = SansIOBroker()
    broker.declare_queue("q")
    first = Wire(broker)
    first.result(first.client._opened)
    session: RecoverySession[Any] = RecoverySession(first.runtime, None)
    session.attach(first.client)
    channel: SurvivingChannel[Any] = first.result(session.channel(SurvivingChannel))
    consumer = first.result(channel.basic_consume("q"))
    consumer.max_buffered = 3
    for n in range(3):
        broker.publish("", "q", b"%d" % n)
    first.flush()
    assert len(consumer._buffer) == 3 and first.runtime.reading_paused

    first.disconnect()
    session.detach()
    second = Wire(broker)  # the next connection; the broker requeued the three
    second.result(second.client._opened)
    session.attach(second.client)
    second.flush()
    # The dead deliveries were dropped (they cannot be acked) and delivered again on the
    # new connection: over the bound there too, so it stops reading as well.
    assert [m.body for m in consumer._buffer] == [b"0", b"1", b"2"]
    assert all(m._channel is channel._inner for m in consumer._buffer)
    assert second.runtime.reading_paused
    # The new connection counts only its own deliveries (never below zero).
    assert second.client._buffered == 3
    for expected in (b"0", b"1"):
        message = second.result(consumer.get())
        assert message.body == expected
        message.ack()
    assert not second.runtime.reading_paused and second.client._buffered == 1


# -- a stopped reading is not a dead broker --------------------------------------------------


def test_a_consumer_over_its_bound_does_not_end_the_connection_by_heartbeat() -> None:
    """While the connection does not read, the broker's heartbeats wait in the socket:
    that silence is ours, so it must not count as a dead broker (two intervals would
    otherwise end the connection with a heartbeat timeout). Ours still go out."""
    broker = TwistedBroker()
    conn, pump = connected(broker, ConnectionParameters(heartbeat=10))
    ch = pump.result(conn.channel())
    pump.result(ch.queue_declare("q"))
    consumer = pump.result(ch.basic_consume("q"))
    consumer.max_buffered = 1
    broker.publish("", "q", b"x")
    pump.flush()
    assert pump.client_transport.producerState == "paused"
    pump.advance(100)  # ten heartbeat intervals without reading
    assert conn.is_open and pump.client_transport.producerState == "paused"
    message = pump.result(consumer.get())
    message.ack()
    pump.flush()
    assert conn.is_open and pump.client_transport.producerState == "producing"
    assert broker.bodies("q") == []


def test_a_silent_broker_still_times_out_while_reading() -> None:
    from tests.client.support import Wire

    wire = Wire(SansIOBroker(), ConnectionParameters(heartbeat=10))
    wire.result(wire.client._opened)
    wire.server.receive_data = lambda data: None  # type: ignore[method-assign]
    wire.advance(25)  # the broker says nothing for more than two intervals
    assert not wire.client.is_open
