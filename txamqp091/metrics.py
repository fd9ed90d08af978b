"""Consumer metrics: plain counters on the hot path, Prometheus text on scrape.

Any consumer can keep a :class:`ConsumerMetrics` (the ``twistd amqp-consumer``
service does; a Tornado application can too) and count what happens to its
messages. Counting is an integer addition, so it costs the delivery path
nothing measurable. :meth:`ConsumerMetrics.exposition` renders the numbers
with ``prometheus_client`` (the optional ``txamqp091[metrics]`` extra), through
a collector on a registry of the object's own, so two consumers in one process
never collide in the global registry.

Metric names (prefix ``txamqp091_consumer_``): ``received_total``,
``acked_total``, ``requeued_total``, ``rejected_total``,
``dead_lettered_total`` (rejected where the queue has a dead-letter exchange),
``handler_errors_total``, ``handler_duration_seconds`` (histogram),
``in_flight``, ``reconnects_total``, ``connected`` and ``blocked``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

__all__ = ["DURATION_BUCKETS", "ConsumerMetrics", "MetricsUnavailable", "prometheus_available"]

#: Upper bounds (seconds) of the handler duration histogram's buckets.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

PREFIX = "txamqp091_consumer_"

#: Counter name -> help text, in exposition order.
COUNTERS = {
    "received": "Messages delivered to the consumer.",
    "acked": "Messages acked after their handler succeeded.",
    "requeued": "Messages nacked with requeue (handler failure, or handed back on shutdown).",
    "rejected": "Messages rejected without requeue.",
    "dead_lettered": "Rejected messages of a queue with a dead-letter exchange.",
    "handler_errors": "Handler calls that failed.",
    "reconnects": "Connections made after the first one.",
}
GAUGES = {
    "in_flight": "Handlers running now.",
    "connected": "1 while connected to a broker.",
    "blocked": "1 while the broker blocks the connection (resource alarm).",
}


class MetricsUnavailable(RuntimeError):
    """``prometheus_client`` is not installed: ``pip install txamqp091[metrics]``."""


def prometheus_available() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


class ConsumerMetrics:
    """What happened to one consumer's messages, as plain numbers.

    Each counter is an attribute (``metrics.acked += 1`` is how the service counts);
    :meth:`observe_duration` feeds the histogram; :meth:`snapshot` reads them all.
    """

    def __init__(self, buckets: tuple[float, ...] = DURATION_BUCKETS) -> None:
        self.received = 0
        self.acked = 0
        self.requeued = 0
        self.rejected = 0
        self.dead_lettered = 0
        self.handler_errors = 0
        self.reconnects = 0
        self.in_flight = 0
        self.connected = 0
        self.blocked = 0
        self.buckets = tuple(sorted(buckets))
        #: Observations per bucket (not cumulative); the last one is +Inf.
        self._bucket_counts = [0] * (len(self.buckets) + 1)
        self.duration_sum = 0.0
        self.duration_count = 0
        self._registry: Any = None

    def observe_duration(self, seconds: float) -> None:
        self._bucket_counts[bisect_left(self.buckets, seconds)] += 1
        self.duration_sum += seconds
        self.duration_count += 1

    def snapshot(self) -> dict[str, float]:
        """Every counter and gauge by name, plus the histogram's count and sum."""
        values: dict[str, float] = {name: getattr(self, name) for name in (*COUNTERS, *GAUGES)}
        values["handler_duration_count"] = self.duration_count
        values["handler_duration_sum"] = self.duration_sum
        return values

    def cumulative_buckets(self) -> list[tuple[str, int]]:
        """``(upper bound, observations at or below it)``, ending with ``+Inf``."""
        total = 0
        out = []
        for bound, count in zip((*map(_float_label, self.buckets), "+Inf"), self._bucket_counts):
            total += count
            out.append((bound, total))
        return out

    # -- Prometheus --------------------------------------------------------------------------

    @property
    def registry(self) -> Any:
        """A ``prometheus_client.CollectorRegistry`` holding just these metrics."""
        if self._registry is None:
            try:
                from prometheus_client import CollectorRegistry
            except ImportError as exc:
                raise MetricsUnavailable(
                    "prometheus_client is not installed: pip install 'txamqp091[metrics]'"
                ) from exc
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_Collector(self))
            self._registry = registry
        return self._registry

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text format and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _Collector:
    """Reads a :class:`ConsumerMetrics` at scrape time (prometheus_client's custom collector)."""

    def __init__(self, metrics: ConsumerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        metrics = self._metrics
        for name, text in COUNTERS.items():
            yield CounterMetricFamily(PREFIX + name, text, value=getattr(metrics, name))
        for name, text in GAUGES.items():
            yield GaugeMetricFamily(PREFIX + name, text, value=getattr(metrics, name))
        yield HistogramMetricFamily(
            PREFIX + "handler_duration_seconds",
            "Time from handing a message to the handler to its result.",
            buckets=metrics.cumulative_buckets(),
            sum_value=metrics.duration_sum,
        )


def _float_label(bound: float) -> str:
    return repr(float(bound))
