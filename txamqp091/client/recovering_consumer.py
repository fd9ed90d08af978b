"""The consumer a surviving channel hands out: one object across every reconnect.

On a stream (``x-queue-type: stream``) it remembers the offset of the last message it
delivered (``Message.stream_offset``), and subscribes again from the one after it,
not from the offset it was first asked for: a reconnect neither re-reads the stream
from ``first`` nor skips to ``next``. Messages it had buffered but not handed out when
the connection died are read again (they are no longer ackable). At most the
messages in flight at the moment of the cut are seen twice.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol

from ..exceptions import ConsumerCancelled
from ..message import Message
from ..types import Int64
from .consumer import ConsumerLogic
from .runtime import Runtime, W

if TYPE_CHECKING:
    from .channel import ChannelLogic

__all__ = ["Reconsume", "SurvivingConsumer"]


class SurvivingConsumer(ConsumerLogic[W]):
    """A consumer that keeps delivering across reconnects: the same object throughout."""

    #: The broker confirmed its first Basic.Consume; from then on every new incarnation
    #: subscribes it again during the replay.
    _subscribed = False
    #: On a stream: the offset it resumes from after a reconnect, the one after the
    #: last message it delivered (None: not a stream, or nothing delivered yet).
    next_stream_offset: int | None = None
    #: A broker cancel is being answered by consuming again (``reconsume_on_cancel``).
    _reconsuming = False

    def _deliver_from(self, message: Message) -> None:
        headers = message.properties.headers
        if headers is not None:
            offset = message.stream_offset
            if offset is not None:
                self.next_stream_offset = offset + 1
        self._deliver(message)

    @property
    def subscribe_arguments(self) -> dict[str, Any] | None:
        """The arguments of the next Basic.Consume: the user's, with a stream consumer's
        ``x-stream-offset`` moved on to the message after the last one delivered."""
        offset = self.next_stream_offset
        if offset is None:
            return self.arguments
        return {**(self.arguments or {}), "x-stream-offset": Int64(offset)}

    def _forget_dead_messages(self, live: object) -> None:
        """Buffered deliveries of a dead incarnation can no longer be acked: drop them
        (the broker redelivers them), unless they were auto-acked."""
        if self.auto_ack or not self._buffer:
            return
        kept = deque(m for m in self._buffer if m._channel is live)
        dead = [m for m in self._buffer if m._channel is not live]
        offsets = [m.stream_offset for m in dead]
        if offsets and offsets[0] is not None:
            self.next_stream_offset = offsets[0]  # never handed out: read them again
        self._buffer = kept
        # Each dropped message leaves the count of the connection it was counted on (its
        # dead channel's, which may be the live connection after a channel-level reopen),
        # not the current one's; then the consumer's own bound is looked at again.
        for message in dead:
            counted_on = getattr(message._channel, "_buffered_changed", None)
            if counted_on is not None:
                counted_on(-1)
        self._took(0)

    def _subscribe(self, inner: ChannelLogic[W], queue: str, nowait: bool = False) -> W:
        """Basic.Consume for this consumer on ``inner``, delivering to this same object;
        ``nowait`` when a replay sends it again (the arguments were checked the first time)."""
        if nowait:
            return inner._consume(
                queue,
                self._deliver_from,
                self.auto_ack,
                self.exclusive,
                self.consumer_tag,
                self.subscribe_arguments,
                nowait=True,
            )
        return inner.basic_consume(
            queue,
            self._deliver_from,
            self.auto_ack,
            self.exclusive,
            self.consumer_tag,
            self.subscribe_arguments,
        )


class ReconsumePolicy(Protocol[W]):
    """The surviving channel's ``reconsume_*`` settings, and its runtime."""

    _runtime: Runtime[W]
    reconsume_attempts: int
    reconsume_delay: float
    reconsume_max_delay: float


class Reconsume(Generic[W]):
    """Consuming again after a broker cancel (``reconsume_on_cancel``), backing off;
    after ``reconsume_attempts`` failures the consumer ends with ``ConsumerCancelled``."""

    def __init__(
        self,
        policy: ReconsumePolicy[W],
        consumer: SurvivingConsumer[W],
        subscribe: Callable[[], W],
        wanted: Callable[[], bool],
        give_up: Callable[[BaseException], None],
    ) -> None:
        self._policy = policy
        self._runtime = policy._runtime
        self._consumer = consumer
        self._subscribe = subscribe
        self._wanted = wanted
        self._give_up = give_up

    def attempt(self, attempt: int) -> None:
        policy, consumer = self._policy, self._consumer
        delay = min(policy.reconsume_delay * 2 ** (attempt - 1), policy.reconsume_max_delay)
        self._runtime.log(
            "warn",
            "txamqp091: consumer {tag} on {queue} was cancelled by the broker; consuming again "
            "in {delay} s (attempt {n} of {limit})",
            tag=consumer.consumer_tag,
            queue=consumer.queue,
            delay=delay,
            n=attempt,
            limit=policy.reconsume_attempts,
        )
        self._runtime.call_later(delay, lambda: self._retry(attempt))

    def _retry(self, attempt: int) -> None:
        if not self._wanted():
            return
        self._runtime.on_result(
            self._subscribe(),
            lambda value: self._succeeded(attempt),
            lambda error: self._failed(attempt, error),
        )

    def _succeeded(self, attempt: int) -> None:
        consumer = self._consumer
        consumer._subscribed = True
        consumer._reconsuming = False
        self._runtime.log(
            "info",
            "txamqp091: consumer {tag} consumes from {queue} again (attempt {n})",
            tag=consumer.consumer_tag,
            queue=consumer.queue,
            n=attempt,
        )

    def _failed(self, attempt: int, error: BaseException) -> None:
        if not self._wanted():
            return
        if attempt < self._policy.reconsume_attempts:
            self.attempt(attempt + 1)
            return
        consumer = self._consumer
        self._runtime.log(
            "error",
            "txamqp091: consumer {tag} gave up consuming from {queue} after {n} attempts: {error}",
            tag=consumer.consumer_tag,
            queue=consumer.queue,
            n=attempt,
            error=error,
        )
        self._give_up(
            ConsumerCancelled(
                f"the broker cancelled consumer {consumer.consumer_tag} on queue "
                f"{consumer.queue}, and consuming again failed {attempt} times: {error}"
            )
        )
