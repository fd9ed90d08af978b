"""The connection half of the shared client: events to channels, flushing, timers, gates.

Data flows one way: the adapter feeds received bytes to :meth:`data_received`;
the core returns events; :meth:`_dispatch` routes each to its channel, which
settles waiters; then everything the core queued (replies, acks, publishes
made by user callbacks) leaves in one transport write.

Publishes pass a gate: while the broker blocks the connection
(Connection.Blocked) or the transport pushes back, they wait in ``_held``, in
order, and leave when the gate opens; a publish held longer than
``blocked_connection_timeout`` fails with ``ConnectionBlockedTimeout``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic

from .. import validation as validate
from ..core._accel import install_client_connection, install_flush
from ..core.connection import Connection as CoreConnection
from ..core.frames import HEARTBEAT_FRAME
from ..core.spec import BasicProperties
from ..exceptions import (
    ChannelClosedByClient,
    ConnectionBlockedTimeout,
    ConnectionClosedByClient,
    ConnectionWrongStateError,
)
from ..message import Message
from ..params import ConnectionParameters, client_properties
from .api import ConnectionAPI, documented_by
from .channel import ChannelLogic
from .channel_base import ChannelBase
from .routing import EventRouting
from .runtime import Runtime, TimerHandle, W

__all__ = ["ConnectionLogic", "Negotiated"]


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The limits agreed in Connection.Tune / Tune-Ok."""

    channel_max: int
    frame_max: int
    heartbeat: int


class _Held:
    """A publish waiting for the gate to open."""

    __slots__ = ("args", "channel", "timer", "waiter")

    def __init__(
        self,
        channel: ChannelBase[Any],
        args: tuple[Any, ...],
        waiter: Any,
        timer: TimerHandle | None,
    ) -> None:
        self.channel = channel
        self.args = args
        self.waiter = waiter
        self.timer = timer


