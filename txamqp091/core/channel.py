"""One channel's protocol state: request ordering, content assembly, confirms.

Rule 1: at most one synchronous request is in flight per channel (spec 2.3.2:
a peer "MUST NOT send a synchronous request while one is outstanding"). Later
requests wait in ``_queue``; anything sent while the queue is not empty waits
behind it too, so frames leave in the order they were asked for.

Rule 2: replies arrive in request order, so the adapter pairs each
:class:`~.events.MethodReply` with the oldest waiter it holds for the channel.
A waiter the user abandoned (a cancelled Deferred) still consumes its reply,
which keeps the pairing right.

Rule 3: publisher-confirm sequence numbers are assigned when ``publish`` is
called, counting from the point where Confirm.Select was asked for. The frames
leave in call order (rule 1), so the broker numbers messages the same way.

A channel knows its connection only as a :class:`ChannelHost`: the output list,
the negotiated ``frame_max``, the delivery class, the connection's state, and two
calls (fail the connection, free the channel number). State changes the client
starts (open, close) and what each input may do in each state come from
:data:`~.states.CHANNEL_CLIENT_TRANSITIONS`.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import Any

from ..exceptions import ChannelClosedByBroker, ChannelClosedByClient, ChannelWrongStateError
from . import _accel, spec
from .channel_host import ChannelHost
from .codec import MALFORMED as _MALFORMED
from .codec import Buffer, DecodeError, decode_shortstr, truncate_shortstr
from .events import (
    ChannelClosed,
    ChannelFlow,
    ChannelOpened,
    ConsumerCancelled,
    Event,
    GetOk,
    MethodReply,
    PublishAcked,
    PublishNacked,
    Returned,
)
from .frames import encode_message, encode_method_frame, encode_publish_method, method_frame_head
from .states import (
    CHANNEL_CLIENT_TRANSITIONS,
    CHANNEL_TRANSITIONS,
    Action,
    ChannelInput,
    ChannelState,
    ConnectionState,
)

__all__ = ["Channel", "ChannelHost"]

_unpack_from = struct.unpack_from
_unpack_deliver = struct.Struct(">QBB").unpack_from  # delivery tag, bits, exchange length
_unpack_tag_bits = struct.Struct(">QB").unpack_from  # Basic.Ack's delivery tag and bits
_frame_header = struct.Struct(">BHI").unpack_from
#: A whole Basic.Ack frame: header, class 60 method 80, delivery tag, multiple bit, frame end.
_ack_frame = struct.Struct(">BHIHHQBB").pack
_header_frame = struct.Struct(">BHIHHQ").unpack_from  # frame header + content header
_decode_properties = spec.BasicProperties.decode
#: The C accelerator's whole-delivery decoder, or None (pure Python; see _accel.py).
_c_take_delivery = None if _accel.speedups is None else _accel.speedups.take_delivery
_OPEN = ChannelState.OPEN
_OPENING = ChannelState.OPENING
_CONNECTION_OPEN = ConnectionState.OPEN

_DELIVER = spec.BasicDeliver.INDEX
_ACK = spec.BasicAck.INDEX
_CHANNEL_CLOSE = spec.ChannelClose.INDEX
_CHANNEL_CLOSE_OK = spec.ChannelCloseOk.INDEX

# What the content frames being assembled belong to.
_NO_CONTENT, _CONTENT_DELIVER, _CONTENT_RETURN, _CONTENT_GET_OK = 0, 1, 2, 3

COMMAND_INVALID = spec.COMMAND_INVALID
UNEXPECTED_FRAME = spec.UNEXPECTED_FRAME


class Channel:
    """A channel of a :class:`~.connection.Connection`; made by ``Connection.open_channel``."""

    __slots__ = (
        "_body_parts",
        "_body_remaining",
        "_close_ok_pending",
        "_close_reason",
        "_content_args",
        "_content_kind",
        "_content_properties",
        "_expect_header",
        "_host",
        "_in_flight",
        "_next_publish_seq",
        "_out",
        "_publish_cache",
        "_queue",
        "_tail_confirm_mode",
        "channel_id",
        "flow_active",
        "state",
    )

    def __init__(self, host: ChannelHost, channel_id: int) -> None:
        self._host = host
        self._out = host.outgoing_frames
        self.channel_id = channel_id
        #: Not open yet: Channel.Open (the OPEN input) takes it to OPENING.
        self.state = ChannelState.CLOSED
        #: False while the broker has asked us to stop publishing (Channel.Flow).
        self.flow_active = True
        self._in_flight: spec.Method | None = None
        self._queue: deque[spec.Method | bytes] = deque()
        self._next_publish_seq = 0  # 0: not in confirm mode
        self._tail_confirm_mode = False
        self._publish_cache: dict[tuple[str, str, bool, bool], bytes] = {}
        self._close_ok_pending = False
        self._close_reason = (200, "Normal shutdown")
        self._content_kind = _NO_CONTENT
        self._content_args: tuple[Any, ...] = ()
        self._content_properties: spec.BasicProperties | None = None
        self._expect_header = False
        self._body_remaining = 0
        self._body_parts: list[bytes] = []
        self._start(ChannelInput.OPEN)
        self._send(spec.ChannelOpen())

    def __repr__(self) -> str:
        return f"<core.Channel {self.channel_id} {self.state.value}>"

    # -- outbound ----------------------------------------------------------------

    @property
    def confirm_mode(self) -> bool:
        """Confirm.Select has been asked for on this channel."""
        return self._tail_confirm_mode

    @property
    def next_publish_seq(self) -> int:
        """The confirm sequence number the next publish will get (0 outside confirm mode)."""
        return self._next_publish_seq

    def _start(self, event: ChannelInput) -> Action:
        """Move to the state :data:`~.states.CHANNEL_CLIENT_TRANSITIONS` gives for
        ``event`` and return the action it names; the caller then performs it.

        :raises ChannelWrongStateError: the table has no entry for this state, or
            the connection is no longer open; the state is then unchanged.
        """
        entry = CHANNEL_CLIENT_TRANSITIONS.get((self.state, event))
        if entry is None:
            raise ChannelWrongStateError(f"channel {self.channel_id} is {self.state.value}")
        state = self._host.state
        if state is not _CONNECTION_OPEN:
            # Nothing may follow Connection.Close, and nothing is read once the connection ended.
            raise ChannelWrongStateError(f"the connection is {state.value}")
        action, self.state = entry
        return action

    def send_method(self, method: spec.Method) -> None:
        """Queue ``method`` for the broker, after any request still waiting.

        :raises ChannelWrongStateError: the channel is closing or closed.
        """
        self._start(ChannelInput.SEND)  # Action.SEND in every state that allows it
        if isinstance(method, spec.ConfirmSelect):
            if not self._tail_confirm_mode:
                self._tail_confirm_mode = True
                self._next_publish_seq = 1
        self._send(method)

    def send_ack(self, delivery_tag: int, multiple: bool = False) -> bool:
        """Basic.Ack straight into the output, the consumer's hot path; False when something
        waits ahead of it or the channel cannot send (then use :meth:`send_method`)."""
        if self.state is not _OPEN or self._queue or self._host.state is not _CONNECTION_OPEN:
            return False
        self._out.append(_ack_frame(1, self.channel_id, 13, 60, 80, delivery_tag, multiple, 0xCE))
        return True

    def expects_reply(self, method: spec.Method) -> bool:
        """Whether ``method`` will be answered (synchronous and not ``nowait``)."""
        return method.SYNCHRONOUS and not getattr(method, "nowait", False)

    def _send(self, method: spec.Method) -> None:
        if self._queue or (self._in_flight is not None and self.expects_reply(method)):
            self._queue.append(method)
            return
        self._transmit(method)

    def _transmit(self, method: spec.Method) -> None:
        self._out.append(encode_method_frame(self.channel_id, method))
        if method.SYNCHRONOUS and not getattr(method, "nowait", False):
            self._in_flight = method

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: spec.BasicProperties | None = None,
        mandatory: bool = False,
        immediate: bool = False,
    ) -> int:
        """Queue Basic.Publish with its content; return its confirm sequence number (0 if none).

        :raises ChannelWrongStateError: the channel is not open, or the broker
            has stopped it with Channel.Flow.
        """
        # The hot path: CHANNEL_CLIENT_TRANSITIONS' PUBLISH entries (SEND when OPEN, HOLD
        # when OPENING, the state unchanged) are inlined as identity checks, which a
        # dict lookup per message would cost more than; tests/core/test_states.py
        # checks this code against the table in every state.
        state = self.state
        if state is not _OPEN and state is not _OPENING:
            raise ChannelWrongStateError(f"channel {self.channel_id} is {state.value}")
        host = self._host
        if host.state is not _CONNECTION_OPEN:
            # Nothing may follow Connection.Close, and nothing is read once the connection ended.
            raise ChannelWrongStateError(f"the connection is {host.state.value}")
        key = (exchange, routing_key, mandatory, immediate)
        method = self._publish_cache.get(key)
        if method is None:
            payload = encode_publish_method(exchange, routing_key, mandatory, immediate)
            method = method_frame_head(self.channel_id, payload)
            if len(self._publish_cache) >= 256:
                self._publish_cache.clear()
            self._publish_cache[key] = method
        frames = encode_message(method, self.channel_id, body, properties, host.frame_max)
        if self._queue or state is _OPENING:
            self._queue.append(frames)
        else:
            self._out.append(frames)
        seq = self._next_publish_seq
        if seq:
            self._next_publish_seq = seq + 1
        return seq

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """Send Channel.Close now, ahead of anything queued; replies still due are discarded.

        :raises ChannelWrongStateError: the channel is already closing or closed.
        """
        self._start(ChannelInput.CLOSE)  # Action.SEND_CLOSE in every state that allows it
        self._queue.clear()
        self._in_flight = None
        reply_text = truncate_shortstr(reply_text)
        self._close_reason = (reply_code, reply_text)
        close = spec.ChannelClose(reply_code=reply_code, reply_text=reply_text)
        self._out.append(encode_method_frame(self.channel_id, close))

    # -- inbound -----------------------------------------------------------------

    def takes_whole_delivery(self) -> bool:
        """Whether a delivery decoded whole (method, header and body at once) may be
        handed to this channel: it is open and not in the middle of another message's
        content. The one rule for :meth:`take_delivery` and the connection's one-read
        C path (Connection.receive_data repeats it inline: keep them alike)."""
        return self.state is _OPEN and not self._expect_header and not self._body_remaining

    def take_delivery(self, buf: Buffer, start: int, end: int) -> tuple[Event, int] | None:
        """Decode a Basic.Deliver whose header and single body frame follow in ``buf``.

        Returns the message and the offset after its last frame, or None to let
        the frame-by-frame path handle anything else (a partial message, several
        body frames, a malformed frame, a channel not open), so errors are still
        reported in one place.
        """
        if not self.takes_whole_delivery():
            return None
        if _c_take_delivery is not None:
            # A frame limit of at most max_message_size + 8 leaves a body over
            # max_message_size to the frame path (the C decoder does not check it).
            host = self._host
            limit = min(host.frame_max, host.max_message_size + 8)
            taken: tuple[Event, int] | None = _c_take_delivery(
                buf, start, end, self.channel_id, limit, host.delivery_class
            )
            return taken
        try:
            n = buf[start]
            o = start + 1 + n
            consumer_tag = buf[start + 1 : o].decode()
            delivery_tag, bits, n = _unpack_deliver(buf, o)
            o += 10
            exchange = buf[o : o + n].decode()
            o += n
            n = buf[o]
            o += 1 + n
            routing_key = buf[o - n : o].decode()
        except _MALFORMED:
            return None  # handle_method reports it
        if o != end:
            return None
        limit = len(buf)
        pos = end + 1
        if limit - pos < 22:  # a header frame with no properties
            return None
        channel_id = self.channel_id
        frame_max = self._host.frame_max
        frame_type, frame_channel, size, class_id, weight, body_size = _header_frame(buf, pos)
        header_end = pos + 7 + size
        if (
            frame_type != 2
            or frame_channel != channel_id
            or header_end >= limit
            or buf[header_end] != 0xCE
            or size < 14
            or size + 8 > frame_max
            or class_id != 60
            or weight
            or body_size > self._host.max_message_size
        ):
            return None
        properties_start = pos + 19
        pos = header_end + 1
        if body_size:
            if limit - pos < 8:
                return None
            frame_type, frame_channel, size = _frame_header(buf, pos)
            body_end = pos + 7 + size
            if (
                frame_type != 3
                or frame_channel != channel_id
                or size != body_size
                or body_end >= limit
                or buf[body_end] != 0xCE
                or size + 8 > frame_max
            ):
                return None
            body = bytes(buf[pos + 7 : body_end])
            pos = body_end + 1
        else:
            body = b""
        properties = _decode_properties(buf, properties_start, header_end)
        message = self._host.delivery_class(
            channel_id,
            consumer_tag,
            delivery_tag,
            bool(bits & 1),
            exchange,
            routing_key,
            properties,
            body,
        )
        return message, pos

    def handle_method(self, index: int, buf: Buffer, start: int, end: int) -> Event | None:
        """A method frame's payload (after the ids) is at ``buf[start:end]``."""
        if self._expect_header or self._body_remaining:
            self._host.fail_with_protocol_error(
                UNEXPECTED_FRAME, "UNEXPECTED_FRAME - expected content frames"
            )
            return None
        if index == _DELIVER and self.state is ChannelState.OPEN:
            consumer_tag, o = decode_shortstr(buf, start)
            delivery_tag, bits = _unpack_from(">QB", buf, o)
            exchange, o = decode_shortstr(buf, o + 9)
            routing_key, o = decode_shortstr(buf, o)
            if o != end:
                raise DecodeError("basic.deliver", end - o)
            self._content_kind = _CONTENT_DELIVER
            self._content_args = (consumer_tag, delivery_tag, bool(bits & 1), exchange, routing_key)
            self._expect_header = True
            return None
        if index == _ACK and self.state is _OPEN:
            delivery_tag, bits = _unpack_tag_bits(buf, start)
            if start + 9 != end:
                raise DecodeError("basic.ack", end - start - 9)
            if not self._confirms_sent(delivery_tag, bits & 1):
                return None
            return PublishAcked(self.channel_id, delivery_tag, bool(bits & 1))
        method_class = spec.METHODS.get(index)
        if method_class is None:
            self._host.fail_with_protocol_error(
                spec.NOT_IMPLEMENTED, f"NOT_IMPLEMENTED - unknown method {index:#x}"
            )
            return None
        method = method_class.decode(buf, start, end)
        next_state = CHANNEL_TRANSITIONS.get((self.state, index))
        if next_state is None:
            if self.state is ChannelState.CLOSING:
                return None  # spec 1.5.2.5: discard everything but Close/Close-Ok
            self._host.fail_with_protocol_error(
                COMMAND_INVALID,
                f"COMMAND_INVALID - {method.NAME} not allowed on a channel that is "
                f"{self.state.value}",
            )
            return None
        return self._dispatch(method, next_state)

    def _confirms_sent(self, delivery_tag: int, multiple: int) -> bool:
        """A Basic.Ack/Nack from the broker names a publish we made in confirm mode
        (tag 0 with ``multiple`` means all of them); otherwise the broker confirms
        something that was never sent: 503 COMMAND_INVALID, and False."""
        seq = self._next_publish_seq
        if seq and (0 < delivery_tag < seq or (delivery_tag == 0 and multiple)):
            return True
        what = "outside confirm mode" if not seq else f"for publish {delivery_tag}, never sent"
        self._host.fail_with_protocol_error(
            COMMAND_INVALID, f"COMMAND_INVALID - publisher confirm {what}"
        )
        return False

    def _dispatch(self, method: spec.Method, next_state: ChannelState) -> Event | None:
        index = method.INDEX
        if index == _CHANNEL_CLOSE:
            assert isinstance(method, spec.ChannelClose)
            self._out.append(encode_method_frame(self.channel_id, spec.ChannelCloseOk()))
            error = ChannelClosedByBroker(method.reply_code, method.reply_text)
            if self.state is ChannelState.CLOSING:
                # Both sides closed at once: our Close-Ok is still due; keep the id until it comes.
                self._close_ok_pending = True
                self._queue.clear()
                self._in_flight = None
            else:
                self._finish()
            self.state = next_state
            return ChannelClosed(
                channel_id=self.channel_id,
                reply_code=method.reply_code,
                reply_text=method.reply_text,
                error=error,
            )
        if index == _CHANNEL_CLOSE_OK:
            was_pending = self._close_ok_pending
            self._finish()
            self.state = next_state
            if was_pending:
                return None  # the broker's own Close already reported the channel closed
            code, text = self._close_reason
            return ChannelClosed(
                channel_id=self.channel_id,
                reply_code=code,
                reply_text=text,
                error=ChannelClosedByClient(code, text),
            )
        if isinstance(method, spec.BasicNack):
            if not self._confirms_sent(method.delivery_tag, method.multiple):
                return None
            return PublishNacked(
                channel_id=self.channel_id,
                delivery_tag=method.delivery_tag,
                multiple=method.multiple,
            )
        if isinstance(method, spec.BasicReturn):
            self._content_kind = _CONTENT_RETURN
            self._content_args = (
                method.reply_code,
                method.reply_text,
                method.exchange,
                method.routing_key,
            )
            self._expect_header = True
            return None
        if isinstance(method, spec.BasicCancel):
            if not method.nowait:
                cancel_ok = spec.BasicCancelOk(consumer_tag=method.consumer_tag)
                self._out.append(encode_method_frame(self.channel_id, cancel_ok))
            return ConsumerCancelled(channel_id=self.channel_id, consumer_tag=method.consumer_tag)
        if isinstance(method, spec.ChannelFlow):
            self.flow_active = method.active
            self._out.append(
                encode_method_frame(self.channel_id, spec.ChannelFlowOk(active=method.active))
            )
            return ChannelFlow(channel_id=self.channel_id, active=method.active)
        # Everything else answers the request in flight.
        in_flight = self._in_flight
        if in_flight is None or index not in in_flight.REPLIES:
            expected = "nothing" if in_flight is None else f"a reply to {in_flight.NAME}"
            self._host.fail_with_protocol_error(
                COMMAND_INVALID, f"COMMAND_INVALID - got {method.NAME}, expected {expected}"
            )
            return None
        if isinstance(method, spec.BasicGetOk):
            self._content_kind = _CONTENT_GET_OK
            self._content_args = (
                method.delivery_tag,
                method.redelivered,
                method.exchange,
                method.routing_key,
                method.message_count,
            )
            self._expect_header = True
            return None  # the request completes when the body is in
        self._complete_request()
        if isinstance(method, spec.ChannelOpenOk):
            self.state = next_state
            event: Event = ChannelOpened(channel_id=self.channel_id)
            self._drain()
            return event
        self._drain()
        return MethodReply(channel_id=self.channel_id, method=method)

    def _complete_request(self) -> None:
        self._in_flight = None

    def _drain(self) -> None:
        """Send what waited behind the request that just completed, up to the next request."""
        queue = self._queue
        while queue and self._in_flight is None:
            item = queue.popleft()
            if isinstance(item, bytes):
                self._out.append(item)
            else:
                self._transmit(item)

    def handle_header(self, buf: Buffer, start: int, end: int) -> Event | None:
        if not self._expect_header:
            if self.state is ChannelState.CLOSING:
                return None
            self._host.fail_with_protocol_error(
                UNEXPECTED_FRAME, "UNEXPECTED_FRAME - content header without a method"
            )
            return None
        class_id, weight, body_size = _unpack_from(">HHQ", buf, start)
        if class_id != 60 or weight != 0:
            self._host.fail_with_protocol_error(
                UNEXPECTED_FRAME, f"UNEXPECTED_FRAME - content header for class {class_id}"
            )
            return None
        limit = self._host.max_message_size
        if body_size > limit:
            self._host.fail_with_protocol_error(
                spec.FRAME_ERROR,
                f"FRAME_ERROR - message body of {body_size} bytes exceeds max_message_size {limit}",
            )
            return None
        self._content_properties = spec.BasicProperties.decode(buf, start + 12, end)
        self._expect_header = False
        if body_size == 0:
            return self._content_complete(b"")
        self._body_remaining = body_size
        return None

    def handle_body(self, buf: Buffer, start: int, end: int) -> Event | None:
        remaining = self._body_remaining
        size = end - start
        if not remaining or size > remaining:
            if self.state is ChannelState.CLOSING:
                return None
            what = "without a content header" if not remaining else "longer than declared"
            self._host.fail_with_protocol_error(
                UNEXPECTED_FRAME, f"UNEXPECTED_FRAME - content body {what}"
            )
            return None
        if size == remaining and not self._body_parts:
            self._body_remaining = 0
            return self._content_complete(bytes(buf[start:end]))
        self._body_parts.append(bytes(buf[start:end]))
        remaining -= size
        self._body_remaining = remaining
        if remaining:
            return None
        body = b"".join(self._body_parts)
        self._body_parts = []
        return self._content_complete(body)

    def _content_complete(self, body: bytes) -> Event | None:
        kind = self._content_kind
        args = self._content_args
        properties = self._content_properties
        assert properties is not None
        self._content_kind = _NO_CONTENT
        self._content_properties = None
        if self.state is not ChannelState.OPEN:
            return None
        if kind == _CONTENT_DELIVER:
            ctag, dtag, redelivered, exchange, rkey = args
            return self._host.delivery_class(
                self.channel_id, ctag, dtag, redelivered, exchange, rkey, properties, body
            )
        if kind == _CONTENT_RETURN:
            reply_code, reply_text, exchange, routing_key = args
            return Returned(
                channel_id=self.channel_id,
                reply_code=reply_code,
                reply_text=reply_text,
                exchange=exchange,
                routing_key=routing_key,
                properties=properties,
                body=body,
            )
        delivery_tag, redelivered, exchange, routing_key, message_count = args
        self._complete_request()
        event = GetOk(
            channel_id=self.channel_id,
            delivery_tag=delivery_tag,
            redelivered=redelivered,
            exchange=exchange,
            routing_key=routing_key,
            message_count=message_count,
            properties=properties,
            body=body,
        )
        self._drain()
        return event

    def _finish(self) -> None:
        self._queue.clear()
        self._in_flight = None
        self._close_ok_pending = False
        self._host.release_channel(self.channel_id)


# The optional C accelerator (see _accel.py) takes over publish's common case.
_accel.install_channel_publish(Channel, _OPEN, _CONNECTION_OPEN)
_accel.install_channel_send_ack(Channel)
