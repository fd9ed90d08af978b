"""The consumer a surviving channel hands out: one object across every reconnect."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from ..message import Message
from .consumer import ConsumerLogic
from .runtime import W

if TYPE_CHECKING:
    from .channel import ChannelLogic

__all__ = ["SurvivingConsumer"]


class SurvivingConsumer(ConsumerLogic[W]):
    """A consumer that keeps delivering across reconnects: the same object throughout."""

    #: The broker confirmed its first Basic.Consume; from then on every new incarnation
    #: subscribes it again during the replay.
    _subscribed = False

    def _deliver_from(self, message: Message) -> None:
        self._deliver(message)

    def _forget_dead_messages(self, live: object) -> None:
        """Buffered deliveries of a dead incarnation can no longer be acked: drop them
        (the broker redelivers them), unless they were auto-acked."""
        if self.auto_ack or not self._buffer:
            return
        kept = deque(m for m in self._buffer if m._channel is live)
        dropped = len(self._buffer) - len(kept)
        self._buffer = kept
        if dropped:
            self._channel._buffered_changed(-dropped)

    def _subscribe(self, inner: ChannelLogic[W], queue: str) -> W:
        """Basic.Consume for this consumer on ``inner``, delivering to this same object."""
        return inner.basic_consume(
            queue,
            self._deliver_from,
            self.auto_ack,
            self.exclusive,
            self.consumer_tag,
            self.arguments,
        )
