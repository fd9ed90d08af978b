"""Consumers: deliveries buffered for ``get()`` / ``async for``, or handed to a callback."""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from .. import validation as validate
from ..exceptions import ConsumerCancelled
from ..message import Message
from .api import ConsumerAPI, documented_by
from .runtime import Runtime, TimerHandle, W


class BufferCount(Protocol):
    """The count of buffered deliveries a connection keeps (``ConnectionLogic``): what
    a consumer's ``get()`` reads and writes on its fast path."""

    max_buffered: int
    _buffered: int
    _reading_paused: bool


class ConsumerOwner(Protocol[W]):
    """What a consumer needs of its channel (a plain or a surviving one)."""

    _runtime: Runtime[W]

    @property
    def _fixed_buffer_count(self) -> BufferCount | None:
        """The connection whose count ``_buffered_changed`` keeps, when that is one for
        good (a plain channel's); None when it moves (a surviving channel's current one)."""

    def _buffered_changed(
        self, delta: int, consumer: object = None, consumer_full: bool = False
    ) -> None: ...

    def _cancel_consumer(self, consumer: Any) -> W: ...


__all__ = [
    "BufferCount",
    "ConsumerLogic",
    "message_callback",
    "new_consumer_tag",
    "threaded_callback",
]

_Self = TypeVar("_Self", bound="ConsumerLogic[Any]")

_tag_counter = itertools.count(1)
_TAG_PREFIX = f"ctag.txamqp091.{os.getpid()}."


def new_consumer_tag() -> str:
    """A consumer tag unique to this process (pika's style: the prefix names the client)."""
    return f"{_TAG_PREFIX}{next(_tag_counter)}"


