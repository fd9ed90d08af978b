"""Operations of a surviving channel waiting for a channel to run on, and the blame
bookkeeping for a broker's channel close.

While there is no usable channel (disconnected, or a new one being brought up
to date) operations *park* here, in the order the user issued them; an
operation that was in flight when its channel died comes back into its place
in that order. When the broker closes a channel, every operation it failed is
a *suspect* until all are known; then :meth:`ParkingLot.blame` fails the
culprits and keeps the others for the next channel.
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic

from ..exceptions import PublishTimeout
from .runtime import Runtime, TimerHandle, W

if TYPE_CHECKING:
    from .channel import ChannelLogic

__all__ = ["NOTHING", "Operation", "Parked", "ParkingLot", "quoted_names"]

#: An operation on a channel: returns that channel's waiter.
Operation = Callable[["ChannelLogic[Any]"], Any]

#: No entity names: operations such as basic_qos or confirm_delivery.
NOTHING: frozenset[str] = frozenset()


class Parked(Generic[W]):
    """An operation waiting for a channel (disconnected, or being replaced)."""

    __slots__ = ("operation", "seq", "subjects", "suspect", "timer", "waiter")

    def __init__(self, operation: Operation, waiter: W, seq: int, subjects: frozenset[str]) -> None:
        self.operation = operation
        self.waiter = waiter
        self.timer: TimerHandle | None = None
        #: When the user asked for it: parked operations go out again in this order.
        self.seq = seq
        #: The exchanges and queues it names, to tell whether a channel error was its doing.
        self.subjects = subjects
        #: The channel error it was caught up in, until :meth:`ParkingLot.blame`.
        self.suspect: BaseException | None = None

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def quoted_names(reply_text: str) -> set[str]:
    """The entity names a broker's close text quotes ("NOT_FOUND - no exchange 'x' in
    vhost '/'" -> {"x"}); RabbitMQ quotes the exchange or queue at fault."""
    return set(re.findall(r"'([^']*)'", re.sub(r" in vhost '[^']*'", "", reply_text)))


class ParkingLot(Generic[W]):
    """The parked operations of one surviving channel, in issue order."""

    def __init__(self, runtime: Runtime[W], timeout: Callable[[], float | None]) -> None:
        self._runtime = runtime
        #: The default bound on a park (the session's ``publish_timeout``, read when parking).
        self._timeout = timeout
        self._queue: deque[Parked[W]] = deque()
        self._suspects: list[Parked[W]] = []
        #: Channel closes a replay caused (see :meth:`excuse`).
        self._excused: list[BaseException] = []
        self._seq = itertools.count()

    def __bool__(self) -> bool:
        return bool(self._queue)

    def __len__(self) -> int:
        return len(self._queue)

    def next_seq(self) -> int:
        return next(self._seq)

    def park(
        self,
        operation: Operation,
        waiter: W,
        seq: int,
        subjects: frozenset[str],
        timeout: float | None = None,
    ) -> Parked[W]:
        """Keep ``operation`` until :meth:`take_all`; it fails with ``PublishTimeout`` after
        ``timeout`` (default: the session's ``publish_timeout``)."""
        parked = Parked(operation, waiter, seq, subjects)
        limit = self._timeout() if timeout is None else timeout
        if limit is not None:
            runtime = self._runtime

            def expire() -> None:
                parked.timer = None
                runtime.reject(
                    waiter, PublishTimeout(f"no connection to the broker within {limit} s")
                )

            parked.timer = runtime.call_later(limit, expire)
        queue = self._queue
        if not queue or queue[-1].seq < seq:
            queue.append(parked)
            return parked
        # An operation that was in flight when its channel died comes back: it goes
        # before those the user issued after it, so order survives the reconnect.
        index = len(queue)
        while index > 0 and queue[index - 1].seq > seq:
            index -= 1
        queue.insert(index, parked)
        return parked

    def take_all(self) -> Iterator[Parked[W]]:
        """Every parked operation still wanted, oldest first, their timers stopped."""
        parked, self._queue = self._queue, deque()
        for item in parked:
            item.stop_timer()
            if not self._runtime.is_done(item.waiter):
                yield item

    def fail_all(self, error: BaseException) -> None:
        self._suspects = []
        self._excused = []
        for item in self.take_all():
            self._runtime.reject(item.waiter, error)

    # -- blame --------------------------------------------------------------------------------

    def suspect(self, parked: Parked[W], error: BaseException) -> None:
        """``parked`` was failed by a broker's channel close; :meth:`blame` decides, once
        every operation that close failed is known (on the next loop turn)."""
        parked.suspect = error
        if not self._suspects:
            self._runtime.call_soon(self.blame)
        self._suspects.append(parked)

    def excuse(self, error: BaseException) -> None:
        """The broker's channel close ``error`` failed the replay's last request: a replayed
        record caused it, since what the user sent went out after that request and the
        broker answers a channel's methods in order. None of the operations it failed is
        to blame; they all go out again."""
        self._excused.append(error)

    def blame(self) -> None:
        """Fail the operations that caused a broker's channel close; the others it failed
        go out again on the next channel.

        The culprits are those naming the exchange or queue the close text quotes (a
        publish to a missing exchange, a passive declare of a missing queue); when it
        quotes none of theirs, the first operation the close failed (the request in
        flight). An unknown delivery tag is an acknowledgement's doing: none of them.
        Blaming the oldest publish instead would fail an innocent one per round and send
        the real culprit (and every publish behind it) again and again."""
        suspects, self._suspects = self._suspects, []
        excused, self._excused = self._excused, []
        runtime = self._runtime
        errors: list[BaseException] = []
        for item in suspects:
            if item.suspect is not None and all(item.suspect is not e for e in errors):
                errors.append(item.suspect)
        for error in errors:
            group = [p for p in suspects if p.suspect is error and not runtime.is_done(p.waiter)]
            for item in suspects:
                if item.suspect is error:
                    item.suspect = None
            text = getattr(error, "reply_text", "") or ""
            if "delivery tag" in text or any(error is e for e in excused):
                continue
            named = quoted_names(text)
            culprits = [p for p in group if p.subjects & named] or group[:1]
            for item in culprits:
                if item in self._queue:
                    self._queue.remove(item)
                item.stop_timer()
                runtime.reject(item.waiter, error)

    @property
    def blaming(self) -> bool:
        return bool(self._suspects)
