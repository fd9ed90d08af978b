"""Where each event the core reports goes: the channel it names, or the connection's own
waiters (a channel opening, an update-secret, the connection opening and closing).

:class:`EventRouting` is the part of :class:`~.connection.ConnectionLogic` that routes
one read's events, kept apart from the reading, writing and publish gating around it.
Deliveries and publisher acks, most events by far, are routed in ``_dispatch`` itself;
a run of acks is settled as the one ack that confirms the same publishes
(``_dispatch_acks``); everything else goes through the handler table.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, Generic

from ..core import events as ev
from ..core.events import PublishAcked
from ..core.spec import ConnectionUpdateSecretOk
from ..exceptions import AMQPHeartbeatTimeout
from ..message import Message
from .channel import ChannelLogic
from .runtime import Runtime, W

__all__ = ["EventRouting"]

#: What a channel does with each event that names it and needs nothing else of the
#: connection (EventRouting._to_channel finds the channel). A delivery and an ack of
#: exactly Message and PublishAcked are routed by _dispatch itself; these two entries
#: are for their subclasses.
CHANNEL_EVENTS: dict[type, Callable[[ChannelLogic[Any], Any], None]] = {
    Message: lambda channel, event: channel._on_delivery(event),
    PublishAcked: lambda channel, event: channel._confirms.acked(
        event.delivery_tag, event.multiple
    ),
    ev.PublishNacked: lambda channel, event: channel._confirms.nacked(
        event.delivery_tag, event.multiple
    ),
    ev.GetOk: lambda channel, event: channel._on_get_ok(event),
    ev.Returned: lambda channel, event: channel._on_returned(event),
    ev.ConsumerCancelled: lambda channel, event: channel._on_consumer_cancelled(event.consumer_tag),
    ev.ChannelFlow: lambda channel, event: channel._on_flow(event.active),
}


class EventRouting(Generic[W]):
    """Event routing for :class:`~.connection.ConnectionLogic`, which holds the state
    these methods read (declared here for the type checker only)."""

    __slots__ = ()

    if TYPE_CHECKING:
        _runtime: Runtime[W]
        _channels: dict[int, ChannelLogic[W]]
        _channel_waiters: dict[int, W]
        _secret_waiters: deque[W]
        _opened: W
        _blocked_callbacks: list[Callable[[str | None], Any]]
        _handlers: dict[type, Callable[[Any], None]]

        def _finish(self, error: BaseException | None, abort: bool) -> None: ...
        def _release_held(self) -> None: ...

    def _event_handlers(self) -> dict[type, Callable[[Any], None]]:
        """The handler of each event class. Deliveries and publisher acks, most events by
        far, are routed in _dispatch itself when they are of exactly these classes; the
        table has them for subclasses (see _handler_for)."""
        handlers: dict[type, Callable[[Any], None]] = {
            kind: partial(self._to_channel, handle) for kind, handle in CHANNEL_EVENTS.items()
        }
        handlers.update(
            {
                ev.MethodReply: self._on_reply,
                ev.ChannelOpened: self._on_channel_opened,
                ev.ChannelClosed: self._on_channel_closed,
                ev.ConnectionOpened: self._on_opened,
                ev.ConnectionClosed: self._on_connection_closed,
                ev.ConnectionBlocked: self._on_blocked,
                ev.ConnectionUnblocked: self._on_unblocked,
            }
        )
        return handlers

    def _dispatch(self, events: list[ev.Event]) -> None:
        channels = self._channels
        # Shared with the runs: a channel's deliveries (ChannelLogic._on_deliveries, which
        # returns the event after them) and a channel's acks (_dispatch_acks).
        remaining = iter(events)
        event = next(remaining, None)
        while event is not None:
            if type(event) is Message:  # most events: to the channel, without a handler call
                channel = channels.get(event.channel_id)
                if channel is not None:
                    event = channel._on_deliveries(event, remaining)
                    continue
            elif type(event) is PublishAcked:  # a publisher's most events, likewise
                self._dispatch_acks(event, remaining)
            else:
                self._dispatch_other(event)
            event = next(remaining, None)

    def _dispatch_acks(self, first: PublishAcked, remaining: Iterator[ev.Event]) -> None:
        """Settle ``first`` and the acks that follow it, taken from ``remaining`` up to
        and including the first event that is not one of them.

        Publisher acks of one channel that follow each other in a read settle, together,
        what one ``multiple`` ack of the last tag settles: RabbitMQ sends several per
        read (3 to 13 on average in a live confirm window, a quarter of them single acks
        of the tag after the multiple ack before them). They are settled as that one ack:
        the tracker's lookup, the waiters' batch and the window's check run once for the
        run instead of once per frame. The event that ends the run is dispatched after
        it, so everything is still settled in the order the broker sent it.
        """
        channel_id = first.channel_id
        tag = first.delivery_tag
        multiple = first.multiple
        for event in remaining:
            if type(event) is not PublishAcked:
                self._settle_acks(channel_id, tag, multiple)
                self._dispatch_other(event)  # a delivery too: the table has Message's
                return
            next_tag = event.delivery_tag
            if (
                event.channel_id == channel_id
                and tag  # tag 0 with multiple (all of them) ends a run
                and next_tag > tag
                # a multiple ack covers the run's tags; a single one extends a run that
                # ends with a multiple ack of the tag just before it
                and (event.multiple or (multiple and next_tag == tag + 1))
            ):
                tag = next_tag
                multiple = True
            else:
                self._settle_acks(channel_id, tag, multiple)
                channel_id = event.channel_id
                tag = next_tag
                multiple = event.multiple
        self._settle_acks(channel_id, tag, multiple)

    def _settle_acks(self, channel_id: int, tag: int, multiple: bool) -> None:
        """The publishes a run of acks confirmed (see _dispatch_acks), as one ack would."""
        channel = self._channels.get(channel_id)
        if channel is not None:
            channel._confirms.acked(tag, multiple)

    def _dispatch_other(self, event: ev.Event) -> None:
        """An event to its handler: one that is not a delivery or an ack of exactly
        those classes, or the event that ended a run of acks."""
        handler = self._handlers.get(type(event))
        if handler is None:
            handler = self._handler_for(type(event))
        handler(event)

    def _handler_for(self, kind: type) -> Callable[[Any], None]:
        """The handler of the nearest base of ``kind`` that has one (an event subclass:
        a ``delivery_class`` deriving from Message, say), remembered for ``kind``."""
        for base in kind.__mro__[1:]:
            handler = self._handlers.get(base)
            if handler is not None:
                self._handlers[kind] = handler
                return handler
        raise KeyError(kind)

    def _to_channel(self, handle: Callable[[ChannelLogic[W], Any], None], event: Any) -> None:
        """``event`` to the channel it names (see CHANNEL_EVENTS), if that is still open."""
        channel = self._channels.get(event.channel_id)
        if channel is not None:
            handle(channel, event)

    def _on_reply(self, event: ev.MethodReply) -> None:
        if event.channel_id == 0:
            if isinstance(event.method, ConnectionUpdateSecretOk) and self._secret_waiters:
                self._runtime.resolve(self._secret_waiters.popleft(), None)
            return
        channel = self._channels.get(event.channel_id)
        if channel is not None:
            channel._on_reply(event.method)

    def _on_channel_opened(self, event: ev.ChannelOpened) -> None:
        waiter = self._channel_waiters.pop(event.channel_id, None)
        channel = self._channels.get(event.channel_id)
        if waiter is not None and channel is not None:
            self._runtime.resolve(waiter, channel)

    def _on_channel_closed(self, event: ev.ChannelClosed) -> None:
        waiter = self._channel_waiters.pop(event.channel_id, None)
        if waiter is not None:
            self._runtime.reject(waiter, event.error)
        channel = self._channels.get(event.channel_id)
        if channel is not None:
            channel._on_closed(event, event.error)

    def _on_opened(self, event: ev.ConnectionOpened) -> None:
        self._runtime.resolve(self._opened, self)

    def _on_connection_closed(self, event: ev.ConnectionClosed) -> None:
        # Abort when there is no close handshake to finish: the stream broke, or the
        # broker went silent (a dead peer would never take the bytes loseConnection waits on).
        error = event.error
        abort = error is not None and (
            event.reply_code == 0 or isinstance(error, AMQPHeartbeatTimeout)
        )
        self._finish(error, abort=abort)

    def _on_blocked(self, event: ev.ConnectionBlocked) -> None:
        self._runtime.log("warn", "broker blocked the connection: {reason}", reason=event.reason)
        for callback in self._blocked_callbacks:
            self._runtime.run_user_callback(callback, event.reason)

    def _on_unblocked(self, event: ev.ConnectionUnblocked) -> None:
        self._runtime.log("info", "broker unblocked the connection")
        for callback in self._blocked_callbacks:
            self._runtime.run_user_callback(callback, None)
        self._release_held()
