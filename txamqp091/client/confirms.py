"""Publisher confirms: which waiter each Basic.Ack / Basic.Nack settles.

The broker numbers messages 1, 2, 3... from Confirm.Select on (RabbitMQ
"Publisher Confirms"); an ack or nack with ``multiple`` covers every earlier
number too. A mandatory message that cannot be routed comes back as
Basic.Return *before* its ack, so a return marks the oldest unsettled publish
with the same exchange, routing key and body as returned, and the ack that
follows fails it with :class:`~txamqp091.exceptions.UnroutableError`.
(Identical messages are interchangeable, so the choice among them does not matter.)
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import repeat
from typing import Any, Generic

from ..exceptions import NackError, UnroutableError
from .runtime import Runtime, W

__all__ = ["ConfirmTracker", "PendingPublish"]


class PendingPublish(Generic[W]):
    """A published message the broker has not confirmed yet: its waiter, and what a
    Basic.Return is matched against. (A surviving channel sends a message again from
    its own parked operation, not from here.)"""

    __slots__ = ("body", "exchange", "mandatory", "returned", "routing_key", "waiter")

    def __init__(
        self, waiter: W, exchange: str, routing_key: str, body: bytes, mandatory: bool
    ) -> None:
        self.waiter = waiter
        self.exchange = exchange
        self.routing_key = routing_key
        self.body = body
        self.mandatory = mandatory
        self.returned: UnroutableError | None = None


class ConfirmTracker(Generic[W]):
    """Unconfirmed publishes of one channel, by sequence number.

    A plain publish is kept as its bare waiter (``basic_publish`` stores it in
    :attr:`pending` itself); only a mandatory one, which a Basic.Return may have to
    be matched against, as a :class:`PendingPublish`: one object less per message on
    the confirm path. While no mandatory publish is pending, an ack's waiters are
    resolved in one :meth:`Runtime.resolve_all` call."""

    __slots__ = ("_lowest", "_mandatory", "_runtime", "_settled", "pending")

    def __init__(self, runtime: Runtime[W], settled: Callable[[], None] | None = None) -> None:
        #: seq -> the waiter, or the :class:`PendingPublish` of a mandatory publish.
        self.pending: dict[int, Any] = {}
        self._lowest = 1
        #: How many of ``pending`` are :class:`PendingPublish` entries.
        self._mandatory = 0
        self._runtime = runtime
        #: Called after an ack or nack settled something: the window has room again.
        self._settled = settled

    def __len__(self) -> int:
        return len(self.pending)

    def add(self, seq: int, waiter: W) -> None:
        """A publish that is not mandatory: only its waiter is kept."""
        self.pending[seq] = waiter

    def add_mandatory(self, seq: int, entry: PendingPublish[W]) -> None:
        self.pending[seq] = entry
        self._mandatory += 1

    def _take(self, tag: int, multiple: bool) -> list[Any]:
        """The entries an ack or nack of ``tag`` settles, oldest first, forgotten here
        (``multiple`` with tag 0: every unsettled one)."""
        pending = self.pending
        lowest = self._lowest
        if multiple:
            if tag < lowest:
                if tag or not pending:
                    return []
                tag = max(pending)
            before = len(pending)
            # The loop in C (map), not a comprehension: one ack settles many publishes.
            taken = list(map(pending.pop, range(lowest, tag + 1), repeat(None)))
            if before - len(pending) != len(taken):  # some were settled one by one
                taken = [entry for entry in taken if entry is not None]
            lowest = tag + 1
            self._lowest = lowest
            if pending and lowest not in pending:
                self._advance()
        else:
            entry = pending.pop(tag, None)
            if entry is None:
                return []
            if tag == lowest:
                self._advance()
            taken = [entry]
        if self._mandatory:
            self._mandatory -= sum(type(entry) is PendingPublish for entry in taken)
        return taken

    def _advance(self) -> None:
        pending = self.pending
        if not pending:
            return
        lowest = self._lowest
        while lowest not in pending:
            lowest += 1
        self._lowest = lowest

    def acked(self, tag: int, multiple: bool) -> None:
        mandatory = self._mandatory
        taken = self._take(tag, multiple)
        if not taken:
            return
        runtime = self._runtime
        if not mandatory:
            runtime.resolve_all(taken, None)
        else:
            for entry in taken:
                if type(entry) is not PendingPublish:
                    runtime.resolve(entry, None)
                elif entry.returned is not None:
                    runtime.reject(entry.waiter, entry.returned)
                else:
                    runtime.resolve(entry.waiter, None)
        if self._settled is not None:
            self._settled()

    def nacked(self, tag: int, multiple: bool) -> None:
        taken = self._take(tag, multiple)
        for entry in taken:
            waiter = entry.waiter if type(entry) is PendingPublish else entry
            self._runtime.reject(waiter, NackError(f"the broker nacked message {tag}"))
        if taken and self._settled is not None:
            self._settled()

    def returned(
        self, exchange: str, routing_key: str, body: bytes, error: UnroutableError
    ) -> bool:
        """Mark the publish this Basic.Return belongs to; False if none matches."""
        for entry in self.pending.values():
            if (
                type(entry) is PendingPublish
                and entry.returned is None
                and entry.routing_key == routing_key
                and entry.exchange == exchange
                and entry.body == body
            ):
                entry.returned = error
                return True
        return False

    def take_all(self) -> list[W]:
        """The waiter of every unsettled publish, oldest first, forgetting them (the
        channel died)."""
        pending = self.pending
        waiters = [pending[seq] for seq in sorted(pending)]
        pending.clear()
        self._lowest = 1
        self._mandatory = 0
        return [e.waiter if type(e) is PendingPublish else e for e in waiters]
