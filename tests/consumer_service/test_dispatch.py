"""ConsumerService's own bookkeeping, on a Clock: the concurrency limit, the failure
policy, the requeue delay and the drain deadline. Deliveries are built by hand and
their settlements recorded; the broker-facing behaviour is in test_end_to_end.py."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import LogEvent, globalLogPublisher

from txamqp091 import BasicProperties, Message
from txamqp091.handling import RejectMessage, RequeueMessage
from txamqp091.twisted.consumer_service import ConsumerService


class Settlements:
    """Stands in for the channel a message came on: records how each was settled."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, dict[str, Any]]] = []
        self.is_open = True

    def _settle(self, message: Message, how: str, **kwargs: Any) -> None:
        self.log.append((message.properties.message_id or "", how, kwargs))

    def _ack(self, message: Message, multiple: bool) -> None:
        self._settle(message, "ack", multiple=multiple)

    def of(self, message_id: str) -> list[str]:
        out = []
        for mid, how, kwargs in self.log:
            if mid == message_id:
                out.append(how if how == "ack" else f"{how} requeue={kwargs['requeue']}")
        return out


class Service:
    def __init__(self, handler: Any, **kwargs: Any) -> None:
        self.clock = Clock()
        self.settled = Settlements()
        self.service = ConsumerService(self.clock, "amqp://localhost/", "q", handler, **kwargs)
        self._tag = 0

    def deliver(self, message_id: str, body: bytes = b"x") -> Message:
        self._tag += 1
        message = Message(1, "ctag", self._tag, False, "", "q",
                          BasicProperties(message_id=message_id), body)  # fmt: skip
        message._channel = self.settled  # type: ignore[assignment]
        self.service._on_message(message)
        return message


@pytest.fixture
def errors() -> Any:
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def test_at_most_concurrency_handlers_run_and_the_rest_wait_in_order() -> None:
    pending: dict[str, Deferred[None]] = {}

    def handler(message: Message) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        pending[message.properties.message_id or ""] = d
        return d

    s = Service(handler, prefetch=10, concurrency=2)
    for i in range(5):
        s.deliver(f"m{i}")
    assert sorted(pending) == ["m0", "m1"] and s.service.in_flight == 2
    pending["m1"].callback(None)
    assert sorted(pending) == ["m0", "m1", "m2"]
    assert s.settled.log == [("m1", "ack", {"multiple": False})]
    for name in ("m0", "m2"):
        pending[name].callback(None)
    assert sorted(pending) == ["m0", "m1", "m2", "m3", "m4"]
    pending["m3"].callback(None)
    pending["m4"].callback(None)
    assert [mid for mid, _, _ in s.settled.log] == ["m1", "m0", "m2", "m3", "m4"]
    assert s.service.metrics.acked == 5 and s.service.metrics.in_flight == 0


def test_synchronous_handlers_do_not_recurse_through_the_waiting_queue() -> None:
    s = Service(lambda message: None, prefetch=1, concurrency=1)
    # 3,000 queued behind one slot (more than the recursion limit): started by a loop.
    for i in range(3000):
        message = Message(1, "ctag", i + 1, False, "", "q",
                          BasicProperties(message_id=f"m{i}"), b"")  # fmt: skip
        message._channel = s.settled  # type: ignore[assignment]
        s.service._waiting.append(message)
    s.service._pump()
    assert s.service.metrics.acked == 3000 and not s.service._waiting


def test_a_failing_message_is_requeued_max_redeliveries_times_then_rejected() -> None:
    s = Service(lambda message: fail(ValueError("boom")), max_redeliveries=2,
                dead_lettering=True)  # fmt: skip
    for _ in range(3):
        s.deliver("bad")
    assert s.settled.of("bad") == ["nack requeue=True", "nack requeue=True", "reject requeue=False"]
    metrics = s.service.metrics
    assert (metrics.requeued, metrics.rejected, metrics.dead_lettered) == (2, 1, 1)
    assert metrics.handler_errors == 3
    # Rejected: forgotten, so a new message that reuses the id starts again.
    s.deliver("bad")
    assert s.settled.of("bad")[-1] == "nack requeue=True"


def test_on_error_reject_and_the_handlers_explicit_outcomes() -> None:
    def handler(message: Message) -> Any:
        if message.body == b"reject":
            raise RejectMessage("no")
        if message.body == b"requeue":
            raise RequeueMessage("later")
        raise ValueError("plain failure")

    s = Service(handler, on_error="reject", max_redeliveries=1)
    s.deliver("plain", b"plain")
    s.deliver("requeue", b"requeue")
    s.deliver("requeue", b"requeue")
    s.deliver("reject", b"reject")
    assert s.settled.of("plain") == ["reject requeue=False"]
    assert s.settled.of("requeue") == ["nack requeue=True", "reject requeue=False"]
    assert s.settled.of("reject") == ["reject requeue=False"]
    assert s.service.metrics.dead_lettered == 0  # no DLX declared


def test_coroutine_and_deferred_handlers_ack() -> None:
    async def coroutine(message: Message) -> str:
        return "done"

    s = Service(coroutine)
    s.deliver("c")
    s2 = Service(lambda message: succeed(1))
    s2.deliver("d")
    assert s.settled.of("c") == ["ack"] and s2.settled.of("d") == ["ack"]


def test_requeue_delay_holds_the_message_unacked() -> None:
    s = Service(lambda message: fail(ValueError("boom")), requeue_delay=2.0)
    s.deliver("bad")
    assert s.settled.log == [] and s.service.health()["held"] == 1
    s.clock.advance(1.9)
    assert s.settled.log == []
    s.clock.advance(0.1)
    assert s.settled.of("bad") == ["nack requeue=True"]
    assert s.service.health()["held"] == 0