@documented_by(ConsumerAPI)
class ConsumerLogic(Generic[W]):
    """One Basic.Consume subscription.

    Without a callback, deliveries wait in a buffer until ``get()`` takes them.
    The buffer is bounded by pausing the transport rather than by dropping or
    growing: once it holds ``max_buffered`` messages the connection stops reading
    (TCP then holds the broker back), and it reads again when ``get()`` has taken
    the buffer down to half of that. A warning names the consumer when it happens:
    a prefetch (``basic_qos``) is the better bound, enforced by the broker. With a
    callback, each delivery is handed to it at once and nothing is buffered.
    """

    #: Deliveries this consumer may hold unread before its connection stops reading
    #: (default 10,000; set it on one consumer, ``consumer.max_buffered = 500``, or on
    #: the class). The connection has its own, higher bound for all its consumers
    #: together (``ConnectionLogic.max_buffered``).
    max_buffered = 10_000
    #: This consumer stopped its connection's reading (over ``max_buffered``).
    _full = False

    def __init__(
        self,
        channel: ConsumerOwner[W],
        queue: str,
        consumer_tag: str,
        on_message_callback: Callable[[Message], Any] | None,
        auto_ack: bool,
        exclusive: bool,
        arguments: dict[str, Any] | None,
    ) -> None:
        self._channel = channel
        self._runtime = channel._runtime
        #: The count get()'s fast path takes a message off (see ConsumerOwner).
        self._buffer_count = channel._fixed_buffer_count
        #: Makes what ``create_waiter()`` makes, without its Python frame (each ``get()``
        #: that waits: every RPC reply).
        self._new_waiter = self._runtime.waiter_factory()
        #: The runtime's try_resolve, bound once: each delivery to a waiting get().
        self._try_resolve = self._runtime.try_resolve
        self.queue = queue
        self.consumer_tag = consumer_tag
        self.on_message_callback = on_message_callback
        self.auto_ack = auto_ack
        self.exclusive = exclusive
        self.arguments = arguments
        self._buffer: deque[Message] = deque()
        self._getters: deque[W] = deque()
        #: Why the consumer ended (None while it is active).
        self.ended: BaseException | None = None
        #: Basic.Cancel sent: deliveries still arriving are handed back.
        self._cancelling = False

    def __repr__(self) -> str:
        return f"<Consumer {self.consumer_tag!r} on {self.queue!r} buffered={len(self._buffer)}>"

    @property
    def is_active(self) -> bool:
        """Whether the subscription is still on: not cancelled, its channel not ended."""
        return self.ended is None

    # -- fed by the channel -----------------------------------------------------------

    def _deliver(self, message: Message) -> None:
        # ChannelLogic._on_delivery repeats the waiting get() below inline: keep alike.
        callback = self.on_message_callback
        if callback is not None:
            self._runtime.run_user_callback(callback, message, delivery_tag=message.delivery_tag)
            return
        getters = self._getters
        if getters:
            try_resolve = self._try_resolve
            while getters:
                if try_resolve(getters.popleft(), message):  # one not cancelled meanwhile
                    return
        self._buffer.append(message)
        if len(self._buffer) < self.max_buffered or self.ended is not None:
            self._channel._buffered_changed(1)
            return
        # Over the bound: told on each delivery, not just the first, so that the
        # connection a surviving channel moved to after a reconnect stops reading too.
        self._channel._buffered_changed(1, self, True)
        if not self._full:
            self._full = True
            self._runtime.log(
                "warn",
                "txamqp091: consumer {tag} on {queue} holds {n} unread messages "
                "(max_buffered); its connection stops reading until get() takes them down "
                "to {resume} (a prefetch, basic_qos(prefetch_count=N), bounds this at the "
                "broker)",
                tag=self.consumer_tag,
                queue=self.queue,
                n=len(self._buffer),
                resume=self.max_buffered // 2,
            )

    def _took(self, count: int) -> None:
        """``count`` buffered messages left the buffer: read again once under half the bound."""
        if self._full and len(self._buffer) <= self.max_buffered // 2:
            self._full = False
            self._channel._buffered_changed(-count, self, False)
        elif count:
            self._channel._buffered_changed(-count)

    def _end(self, reason: BaseException) -> None:
        """No more deliveries: wake every waiting getter (``async for`` stops)."""
        if self.ended is not None:
            return
        self.ended = reason
        if self._full:
            # No more deliveries can come: holding the connection's reading would only
            # stall its other consumers. The buffer can still be read.
            self._full = False
            self._channel._buffered_changed(0, self, False)
        getters, self._getters = self._getters, deque()
        for waiter in getters:
            self._runtime.reject(waiter, StopAsyncIteration() if _is_normal(reason) else reason)

    # -- the user's API --------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> W:
        """The next message; with ``timeout``, ``None`` if nothing arrives in time.

        After the consumer ended, buffered messages are still handed out; then
        it fails with the reason it ended (``ConsumerCancelled``, ``ChannelClosed``...).
        """
        if timeout is not None:
            validate.consumer_get(timeout)
        runtime = self._runtime
        if self._buffer:
            message = self._buffer.popleft()
            if self._full:
                self._took(1)
            else:
                # What _took(1) does then, without its call (every buffered message), and
                # on a plain channel the fast path of the connection's _buffered_changed,
                # without that call either: reading on, under the bound.
                count = self._buffer_count
                if count is not None and not count._reading_paused:
                    buffered = count._buffered - 1
                    if buffered < count.max_buffered:
                        count._buffered = buffered
                        return runtime.succeeded(message)
                self._channel._buffered_changed(-1)
            return runtime.succeeded(message)
        if self.ended is not None:
            return runtime.failed(self.ended)
        if timeout is None:
            # Nothing to stop when the user cancels it (an RPC's or a consumer loop's
            # every get()): no canceller, which on asyncio is a done callback, a handle
            # run per delivery.
            waiter = self._new_waiter()
            self._getters.append(waiter)
            return waiter
        timer: list[TimerHandle] = []

        def cancelled() -> None:
            for handle in timer:
                handle.cancel()

        waiter = runtime.create_waiter(cancelled)
        self._getters.append(waiter)

        def expire() -> None:
            timer.clear()
            runtime.resolve(waiter, None)

        timer.append(runtime.call_later(timeout, expire))
        runtime.add_done(waiter, cancelled)
        return waiter

    def __aiter__(self: _Self) -> _Self:
        return self

    def __anext__(self) -> W:
        """Like ``get()``, but a normal end (the user's cancel) is ``StopAsyncIteration``."""
        if not self._buffer and self.ended is not None and _is_normal(self.ended):
            return self._runtime.failed(StopAsyncIteration())
        return self.get()

    def cancel(self) -> W:
        """Basic.Cancel; fires with the number of buffered messages handed back (nacked)."""
        return self._channel._cancel_consumer(self)

    def _drain_buffer(self) -> list[Message]:
        buffered = list(self._buffer)
        self._buffer.clear()
        self._took(len(buffered))
        return buffered


def message_callback(
    runtime: Runtime[W],
    callback: Callable[[Message], Any] | None,
    auto_ack: bool,
    run_in_thread: bool,
) -> Callable[[Message], Any] | None:
    """What a consumer calls per message: ``callback``, or with ``run_in_thread`` its
    threaded wrapper (:func:`threaded_callback`).

    :raises ValueError: ``run_in_thread`` without a callback."""
    if not run_in_thread:
        return callback
    if callback is None:
        raise ValueError("run_in_thread needs an on_message_callback")
    return threaded_callback(runtime, callback, auto_ack)


def threaded_callback(
    runtime: Runtime[W], handler: Callable[[Message], Any], auto_ack: bool
) -> Callable[[Message], None]:
    """``basic_consume(..., run_in_thread=True)``: run the *blocking* ``handler`` in a
    worker thread, one call per message; when it returns the message is acked, when it
    raises it is logged and nacked (requeued), both from the loop's thread (pika's "ack
    from another thread" problem, solved for you)."""

    def run(message: Message) -> None:
        def done(result: object) -> None:
            if not auto_ack:
                message.ack()

        def failed(error: BaseException) -> None:
            runtime.log(
                "error",
                "threaded handler failed for delivery {tag}: {error!r}",
                tag=message.delivery_tag,
                error=error,
            )
            if not auto_ack:
                message.nack(requeue=True)

        runtime.on_result(runtime.run_blocking(handler, message), done, failed)

    return run


def _is_normal(reason: BaseException) -> bool:
    """A cancel the user asked for ends iteration quietly; anything else is an error."""
    return isinstance(reason, ConsumerCancelled) and reason.by_client
