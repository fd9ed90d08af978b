"""The sans-IO AMQP 0-9-1 client connection: bytes and ``now`` in, events and bytes out.

Usage, by an adapter::

    conn = Connection(credentials=..., virtual_host="/", ...)
    transport.write(conn.data_to_send())          # the protocol header
    for chunk in socket:
        events = conn.receive_data(chunk, now)   # never raises for peer input
        dispatch(events)
        transport.write(conn.data_to_send())      # once, after dispatch
        schedule(conn.next_deadline(), lambda: conn.tick(clock()))

Theory of operation: received bytes go into one bytearray; a read offset walks
it frame by frame and the consumed prefix is dropped once per call, so parsing
is linear in the input whatever the split points. Each frame is checked (type,
frame-end octet, size against the negotiated ``frame_max``, channel number)
and routed to channel 0's handshake/close logic (:mod:`.connection_methods`) or
to a :class:`~txamqp091.core.channel.Channel`.
Malformed or out-of-order input from the broker queues Connection.Close with
the spec's reply code and ends the connection with a ``ConnectionClosed``
event whose ``error`` is a :class:`~txamqp091.exceptions.ProtocolError`.
"""

from __future__ import annotations

import struct
from typing import Any

from ..exceptions import (
    AMQPHeartbeatTimeout,
    ChannelWrongStateError,
    ConnectionWrongStateError,
    IncompatibleProtocolError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    ProtocolError,
    StreamLostError,
)
from . import _accel, spec
from .channel import Channel
from .codec import DecodeError, truncate_shortstr
from .connection_methods import MAX_FRAME_LIMIT, ConnectionMethods
from .events import (
    ConnectionClosed,
    Delivery,
    Event,
    PublishAcked,
)
from .frames import FRAME_OVERHEAD, HEARTBEAT_FRAME, encode_method_frame
from .handshake import Credentials, HeartbeatSetting, negotiate
from .handshake import negotiate_heartbeat as negotiate_heartbeat  # re-exported (tests)
from .heartbeat import HeartbeatMonitor
from .states import (
    CONNECTION_CLIENT_TRANSITIONS,
    Action,
    ChannelState,
    ConnectionInput,
    ConnectionState,
)

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "Connection", "Credentials", "negotiate"]

_unpack_from = struct.unpack_from
_FRAME_HEADER = struct.Struct(">BHI")
_read_frame_header = _FRAME_HEADER.unpack_from
_unpack_index = struct.Struct(">I").unpack_from
_DELIVER = spec.BasicDeliver.INDEX
_ACK = spec.BasicAck.INDEX
_CLOSED = ConnectionState.CLOSED
_OPEN = ConnectionState.OPEN
_CHANNEL_OPEN = ChannelState.OPEN
#: The C decoder of a read that is one whole delivery (None: pure Python, or a test
#: that wants the frame-by-frame path).
_c_take_read = None if _accel.speedups is None else _accel.speedups.take_read
_c_take_deliveries = None if _accel.speedups is None else _accel.speedups.take_deliveries
#: The C parser of a run of publisher acks on one channel (None: the frame loop).
_c_take_acks = None if _accel.speedups is None else _accel.speedups.take_acks
_accel.install_acks(PublishAcked)
_FRAME_END = spec.FRAME_END
_METHOD, _HEADER, _BODY, _HEARTBEAT = (
    spec.FRAME_METHOD,
    spec.FRAME_HEADER,
    spec.FRAME_BODY,
    spec.FRAME_HEARTBEAT,
)
#: RabbitMQ's default ``max_message_size``: 128 MiB.
DEFAULT_MAX_MESSAGE_SIZE = 128 * 1024 * 1024
#: Compact the receive buffer once the consumed prefix is at least this large.
_COMPACT_AT = 1 << 16