def test_drain_requeues_waiting_and_held_then_gives_running_handlers_the_grace() -> None:
    pending: dict[str, Deferred[None]] = {}

    def handler(message: Message) -> Any:
        mid = message.properties.message_id or ""
        if mid.startswith("bad"):
            raise ValueError("boom")
        d: Deferred[None] = Deferred()
        pending[mid] = d
        return d

    s = Service(handler, prefetch=10, concurrency=2, requeue_delay=30.0, shutdown_grace=5.0)
    s.deliver("bad")  # held for 30 s
    s.deliver("quick")
    s.deliver("stuck")
    s.deliver("waiting1")
    s.deliver("waiting2")
    assert s.settled.log == []
    stopped = s.service.stopService()
    # At once: the waiting and the held messages go back to the queue.
    assert s.settled.of("waiting1") == s.settled.of("waiting2") == ["nack requeue=True"]
    assert s.settled.of("bad") == ["nack requeue=True"]
    assert not stopped.called
    # A running handler that finishes within the grace is acked.
    s.clock.advance(1)
    pending["quick"].callback(None)
    assert s.settled.of("quick") == ["ack"] and not stopped.called
    # A message delivered while stopping goes straight back.
    s.deliver("late")
    assert s.settled.of("late") == ["nack requeue=True"]
    s.clock.advance(4)  # the grace is over: the stuck one is requeued
    assert s.settled.of("stuck") == ["nack requeue=True"]
    assert stopped.called
    pending["stuck"].callback(None)  # finishing after the grace settles nothing more
    assert s.settled.of("stuck") == ["nack requeue=True"]
    assert s.service.health()["reason"] == "stopping"


def test_drain_ends_as_soon_as_the_last_handler_finishes() -> None:
    pending: list[Deferred[None]] = []

    def handler(message: Message) -> Deferred[None]:
        pending.append(Deferred())
        return pending[-1]

    s = Service(handler, shutdown_grace=30.0)
    s.deliver("a")
    stopped = s.service.stopService()
    assert not stopped.called
    pending[0].callback(None)
    assert stopped.called and s.settled.of("a") == ["ack"]
    assert s.clock.getDelayedCalls() == []


def test_settling_on_a_dead_channel_counts_as_requeued() -> None:
    pending: list[Deferred[None]] = []

    def handler(message: Message) -> Any:
        if message.body == b"fail":
            raise RejectMessage("no")
        pending.append(Deferred())
        return pending[-1]

    s = Service(handler, dead_lettering=True)
    s.deliver("slow")
    s.settled.is_open = False  # the connection died while the handler ran
    pending[0].callback(None)
    s.deliver("fail", b"fail")
    metrics = s.service.metrics
    assert (metrics.acked, metrics.rejected, metrics.dead_lettered) == (0, 0, 0)
    assert metrics.requeued == 2 and metrics.received == 2, metrics.snapshot()


def test_a_poison_storm_logs_at_most_a_burst_then_counts_the_rest(errors: Any) -> None:
    s = Service(lambda message: fail(ValueError("boom")), max_redeliveries=1000)
    for _ in range(50):
        s.deliver("bad")
    lines = [e for e in errors if "handler failed" in e.get("log_format", "")]
    assert len(lines) == 10
    s.clock.advance(1.0)
    s.deliver("bad")
    lines = [e for e in errors if "handler failed" in e.get("log_format", "")]
    assert len(lines) == 11 and lines[-1]["suppressed"] == 40


class _StreamConsumer:
    """The surviving consumer's part the service uses: the offset it resumes from."""

    def __init__(self) -> None:
        self.next_stream_offset: int | None = None


def stream_delivery(s: Service, offset: int) -> Message:
    s._tag += 1
    props = BasicProperties(message_id=f"o{offset}", headers={"x-stream-offset": offset})
    message = Message(1, "ctag", s._tag, False, "", "q", props, b"x")
    message._channel = s.settled  # type: ignore[assignment]
    consumer = s.service.consumer
    assert isinstance(consumer, _StreamConsumer)
    consumer.next_stream_offset = offset + 1  # what the surviving consumer does
    s.service._on_message(message)
    return message


def test_a_stream_resumes_at_the_oldest_unhandled_offset_after_a_disconnect() -> None:
    pending: dict[str, Deferred[None]] = {}

    def handler(message: Message) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        pending[message.properties.message_id or ""] = d
        return d

    s = Service(handler, prefetch=10, concurrency=2, stream_offset="first")
    assert s.service.stream and s.service.stream_offset == "first"
    consumer = _StreamConsumer()
    s.service.consumer = consumer  # type: ignore[assignment]
    for offset in range(100, 106):
        stream_delivery(s, offset)
    pending["o100"].callback(None)  # 100 handled; 101 and 102 run; 103..105 wait
    assert sorted(pending) == ["o100", "o101", "o102"]
    pending["o102"].callback(None)  # handled out of order: 101 still runs
    assert consumer.next_stream_offset == 106
    s.service._on_disconnected(None)
    # Not 106 (after the last delivered): 103..105 were never handled, nor was 101.
    assert consumer.next_stream_offset == 101
    pending["o101"].callback(None)  # finishes late: read again after the reconnect


def test_a_stream_with_nothing_unhandled_resumes_after_the_last_delivered() -> None:
    s = Service(lambda message: None, prefetch=10, stream_offset=0)
    consumer = _StreamConsumer()
    s.service.consumer = consumer  # type: ignore[assignment]
    for offset in range(3):
        stream_delivery(s, offset)
    s.service._on_disconnected(None)
    assert consumer.next_stream_offset == 3
    assert [how for _, how, _ in s.settled.log] == ["ack"] * 3