@documented_by(ConnectionAPI)
class ConnectionLogic(EventRouting[W], Generic[W]):
    """One AMQP connection as the user sees it; adapters subclass it with their types."""

    channel_class: type[ChannelLogic[Any]] = ChannelLogic
    #: Seconds to wait for the broker's Close-Ok before dropping the transport.
    close_timeout = 10.0
    #: Messages buffered in all consumers together (unread by the application)
    #: before the transport stops reading, and the level at which it reads again: a
    #: connection-wide safety bound over the per-consumer one
    #: (``ConsumerLogic.max_buffered``), for many consumers each under theirs.
    max_buffered = 20000
    resume_buffered = 10000
    #: Bytes of published messages coalesced before they are written without waiting
    #: for the end of the loop turn.
    flush_threshold = 256 * 1024

    # Slots for what basic_publish reads per message (and sets: _send_first,
    # _unflushed): the C accelerator's client_publish reads them at fixed offsets
    # (_accel.CLIENT_CONNECTION_SLOTS) instead of by attribute lookup, which from C costs
    # more than the bytecode it replaces. Everything else stays in the instance __dict__
    # (adapters' subclasses, tests and the blocking adapter set attributes of their own).
    __slots__ = (
        "__dict__",
        "__weakref__",
        "_core",
        "_flush_scheduled",
        "_held",
        "_receiving",
        "_send_first",
        "_unflushed",
        "_write_paused",
    )

    def __init__(self, params: ConnectionParameters, runtime: Runtime[W]) -> None:
        self.params = params
        self._runtime = runtime
        heartbeat = params.heartbeat
        self._core = CoreConnection(
            credentials=params.credentials,
            virtual_host=params.virtual_host,
            client_properties=client_properties(params),
            channel_max=params.channel_max,
            frame_max=params.frame_max,
            heartbeat=(lambda server: params.heartbeat_for(server))
            if callable(heartbeat)
            else heartbeat,
            locale=params.locale,
            delivery_class=Message,
            max_message_size=params.max_message_size,
        )
        self._channels: dict[int, ChannelLogic[W]] = {}
        self._channel_waiters: dict[int, W] = {}
        self._opened: W = runtime.create_waiter()
        self._close_error: BaseException | None = None
        self._closed_waiters: list[W] = []
        self._ended = False
        self._close_timer: TimerHandle | None = None
        self._flush_scheduled = False
        self._unflushed = 0
        #: The core's queue of outgoing frames (one list for ever): data_received
        #: looks at it before calling _flush() for nothing.
        self._outgoing = self._core.outgoing_frames
        self._receiving = False
        self._send_first = False
        self._timer: TimerHandle | None = None
        self._timer_deadline = 0.0
        self._held: deque[_Held] = deque()
        self._write_paused = False
        self._buffered = 0
        #: Stopped reading because ``_buffered`` reached ``max_buffered``.
        self._paused_by_total = False
        #: Consumers over their own ``max_buffered``: reading stays stopped while any is.
        self._full_consumers: set[object] = set()
        self._reading_paused = False
        self._secret_waiters: deque[W] = deque()
        self._blocked_callbacks: list[Callable[[str | None], Any]] = []
        self._handlers = self._event_handlers()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.params.host}:{self.params.port} {self._core.state.value}>"

    # -- public state -------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._core.is_open and not self._ended

    @property
    def is_closed(self) -> bool:
        """Whether the connection has ended (``closed`` has fired)."""
        return self._ended

    @property
    def is_blocked(self) -> bool:
        return self._core.is_blocked

    @property
    def server_properties(self) -> dict[str, Any]:
        """The broker's Connection.Start table: ``product``, ``version``, ``capabilities``..."""
        return self._core.server_properties

    @property
    def negotiated(self) -> Negotiated:
        """What the handshake settled: ``.channel_max``, ``.frame_max``, ``.heartbeat``."""
        core = self._core
        return Negotiated(core.channel_max, core.frame_max, core.heartbeat)

    @property
    def closed(self) -> W:
        """Fires once the connection has ended: None after a close the client asked for,
        else the exception that ended it. Never fails, so an unobserved one logs nothing."""
        if self._ended:
            return self._runtime.succeeded(self._close_error)
        waiter = self._runtime.create_waiter()
        self._closed_waiters.append(waiter)
        return waiter

    # -- operations ------------------------------------------------------------------------------

    def channel(self, channel_number: int | None = None) -> W:
        """Open a channel; fires with it once the broker confirmed (Channel.Open-Ok)."""
        try:
            core_channel = self._core.open_channel(channel_number)
        except Exception as exc:
            return self._runtime.failed(exc)
        channel = self.channel_class(self, core_channel)
        self._channels[core_channel.channel_id] = channel
        waiter = self._runtime.create_waiter()
        self._channel_waiters[core_channel.channel_id] = waiter
        self._schedule_flush()
        return waiter

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> W:
        """Connection.Close; fires (like :attr:`closed`) once the connection has ended."""
        validate.close(reply_code, reply_text)
        if self._ended:
            return self._runtime.succeeded(self._close_error)
        closed = self.closed
        if self._core.close_requested:
            return closed
        if not self._core.is_open:
            # Still handshaking: there is nothing to close politely.
            self._finish(ConnectionClosedByClient(reply_code, reply_text), abort=True)
            return closed
        self._core.close(reply_code, reply_text)
        self._flush()
        self._close_timer = self._runtime.call_later(self.close_timeout, self._close_timed_out)
        return closed

    def _close_timed_out(self) -> None:
        self._close_timer = None
        if not self._ended:
            self._finish(None, abort=True)

    def update_secret(self, new_secret: bytes | str, reason: str) -> W:
        """Connection.Update-Secret (e.g. a refreshed OAuth 2 token)."""
        validate.update_secret(new_secret, reason)
        secret = new_secret.encode() if isinstance(new_secret, str) else new_secret
        try:
            self._core.update_secret(secret, reason)
        except Exception as exc:
            return self._runtime.failed(exc)
        waiter = self._runtime.create_waiter()
        self._secret_waiters.append(waiter)
        self._flush()
        return waiter

    def add_on_blocked_callback(self, callback: Callable[[str | None], Any]) -> None:
        """Call ``callback(reason)`` on Connection.Blocked, ``callback(None)`` on Unblocked."""
        validate.callback("callback", callback)
        self._blocked_callbacks.append(callback)

    # -- driven by the adapter ----------------------------------------------------------------------

    def connection_made(self) -> None:
        """Transport side: the socket is connected; send the protocol header."""
        self._flush()

    def data_received(self, data: bytes) -> None:
        """Transport side: bytes from the broker, parsed and dispatched in one pass."""
        events = self._core.receive_data(data, self._runtime.now())
        if events:
            # What the dispatched callbacks queue leaves in the flush below, with no
            # extra loop turn for a scheduled flush (that is latency, for RPCs)...
            self._receiving = True
            # ...but a read that is one delivery (an RPC's request or reply) sends its
            # first publish at once (see _published).
            self._send_first = lone = len(events) == 1 and type(events[0]) is Message
            try:
                if lone:
                    # Straight to its channel, without _dispatch's loop: the one rule for
                    # a lone delivery on every adapter (see Runtime.dispatch_delivery).
                    message: Any = events[0]
                    channel = self._channels.get(message.channel_id)
                    if channel is not None:
                        self._runtime.dispatch_delivery(channel._on_delivery, message)
                else:
                    self._runtime.dispatch_read(self._dispatch, events)
            finally:
                self._receiving = self._send_first = False
        # _flush() when it has anything to do: a read that send-first answered (an RPC
        # half) has written its frames already.
        if self._outgoing or self._unflushed or self._flush_scheduled:
            self._flush()
        if self._timer is None and not self._ended:
            self._arm_timer()

    def _run_as_read(self, fn: Callable[[Any], object], arg: Any) -> None:
        """Run ``fn(arg)`` as a read's dispatch runs (see data_received): what it queues
        (the publishes a confirm callback makes to refill its window) is written once, at
        its end, instead of by a flush scheduled for the next loop turn. Inside a read it
        only calls: that read writes at its own end."""
        if self._receiving:
            fn(arg)
            return
        self._receiving = True
        try:
            fn(arg)
        finally:
            self._receiving = False
            if self._outgoing or self._unflushed or self._flush_scheduled:
                self._flush()

    def connection_lost(self, reason: str) -> None:
        """Transport side: the socket is gone; every waiter fails with why."""
        self._dispatch(self._core.connection_lost(reason))

    def pause_writing(self) -> None:
        """The transport's buffer is full: hold publishes until :meth:`resume_writing`."""
        self._write_paused = True

    def resume_writing(self) -> None:
        """Transport side: the send buffer drained; release held publishes."""
        self._write_paused = False
        self._release_held()

    # -- flushing and timers -------------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        # The rule: no flush while a read is dispatched (its own flush follows) nor once
        # one is due. ChannelLogic._ack and _published below test it inline, before a
        # call that would cost more than the test (one per message).
        if not self._flush_scheduled and not self._receiving:
            self._flush_scheduled = True
            self._runtime.call_soon(self._flush)

    def _published(self, size: int) -> None:
        """A message was queued in the core. Writes are coalesced until the end of the
        loop turn, but not beyond ``flush_threshold`` bytes: a loop that publishes
        without yielding must still hand its frames to the transport, so that the
        transport's own backpressure (``pause_writing``) can stop it."""
        if self._send_first:
            # The answer to a lone delivery (an RPC's request, reply or next request):
            # written now, while its handler still has to ask for the next message and
            # wait, not after; it is the whole write a one-publish handler makes anyway.
            self._send_first = False
            self._flush()
            return
        self._unflushed += size + 64
        if self._unflushed >= self.flush_threshold:
            self._flush()
        elif not self._flush_scheduled and not self._receiving:
            self._flush_scheduled = True
            self._runtime.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._unflushed = 0
        data = self._core.data_to_send()
        if data and not self._ended:
            self._runtime.write(data)

    def _arm_timer(self) -> None:
        deadline = self._core.next_deadline()
        if deadline is None:
            return
        runtime = self._runtime
        self._timer_deadline = deadline
        self._timer = runtime.call_later(max(0.0, deadline - runtime.now()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = self._runtime.now()
        if self._reading_paused:
            # The broker's frames wait unread in the socket because we stopped reading
            # (a consumer over its bound): its silence is ours, not a dead broker.
            self._core.peer_alive(now)
        events = self._core.tick(now)
        if events:
            self._dispatch(events)
        self._flush()
        if not self._ended:
            self._arm_timer()

    def _finish(self, error: BaseException | None, abort: bool) -> None:
        """The connection has ended: settle everything that waits on it, drop the transport."""
        if self._ended:
            return
        self._ended = True
        self._close_error = error
        runtime = self._runtime
        for handle in (self._timer, self._close_timer):
            if handle is not None:
                handle.cancel()
        self._timer = self._close_timer = None
        data = self._core.data_to_send()  # a Close-Ok or a protocol-error Close, if any
        if data:
            runtime.write(data)
        runtime.close_transport(abort=abort)
        if not runtime.is_done(self._opened):
            runtime.reject(self._opened, error or ConnectionClosedByClient(200, "closed"))
        channel_error = error or ChannelClosedByClient(200, "Normal shutdown")
        for waiter in self._channel_waiters.values():
            runtime.reject(waiter, channel_error)
        self._channel_waiters.clear()
        for channel in list(self._channels.values()):
            channel._on_closed(None, channel_error)
        self._channels.clear()
        held, self._held = self._held, deque()
        for item in held:
            if item.timer is not None:
                item.timer.cancel()
            runtime.reject(item.waiter, channel_error)
        secret, self._secret_waiters = self._secret_waiters, deque()
        for waiter in secret:
            runtime.reject(waiter, error or ConnectionWrongStateError("connection closed"))
        waiters, self._closed_waiters = self._closed_waiters, []
        for waiter in waiters:
            runtime.resolve(waiter, error)
        if self._reading_paused:
            self._reading_paused = False
        self._paused_by_total = False
        self._full_consumers.clear()

    def _forget_channel(self, channel: ChannelBase[W]) -> None:
        if self._channels.get(channel.channel_number) is channel:
            del self._channels[channel.channel_number]

    # -- the publish gate ------------------------------------------------------------------------------

    def _publish_gate_open(self) -> bool:
        return not self._held and not self._write_paused and not self._core.is_blocked

    def _hold_publish(
        self,
        channel: ChannelBase[W],
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: BasicProperties | None,
        mandatory: bool,
    ) -> W:
        runtime = self._runtime
        waiter = runtime.create_waiter()
        timeout = self.params.blocked_connection_timeout
        timer = None
        if timeout is not None and self._core.is_blocked:

            def expire() -> None:
                item.timer = None
                runtime.reject(
                    waiter,
                    ConnectionBlockedTimeout(
                        f"the broker kept the connection blocked for {timeout} s"
                    ),
                )

            timer = runtime.call_later(timeout, expire)
        item = _Held(channel, (exchange, routing_key, body, properties, mandatory), waiter, timer)
        self._held.append(item)
        return waiter

    def _release_held(self) -> None:
        held = self._held
        runtime = self._runtime
        while held and not self._write_paused and not self._core.is_blocked:
            item = held.popleft()
            if item.timer is not None:
                item.timer.cancel()
            if runtime.is_done(item.waiter):
                continue  # timed out or cancelled while it waited: never sent
            channel = item.channel
            if not channel.is_open:
                runtime.reject(item.waiter, ConnectionWrongStateError("channel closed"))
                continue
            exchange, routing_key, body, properties, mandatory = item.args
            channel._publish_now(exchange, routing_key, body, properties, mandatory, item.waiter)

    def _drop_held_publishes(self, channel: ChannelBase[W], error: BaseException) -> None:
        if not self._held:
            return
        keep: deque[_Held] = deque()
        for item in self._held:
            if item.channel is channel:
                if item.timer is not None:
                    item.timer.cancel()
                self._runtime.reject(item.waiter, error)
            else:
                keep.append(item)
        self._held = keep

    # -- read-side backpressure ---------------------------------------------------------------------------

    def _buffered_changed(
        self, delta: int, consumer: object = None, consumer_full: bool = False
    ) -> None:
        """``delta`` more (or fewer) deliveries wait unread in consumers; with
        ``consumer``, whether that consumer is over its own bound (``consumer_full``).
        Reading stops while the total is over ``max_buffered`` (until it is down to
        ``resume_buffered``) or any consumer is over its own bound: TCP then holds the
        broker back, instead of the buffers growing without end."""
        buffered = self._buffered = self._buffered + delta
        if consumer is None and not self._reading_paused and buffered < self.max_buffered:
            # Each buffered delivery and each get() of one (twice per consumed message):
            # reading on, and under the bound, nothing can start or stop. (Reading is
            # stopped whenever the total is over its bound or a consumer over its own.)
            return
        if not self._paused_by_total and self._buffered >= self.max_buffered:
            self._paused_by_total = True
        elif self._paused_by_total and self._buffered <= self.resume_buffered:
            self._paused_by_total = False
        if consumer is not None:
            if consumer_full:
                self._full_consumers.add(consumer)
            else:
                self._full_consumers.discard(consumer)
        pause = self._paused_by_total or bool(self._full_consumers)
        if pause and not self._reading_paused:
            self._reading_paused = True
            self._runtime.pause_reading()
        elif not pause and self._reading_paused:
            self._reading_paused = False
            self._runtime.resume_reading()


install_client_connection(ConnectionLogic)

#: The Python _flush: the reference for the C one that replaces it (every write of the
#: client, one per RPC half, without its two Python frames: see _speedups_flush.h).
PURE_FLUSH = ConnectionLogic._flush
install_flush(ConnectionLogic, CoreConnection, CoreConnection.data_to_send, HEARTBEAT_FRAME)
