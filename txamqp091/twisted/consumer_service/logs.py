"""Logging for the consumer service: one line per event, a poison storm rate-limited,
and ``--log-format json`` for log shippers.

Each failed message is one ``twisted.logger`` event whose text fits on one line
(the traceback is folded into it), so ``grep`` and log shippers see one record per
failure. :class:`RateLimiter` keeps a storm of failures from flooding the log:
past a burst, lines are dropped and the next one that gets through says how many.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from typing import IO, Any

from twisted.logger import ILogObserver, LogEvent, formatEvent
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["JSONLinesObserver", "RateLimiter", "one_line_traceback"]


class RateLimiter:
    """A token bucket: ``burst`` lines at once, then ``rate`` lines a second."""

    def __init__(self, clock: Callable[[], float], rate: float = 1.0, burst: int = 10) -> None:
        self._clock = clock
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = clock()
        #: Lines dropped since the last one let through.
        self.suppressed = 0

    def allow(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.suppressed += 1
        return False

    def take_suppressed(self) -> int:
        count, self.suppressed = self.suppressed, 0
        return count


def one_line_traceback(failure: Failure, limit: int = 6) -> str:
    """``Error: text`` and the innermost frames as ``file:line in function``, on one line."""
    error = failure.value
    text = f"{type(error).__name__}: {error}"
    frames = []
    tb = failure.getTracebackObject()  # type: ignore[no-untyped-call]
    if tb is not None:
        for frame in traceback.extract_tb(tb)[-limit:]:
            frames.append(f"{frame.filename}:{frame.lineno} in {frame.name}")
    elif failure.frames:
        for name, filename, lineno, _, _ in failure.frames[-limit:]:
            frames.append(f"{filename}:{lineno} in {name}")
    if frames:
        return f"{text} [at {' <- '.join(reversed(frames))}]"
    return text


@implementer(ILogObserver)
class JSONLinesObserver:
    """One JSON object per line: ``time``, ``level``, ``namespace``, ``message`` and the
    event's own simple fields (``queue``, ``delivery_tag``...), for log shippers."""

    def __init__(self, out: IO[str] | None = None) -> None:
        # Taken now: once twistd starts logging, sys.stdout is a file that logs what
        # is written to it, and writing our lines there would loop back to us.
        self._out = out if out is not None else sys.stdout

    def __call__(self, event: LogEvent) -> None:
        record: dict[str, Any] = {
            "time": event.get("log_time"),
            "level": getattr(event.get("log_level"), "name", None),
            "namespace": event.get("log_namespace"),
            "message": formatEvent(event),
        }
        for key, value in event.items():
            if key.startswith(("log_", "_")) or key in record or key in ("message", "format"):
                continue
            if isinstance(value, (str, int, float, bool)) or value is None:
                record[key] = value
        failure = event.get("log_failure")
        if isinstance(failure, Failure):
            record["traceback"] = failure.getTraceback()
        self._out.write(json.dumps(record, default=str) + "\n")
        self._out.flush()