class Connection(ConnectionMethods):
    """One AMQP connection's protocol state; see the module docstring.

    :param credentials: an object with ``mechanism`` and ``response_for(mechanisms)``.
    :param virtual_host: the vhost to open.
    :param client_properties: the Start-Ok client-properties table, capabilities included.
    :param channel_max: our channel_max proposal (0: no limit).
    :param frame_max: our frame_max proposal (0: no limit).
    :param heartbeat: ``None`` (the broker's), ``0`` (off), seconds, or ``f(server_value)``.
    :param locale: the Start-Ok locale.
    :param delivery_class: the class instantiated for each delivery; a subclass of
        :class:`~.events.Delivery` (adapters pass their message class).
    :param max_message_size: the largest message body accepted from the broker
        (default 128 MiB, RabbitMQ's own default ``max_message_size``); a content
        header announcing more ends the connection with 501 FRAME_ERROR before
        any of the body is buffered.
    """

    # Slots (the rest of the state lives in the instance __dict__ ConnectionMethods
    # gives): the C publishes read these per message at fixed offsets
    # (_accel.CONNECTION_LAYOUT_SLOTS) instead of by attribute lookup.
    __slots__ = ("frame_max", "is_blocked", "state")

    def __init__(
        self,
        *,
        credentials: Credentials,
        virtual_host: str = "/",
        client_properties: dict[str, Any] | None = None,
        channel_max: int = 2047,
        frame_max: int = 131072,
        heartbeat: HeartbeatSetting = None,
        locale: str = "en_US",
        delivery_class: type[Delivery] = Delivery,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.credentials = credentials
        self.virtual_host = virtual_host
        self.client_properties = client_properties if client_properties is not None else {}
        self.locale = locale
        self.delivery_class = delivery_class
        # The C decoder builds its instances itself when it can (once per class).
        _accel.register_delivery_class(delivery_class)
        self.max_message_size = max_message_size
        self._requested_channel_max = channel_max
        self._requested_frame_max = frame_max
        self._requested_heartbeat = heartbeat
        self.state = ConnectionState.AWAIT_START
        #: Negotiated values; until Tune they are the pre-negotiation limits.
        self.channel_max = channel_max or 65535
        self.frame_max = max(spec.FRAME_MIN_SIZE, frame_max or MAX_FRAME_LIMIT)
        self.heartbeat = 0
        self.server_properties: dict[str, Any] = {}
        self.is_blocked = False
        self._close_requested = False
        self._out: list[bytes] = [spec.PROTOCOL_HEADER]
        self._buf = bytearray()
        self._pos = 0
        self._events: list[Event] = []
        self._channels: dict[int, Channel] = {}
        self._heartbeat: HeartbeatMonitor | None = None
        self._update_secret_pending = 0
        self._close_requested_code = 0
        #: A well-framed method has arrived on channel 0: from then on a protocol
        #: error is explained to the peer with Connection.Close.
        self._spoke_amqp = False

    def __repr__(self) -> str:
        return f"<core.Connection {self.state.value} channels={len(self._channels)}>"

    @property
    def is_open(self) -> bool:
        return self.state is ConnectionState.OPEN

    @property
    def is_closed(self) -> bool:
        return self.state is ConnectionState.CLOSED

    @property
    def close_requested(self) -> bool:
        """:meth:`close` was called (still True once the connection has ended)."""
        return self._close_requested

    # -- what channels use: .channel.ChannelHost --------------------------------------

    @property
    def outgoing_frames(self) -> list[bytes]:
        """Frames queued for the broker: one list for ever, emptied by :meth:`data_to_send`."""
        return self._out

    def fail_with_protocol_error(self, reply_code: int, reply_text: str) -> None:
        """Queue Connection.Close and end with a ProtocolError event; never raises."""
        self._fail(reply_code, reply_text)

    def release_channel(self, channel_id: int) -> None:
        """A channel closed on both sides: its number is free for :meth:`open_channel`."""
        self._channels.pop(channel_id, None)

    # -- what the adapter calls --------------------------------------------------

    def data_to_send(self) -> bytes:
        """Everything queued for the broker, as one ``bytes`` for one transport write."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        del out[:]
        if self._heartbeat is not None and data != HEARTBEAT_FRAME:
            # A heartbeat alone is not traffic: an idle client sends one every half interval.
            self._heartbeat._sent = True  # .sent(), without a call per write
        return data

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """Feed bytes from the broker; return what happened. Never raises for bad input."""
        if self.state is _CLOSED:
            return []
        if self._heartbeat is not None:
            self._heartbeat._last_received = now  # .received(now), without a call per read
        buf = self._buf
        if buf or type(data) is not bytes:
            buf += data
            source: bytes | bytearray = buf
        else:
            if _c_take_read is not None and self.state is _OPEN and not self._close_requested:
                # A read that is one whole delivery (an RPC's request or reply): decoded
                # in one C call, without the frame loop below, when its channel may take
                # it (Channel.take_delivery's test). Anything else is parsed frame by
                # frame, which also reports what is wrong with it.
                try:
                    taken = _c_take_read(
                        data, self.frame_max, self.max_message_size, self.delivery_class
                    )
                except Exception:  # malformed properties: the frame path reports them
                    taken = None
                if taken is not None:
                    channel = self._channels.get(taken[0])
                    # channel.takes_whole_delivery(), inline: a call less per RPC half.
                    if (
                        channel is not None
                        and channel.state is _CHANNEL_OPEN
                        and not channel._expect_header
                        and not channel._body_remaining
                    ):
                        events = self._events = [taken[1]]
                        return events
            # Nothing left from earlier reads (the usual case): parse ``data`` itself,
            # without copying it into the buffer and deleting it from there again.
            source = data
        events = self._events = []
        try:
            self._parse(source, now)
        except ProtocolError as exc:
            self._fail(exc.reply_code, exc.reply_text)
        except (struct.error, IndexError, UnicodeDecodeError, ValueError, OverflowError) as exc:
            self._fail(spec.SYNTAX_ERROR, f"SYNTAX_ERROR - {exc}")
        if source is data:
            pos = self._pos
            self._pos = 0
            if pos < len(data) and self.state is not _CLOSED:
                buf += data[pos:]  # a partial frame: kept for the next read
        elif self.state is _CLOSED:
            del buf[:]
            self._pos = 0
        elif self._pos >= _COMPACT_AT or self._pos == len(buf):
            del buf[: self._pos]
            self._pos = 0
        return events

    def _parse(self, buf: bytes | bytearray, now: float) -> None:
        events = self._events
        append = events.append
        pos = self._pos
        channels = self._channels
        closing = self._close_requested
        try:
            if self.state is ConnectionState.AWAIT_START and pos == 0 and buf[:4] == b"AMQP":
                if len(buf) >= 8:
                    self._protocol_mismatch(bytes(buf[:8]))
                return
            while True:
                avail = len(buf) - pos
                if avail < 7:
                    return
                frame_type, channel_id, size = _read_frame_header(buf, pos)
                if size + FRAME_OVERHEAD > self.frame_max:
                    raise ProtocolError(
                        spec.FRAME_ERROR,
                        f"FRAME_ERROR - frame of {size + FRAME_OVERHEAD} bytes exceeds "
                        f"frame_max {self.frame_max}",
                    )
                end = pos + 7 + size
                if avail < size + 8:
                    return
                if buf[end] != _FRAME_END:
                    raise ProtocolError(
                        spec.FRAME_ERROR, f"FRAME_ERROR - bad frame-end octet {buf[end]:#04x}"
                    )
                start = pos + 7
                pos = end + 1
                if channel_id:
                    if closing:
                        continue  # spec 1.4.2.5: after Close only Close/Close-Ok matter
                    channel = channels.get(channel_id)
                    if channel is None:
                        if frame_type not in (_METHOD, _HEADER, _BODY):
                            # A bad frame type (or a heartbeat off channel 0, spec 4.2.7) is a
                            # frame error whatever the channel: the frame is checked first.
                            raise ProtocolError(
                                spec.FRAME_ERROR,
                                f"FRAME_ERROR - frame type {frame_type} on channel {channel_id}",
                            )
                        raise ProtocolError(
                            spec.CHANNEL_ERROR,
                            f"CHANNEL_ERROR - frame on unopened channel {channel_id}",
                        )
                    if frame_type == _METHOD:
                        if size < 4:
                            raise DecodeError("method frame", size - 4)
                        (index,) = _unpack_index(buf, start)
                        if index == _DELIVER:
                            # The hot path: the whole message is usually in the buffer,
                            # and so are the ones after it (a consumer's backlog): with
                            # the C accelerator, every whole delivery that follows on
                            # this channel is taken in the same call.
                            if _c_take_deliveries is None:
                                whole = channel.take_delivery(buf, start + 4, end)
                                if whole is not None:
                                    append(whole[0])
                                    pos = whole[1]
                                    continue
                            elif channel.takes_whole_delivery():
                                # take_delivery's frame limit: a body over
                                # max_message_size is left to the frame path.
                                taken = _c_take_deliveries(
                                    buf,
                                    start + 4,
                                    end,
                                    channel_id,
                                    min(self.frame_max, self.max_message_size + 8),
                                    self.delivery_class,
                                    events,
                                )
                                if taken is not None:
                                    pos = taken
                                    continue
                        elif (
                            index == _ACK
                            and _c_take_acks is not None
                            # handle_method's conditions for an ack
                            and channel.state is _CHANNEL_OPEN
                            and not channel._expect_header
                            and not channel._body_remaining
                        ):
                            # A publisher's acks come back to back: with the C
                            # accelerator, the run of them on this channel is checked
                            # and taken in one call (the first frame that is not one of
                            # them is left to this loop, which reports what is wrong).
                            taken = _c_take_acks(
                                buf,
                                start + 4,
                                end,
                                channel_id,
                                channel._next_publish_seq,
                                self.frame_max,
                                PublishAcked,
                                events,
                            )
                            if taken is not None:
                                pos = taken
                                continue
                        event = channel.handle_method(index, buf, start + 4, end)
                    elif frame_type == _BODY:
                        event = channel.handle_body(buf, start, end)
                    elif frame_type == _HEADER:
                        if size < 14:
                            raise DecodeError("content header", size - 14)
                        event = channel.handle_header(buf, start, end)
                    elif frame_type == _HEARTBEAT:
                        raise ProtocolError(
                            spec.FRAME_ERROR, "FRAME_ERROR - heartbeat frame on a non-zero channel"
                        )
                    else:
                        raise ProtocolError(
                            spec.FRAME_ERROR, f"FRAME_ERROR - frame type {frame_type}"
                        )
                    if event is not None:
                        append(event)
                else:
                    if frame_type == _METHOD:
                        if size < 4:
                            raise DecodeError("method frame", size - 4)
                        (index,) = _unpack_from(">I", buf, start)
                        self._spoke_amqp = True
                        self._handle_connection_method(index, buf, start + 4, end, now)
                    elif frame_type == _HEARTBEAT:
                        if size:
                            raise ProtocolError(
                                spec.FRAME_ERROR, "FRAME_ERROR - heartbeat frame with a payload"
                            )
                    elif frame_type in (_HEADER, _BODY):
                        raise ProtocolError(
                            spec.CHANNEL_ERROR, "CHANNEL_ERROR - content frame on channel 0"
                        )
                    else:
                        raise ProtocolError(
                            spec.FRAME_ERROR, f"FRAME_ERROR - frame type {frame_type}"
                        )
                if self.state is _CLOSED:
                    return
        finally:
            self._pos = pos

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must next be called, on the adapter's clock; None: never."""
        if self._heartbeat is None or self.state is ConnectionState.CLOSED:
            return None
        return self._heartbeat.next_deadline()

    def peer_alive(self, now: float) -> None:
        """Count the peer as heard from at ``now``: the adapter stopped reading on
        purpose (a consumer over its bound), so the peer's silence is our own doing and
        must not end the connection as a heartbeat timeout. Heartbeats still go out."""
        if self._heartbeat is not None:
            self._heartbeat.received(now)

    def tick(self, now: float) -> list[Event]:
        """Send a heartbeat if we were idle; end the connection if the broker was silent."""
        monitor = self._heartbeat
        if monitor is None or self.state is ConnectionState.CLOSED:
            return []
        send, dead = monitor.tick(now)
        if dead:
            self.state = ConnectionState.CLOSED
            self._heartbeat = None
            error = AMQPHeartbeatTimeout(
                f"no frames from the broker for {2 * monitor.interval} seconds "
                f"(two heartbeat intervals of {monitor.interval} s)"
            )
            return [ConnectionClosed(reply_code=320, reply_text=str(error), error=error)]
        if send:
            self._out.append(HEARTBEAT_FRAME)
        return []

    def connection_lost(self, reason: str = "") -> list[Event]:
        """The transport went away; return the event that ends the connection (if not ended)."""
        if self.state is ConnectionState.CLOSED:
            return []
        state = self.state
        self.state = ConnectionState.CLOSED
        self._heartbeat = None
        text = reason or "connection lost"
        error: Exception
        if state is ConnectionState.AWAIT_TUNE:
            # RabbitMQ without authentication_failure_close just drops us on bad credentials.
            error = ProbableAuthenticationError(f"connection lost during authentication: {text}")
        elif state is ConnectionState.AWAIT_OPEN_OK:
            error = ProbableAccessDeniedError(
                f"connection lost opening vhost {self.virtual_host!r}: {text}"
            )
        elif state is ConnectionState.CLOSING and self._close_requested_code == 200:
            return [ConnectionClosed(reply_code=200, reply_text="Normal shutdown", error=None)]
        else:
            error = StreamLostError(f"stream lost: {text}")
        return [ConnectionClosed(reply_code=0, reply_text=str(error), error=error)]

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """Start the close handshake: Connection.Close now; ``ConnectionClosed`` on Close-Ok.

        :raises ConnectionWrongStateError: the connection is already closing or closed.
        """
        self._start(ConnectionInput.CLOSE)  # Action.SEND_CLOSE in every state that allows it
        self._close_requested = True
        self._close_requested_code = reply_code
        close = spec.ConnectionClose(
            reply_code=reply_code,
            reply_text=truncate_shortstr(reply_text),
            class_id=0,
            method_id=0,
        )
        self._out.append(encode_method_frame(0, close))

    def open_channel(self, channel_id: int | None = None) -> Channel:
        """Allocate the lowest free channel number (or ``channel_id``, when given) and
        queue Channel.Open on it.

        :raises ConnectionWrongStateError: the connection is not open.
        :raises ChannelWrongStateError: every number up to ``channel_max`` is taken, or
            ``channel_id`` is in use.
        :raises ValueError: ``channel_id`` is not in 1..``channel_max``.
        """
        self._start(ConnectionInput.OPEN_CHANNEL)  # Action.ALLOCATE_CHANNEL
        if channel_id is None:
            channel_id = self._allocate_channel_id()
        elif type(channel_id) is not int or not 1 <= channel_id <= self.channel_max:
            raise ValueError(f"channel_id must be in 1..{self.channel_max}, not {channel_id!r}")
        elif channel_id in self._channels:
            raise ChannelWrongStateError(f"channel {channel_id} is in use")
        channel = Channel(self, channel_id)
        self._channels[channel_id] = channel
        return channel

    def channel(self, channel_id: int) -> Channel:
        return self._channels[channel_id]

    def update_secret(self, new_secret: bytes, reason: str) -> None:
        """Send Connection.Update-Secret; a ``MethodReply`` on channel 0 answers it.

        :raises ConnectionWrongStateError: the connection is not open.
        """
        self._start(ConnectionInput.UPDATE_SECRET)  # Action.SEND
        self._update_secret_pending += 1
        method = spec.ConnectionUpdateSecret(new_secret=new_secret, reason=reason)
        self._out.append(encode_method_frame(0, method))

    # -- internals -----------------------------------------------------------------

    def _start(self, event: ConnectionInput) -> Action:
        """Take ``event``'s entry in CONNECTION_CLIENT_TRANSITIONS: the next state, and
        the action for the caller to do. No entry: ConnectionWrongStateError, no change."""
        entry = CONNECTION_CLIENT_TRANSITIONS.get((self.state, event))
        if entry is None:
            state = self.state.value
            raise ConnectionWrongStateError(f"cannot {event.value}: connection is {state}")
        action, self.state = entry
        return action

    def _allocate_channel_id(self) -> int:
        limit = self.channel_max
        if len(self._channels) >= limit:
            raise ChannelWrongStateError(f"all {limit} channels are in use (channel_max)")
        # The lowest free number, as open_channel() promises (and pika does).
        channels = self._channels
        candidate = 1
        while candidate in channels:
            candidate += 1
        return candidate

    def _fail(self, reply_code: int, reply_text: str) -> None:
        """A protocol violation by the broker: tell it why, then end the connection."""
        if self.state is ConnectionState.CLOSED:
            return
        reply_text = truncate_shortstr(reply_text)
        if self._spoke_amqp:
            # Until a well-framed method arrives (Connection.Start, even a malformed one),
            # the peer has not shown that it speaks AMQP at all (garbage, an HTTP server,
            # a TLS port): there is nobody to explain the close to.
            close = spec.ConnectionClose(
                reply_code=reply_code, reply_text=reply_text, class_id=0, method_id=0
            )
            self._out.append(encode_method_frame(0, close))
        self.state = ConnectionState.CLOSED
        self._heartbeat = None
        self._events.append(
            ConnectionClosed(
                reply_code=reply_code,
                reply_text=reply_text,
                error=ProtocolError(reply_code, reply_text),
            )
        )

    def _protocol_mismatch(self, header: bytes) -> None:
        self.state = ConnectionState.CLOSED
        version = ".".join(str(b) for b in header[5:8])
        error = IncompatibleProtocolError(
            f"the broker does not speak AMQP 0-9-1; it offered protocol version {version}"
        )
        self._events.append(ConnectionClosed(reply_code=0, reply_text=str(error), error=error))


_accel.install_connection_layout(Connection)
