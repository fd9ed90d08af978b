"""Fixtures for the Twisted adapter tests.

Every test here runs under :func:`logged_failures`: a failure logged through
``twisted.logger`` (``log.failure``, an "Unhandled error in Deferred" found
when a Deferred is garbage-collected, an event at level error or critical) fails the test,
unless the test declared it with ``logged_failures.expect(SomeError)``.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from twisted.logger import LogEvent, LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure


class LoggedFailures:
    """A log observer that keeps every failure logged while a test runs."""

    def __init__(self) -> None:
        self.events: list[LogEvent] = []
        self._expected: list[type[BaseException]] = []

    def __call__(self, event: LogEvent) -> None:
        if event.get("log_failure") is not None:
            self.events.append(event)
        elif event.get("log_level") in (LogLevel.error, LogLevel.critical):
            # Twisted logs "Unhandled error in Deferred:" on its own, then the failure.
            if event.get("log_format") != "Unhandled error in Deferred:":
                self.events.append(event)

    def expect(self, *kinds: type[BaseException]) -> None:
        """Failures of these types may be logged without failing the test."""
        self._expected.extend(kinds)

    def of_type(self, kind: type[BaseException]) -> list[LogEvent]:
        """The logged failures whose exception is a ``kind``."""
        return [e for e in self.events if _failure_is(e, kind)]

    def unexpected(self) -> list[str]:
        return [
            formatEvent(event) + "\n" + _traceback(event)
            for event in self.events
            if not any(_failure_is(event, kind) for kind in self._expected)
        ]


def _failure_is(event: LogEvent, kind: type[BaseException]) -> bool:
    failure = event.get("log_failure")
    return isinstance(failure, Failure) and isinstance(failure.value, kind)


def _traceback(event: LogEvent) -> str:
    failure = event.get("log_failure")
    return failure.getTraceback() if isinstance(failure, Failure) else ""


@pytest.fixture(autouse=True)
def logged_failures() -> Iterator[LoggedFailures]:
    observer = LoggedFailures()
    globalLogPublisher.addObserver(observer)
    try:
        yield observer
        # A Deferred that dies holding a failure logs it when it is collected. What
        # survives is live: freeze it, so that the next test's collection stays cheap.
        gc.collect()
        gc.freeze()
    finally:
        globalLogPublisher.removeObserver(observer)
    problems = observer.unexpected()
    if problems:
        pytest.fail("failures were logged:\n" + "\n".join(problems), pytrace=False)
