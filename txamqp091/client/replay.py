"""Replaying a surviving channel's topology onto a new incarnation, pipelined.

Each new incarnation of a :class:`~.recovering.SurvivingChannel` gets one
:class:`Replay`: the recorded declarations, bindings and settings go out in order,
then the consumers subscribe again. Declarations and bindings go out with ``nowait``
wherever they can (see :mod:`.topology`), so a reconnect costs one round trip for
the whole topology rather than one per record: only the last request the replay
sends waits for its reply, and that reply says the broker has processed all of it.
A server-named queue is the exception: the replay pauses after it until its new
name is known, since what follows may use it.

If the broker closes the channel instead of answering that last request, some
replayed record was refused; the operations caught up in that close are excused
(:meth:`~.parking.ParkingLot.excuse`: the replay, not they, caused it) and the
channel's reopen replays again.

Kept apart from :mod:`.recovering` because it runs only on a reconnect or a reopen:
nothing here is on the path of a publish or a delivery.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Generic, Protocol

from ..exceptions import ChannelClosedByBroker
from .parking import ParkingLot, quoted_names
from .recovering_consumer import SurvivingConsumer
from .runtime import Runtime, W
from .topology import Entry, QueueDeclaration, Record, Topology

if TYPE_CHECKING:
    from .channel import ChannelLogic

__all__ = ["Replay", "Replaying"]


def _ignore(value: object) -> None:
    return None


class Replaying(Protocol[W]):
    """What a replay reads of its surviving channel (:class:`~.recovering.SurvivingChannel`),
    and the two calls it makes back to it."""

    @property
    def _runtime(self) -> Runtime[W]: ...

    @property
    def _topology(self) -> Topology: ...

    @property
    def _inner(self) -> ChannelLogic[W] | None: ...

    @property
    def _consumers(self) -> dict[str, SurvivingConsumer[W]]: ...

    @property
    def _parked(self) -> ParkingLot[W]: ...

    @property
    def _closed_error(self) -> BaseException | None: ...

    def _resume(self, inner: ChannelLogic[W]) -> None:
        """Everything replayed is sent: the parked operations may follow."""

    def _recovered(self, inner: ChannelLogic[W]) -> None:
        """The broker answered the replay's last request."""


class Replay(Generic[W]):
    """One incarnation's replay under way: call :meth:`run` once."""

    __slots__ = ("channel", "entries", "held", "inner", "last", "reopened")

    def __init__(self, channel: Replaying[W], inner: ChannelLogic[W], reopened: bool) -> None:
        self.channel = channel
        self.inner = inner
        self.entries: Iterator[Entry] = iter(channel._topology)
        #: A reopen on the same connection (after a channel error), not a reconnect.
        self.reopened = reopened
        #: A pipelined record not sent yet: with ``nowait`` if anything follows it, else
        #: waiting for its reply (the last thing the replay sends).
        self.held: Record | None = None
        #: The waiter of the last request the replay sent, if it was one with a reply.
        self.last: W | None = None

    def _still_there(self, queue: str) -> bool:
        """After a channel error (same connection): whether a server-named auto-delete
        queue survived the channel's end. It did unless it lost its consumers with the
        channel; declaring it again would create a second queue under a new name."""
        topology = self.channel._topology
        current = topology.name(queue)
        return not any(topology.name(c.queue) == current for c in self.channel._consumers.values())

    def run(self) -> None:
        """Replay records in order, pipelined: each goes out with ``nowait`` when it
        can, except the last thing the replay sends, whose reply says the broker has
        processed all of it. Pause after a server-named queue until its name is known
        (then this is called again, and goes on where it stopped)."""
        channel, inner = self.channel, self.inner
        names = channel._topology.names
        for entry in self.entries:
            if channel._inner is not inner or not inner.is_open:
                return
            if not entry.applied:
                continue  # its own operation is parked and follows the replay
            record = entry.record
            server_named = isinstance(record, QueueDeclaration) and record.server_named
            if server_named and self.reopened:
                assert isinstance(record, QueueDeclaration)
                if not record.auto_delete or self._still_there(record.queue):
                    continue
            self._send_held()
            if record.pipelined:
                self.held = record  # sent with nowait once something follows it
                continue
            waiter = record.replay(inner, names)
            if server_named:
                original = record.queue if isinstance(record, QueueDeclaration) else ""

                def declared(ok: Any, original: str = original) -> None:
                    names[original] = ok.queue
                    self.run()

                channel._runtime.on_result(waiter, declared, self._failed)
                return
            self._set_last(waiter)
        self._resubscribe()

    def _send_held(self) -> None:
        held, self.held = self.held, None
        if held is not None:
            held.send_nowait(self.inner, self.channel._topology.names)
            self._set_last(None)

    def _set_last(self, waiter: W | None) -> None:
        """``waiter`` is the replay's last request now; the one before needs no watching
        (a channel close fails the last one too)."""
        if self.last is not None:
            self.channel._runtime.on_result(self.last, _ignore, _ignore)
        self.last = waiter

    def _resubscribe(self) -> None:
        channel, inner = self.channel, self.inner
        topology = channel._topology
        consumers = [c for c in channel._consumers.values() if c._subscribed]
        # (a consumer not yet subscribed has its own Basic.Consume parked: not twice)
        if consumers:
            self._send_held()
            for consumer in consumers:
                name = topology.name(consumer.queue)
                final = consumer is consumers[-1]  # the one whose reply ends the replay
                self._set_last(consumer._subscribe(inner, name, nowait=not final))
        elif self.held is not None:
            held, self.held = self.held, None
            self._set_last(held.replay(inner, topology.names))
        channel._resume(inner)
        last = self.last
        if last is None:
            channel._recovered(inner)
        else:
            channel._runtime.on_result(last, lambda value: channel._recovered(inner), self._failed)

    def _failed(self, error: BaseException) -> None:
        """The broker closed the channel before answering the replay's last request: a
        replayed record was refused (the reopen replays again, up to ``max_reopens``)."""
        channel = self.channel
        if not isinstance(error, ChannelClosedByBroker) or channel._closed_error is not None:
            return
        channel._parked.excuse(error)
        topology = channel._topology
        named = quoted_names(error.reply_text or "")
        culprits = [r for r in topology.records() if r.subjects(topology.names) & named]
        channel._runtime.log(
            "warn",
            "txamqp091: the broker refused the replay of channel {n}'s topology ({culprit}): "
            "{error}",
            n=self.inner.channel_number,
            culprit=", ".join(map(repr, culprits[:3])) or "unknown record",
            error=error,
        )
