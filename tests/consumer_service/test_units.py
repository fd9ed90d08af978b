"""The consumer service's pure parts: the redelivery count, the log rate limit, the
one-line traceback, JSON log lines and the metrics' Prometheus text."""

from __future__ import annotations

import io
import json

import pytest
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from txamqp091 import BasicProperties, Message
from txamqp091.metrics import ConsumerMetrics
from txamqp091.twisted.consumer_service.logs import (
    JSONLinesObserver,
    RateLimiter,
    one_line_traceback,
)
from txamqp091.twisted.consumer_service.poison import RedeliveryCounter, message_key
from txamqp091.types import Int64


def message(body: bytes = b"x", message_id: str | None = None, **headers: object) -> Message:
    properties = BasicProperties(message_id=message_id, headers=headers or None)
    return Message(1, "ctag", 7, False, "ex", "rk", properties, body)


def test_local_count_by_message_id_then_by_delivery_identity() -> None:
    counter = RedeliveryCounter()
    assert [counter.failed(message(b"a", "id-1")) for _ in range(3)] == [1, 2, 3]
    # Same id, other body: the same message to the publisher.
    assert counter.failed(message(b"b", "id-1")) == 4
    # No id: counted by exchange, routing key and body.
    assert [counter.failed(message(b"same")) for _ in range(2)] == [1, 2]
    assert message_key(message(b"same")) != message_key(message(b"other"))
    counter.succeeded(message(b"a", "id-1"))
    assert counter.failed(message(b"a", "id-1")) == 1


def test_the_broker_delivery_count_wins_when_it_is_larger() -> None:
    counter = RedeliveryCounter()
    # x-delivery-count 4: four earlier failed deliveries (another consumer, a restart).
    assert counter.failed(message(b"q", "id", **{"x-delivery-count": 4})) == 5
    assert counter.failed(message(b"q", "id2", **{"x-delivery-count": "junk"})) == 1
    # As decoded from the wire: RabbitMQ sends the count as a signed 64-bit field.
    assert counter.failed(message(b"q", "id3", **{"x-delivery-count": Int64(2)})) == 3


def test_the_local_count_is_bounded() -> None:
    counter = RedeliveryCounter(max_entries=3)
    for i in range(5):
        counter.failed(message(message_id=f"id-{i}"))
    assert len(counter) == 3
    assert counter.failed(message(message_id="id-0")) == 1  # the oldest was forgotten
    assert counter.failed(message(message_id="id-4")) == 2
    with pytest.raises(ValueError, match="max_entries"):
        RedeliveryCounter(0)


def test_rate_limiter_allows_a_burst_then_a_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(lambda: now[0], rate=2.0, burst=3)
    assert [limiter.allow() for _ in range(5)] == [True, True, True, False, False]
    assert limiter.take_suppressed() == 2 and limiter.take_suppressed() == 0
    now[0] = 0.5  # one token back
    assert [limiter.allow(), limiter.allow()] == [True, False]
    now[0] = 100.0  # never more than the burst
    assert sum(limiter.allow() for _ in range(10)) == 3


def _failure() -> Failure:
    def inner() -> None:
        raise ValueError("bad\nbody")

    try:
        inner()
    except ValueError:
        return Failure()
    raise AssertionError


def test_one_line_traceback() -> None:
    text = one_line_traceback(_failure())
    assert text.startswith("ValueError: bad")
    assert "in inner <- " in text and "test_units.py:" in text
    assert one_line_traceback(Failure(KeyError("k"))) == "KeyError: 'k'"


def test_json_lines_observer() -> None:
    out = io.StringIO()
    log = Logger(namespace="t", observer=JSONLinesObserver(out))
    log.info("consuming {queue!r}", queue="orders", obj=object())
    log.failure("handler failed {tag}", _failure(), tag=5)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "consuming 'orders'" and first["queue"] == "orders"
    assert first["level"] == LogLevel.info.name and first["namespace"] == "t"
    assert "obj" not in first
    assert second["level"] == "critical" and second["tag"] == 5
    assert "ValueError: bad" in second["traceback"]


def test_metrics_snapshot_and_prometheus_text() -> None:
    metrics = ConsumerMetrics(buckets=(0.1, 1.0))
    metrics.received += 3
    metrics.acked += 2
    metrics.rejected += 1
    metrics.dead_lettered += 1
    metrics.connected = 1
    for seconds in (0.05, 0.5, 5.0):
        metrics.observe_duration(seconds)
    snapshot = metrics.snapshot()
    assert snapshot["received"] == 3 and snapshot["handler_duration_count"] == 3
    assert metrics.cumulative_buckets() == [("0.1", 1), ("1.0", 2), ("+Inf", 3)]
    body, content_type = metrics.exposition()
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert "txamqp091_consumer_received_total 3.0" in text
    assert "txamqp091_consumer_dead_lettered_total 1.0" in text
    assert 'txamqp091_consumer_handler_duration_seconds_bucket{le="1.0"} 2.0' in text
    assert "txamqp091_consumer_handler_duration_seconds_sum 5.55" in text
    assert "txamqp091_consumer_connected 1.0" in text
    # Two consumers in one process each have their own registry.
    assert ConsumerMetrics().registry is not metrics.registry
