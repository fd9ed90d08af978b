"""A clock for asyncio code that only moves when a test moves it (Twisted's ``task.Clock``
for the Tornado adapter): pass it as ``clock=`` to ``AMQPClient`` or ``connect``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class ManualCall:
    """A call scheduled on a :class:`ManualClock`; ``cancel()`` as asyncio's handles."""

    def __init__(self, when: float, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """``time()`` and ``call_later()`` as an asyncio loop has them; :meth:`advance` runs
    the calls that fall due, in time order, then settles at the new time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[ManualCall] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> ManualCall:
        call = ManualCall(self.now + max(0.0, delay), callback, args)
        self.calls.append(call)
        return call

    def pending(self) -> list[float]:
        """When each call still scheduled falls due, in order."""
        return sorted(c.when for c in self.calls if not c.cancelled)

    def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while True:
            due = [c for c in self.calls if not c.cancelled and c.when <= target]
            if not due:
                break
            call = min(due, key=lambda c: c.when)
            self.calls.remove(call)
            self.now = max(self.now, call.when)
            call.callback(*call.args)
        self.calls = [c for c in self.calls if not c.cancelled]
        self.now = target
