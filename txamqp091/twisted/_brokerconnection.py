"""The fake broker's side of one client connection: frames in, RabbitMQ's answers out.

:class:`BrokerConnection` is a Twisted ``Protocol``. It checks the protocol
header, runs the handshake (Start, Tune, Open; PLAIN logins and virtual hosts
checked against the :class:`~._fakebroker.FakeBroker`), reassembles published
content, hands channel methods to :class:`~._brokermethods.ChannelMethods`, and
turns their errors into Channel.Close or Connection.Close as RabbitMQ does.
Tests also use it to act as the broker: see its public methods.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import cast

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from ..core import spec
from ..core.codec import FieldTable
from ..core.testing import ClientFrame, ServerFrames, parse_client_frames
from ._brokermethods import ChannelMethods
from ._fakebroker import (
    BrokerChannel,
    BrokerChannelError,
    BrokerConnectionError,
    BrokerConsumer,
    FakeBroker,
    FakeQueue,
    StoredMessage,
    Unacked,
)

__all__ = ["BrokerConnection"]

_frame_header = struct.Struct(">BHI")


class BrokerConnection(Protocol):
    """The broker's side of one client connection.

    Tests reach it as ``pump.server`` or ``broker.connections[i]`` and use it to
    act as the broker would: :meth:`close`, :meth:`close_channel`,
    :meth:`block` / :meth:`unblock`, :meth:`cancel_consumer`, :meth:`drop`, and,
    with :attr:`hold_confirms`, :meth:`release_confirms`.
    """

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        #: ``header``, ``start-ok``, ``tune-ok``, ``opening``, ``open``, ``closing``, ``closed``.
        self.state = "header"
        self.frames = ServerFrames(broker.frame_max)
        self.clock = broker.clock
        self.channels: dict[int, BrokerChannel] = {}
        self.client_properties: FieldTable = {}
        self.virtual_host = ""
        self.username = ""
        self.channel_max = broker.channel_max
        self.frame_max = broker.frame_max
        self.heartbeat = 0
        #: Every frame the client sent, in order.
        self.received: list[ClientFrame] = []
        #: Keep publisher confirms until :meth:`release_confirms` (to test ``multiple``).
        self.hold_confirms = False
        self.methods = ChannelMethods(self)
        self._buf = bytearray()
        self._heartbeat_call: IDelayedCall | None = None

    def __repr__(self) -> str:
        return f"<BrokerConnection {self.state} channels={sorted(self.channels)}>"

    # -- what a test does as the broker ------------------------------------------------------

    def close(
        self,
        reply_code: int = spec.CONNECTION_FORCED,
        reply_text: str = "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'",
    ) -> None:
        """Connection.Close from the broker; the transport closes on the client's Close-Ok."""
        self._connection_error(reply_code, reply_text)

    def close_channel(
        self,
        channel_id: int,
        reply_code: int = spec.PRECONDITION_FAILED,
        reply_text: str = "PRECONDITION_FAILED - closed by the test",
    ) -> None:
        """Channel.Close from the broker."""
        self._channel_error(self.channels[channel_id], reply_code, reply_text)

    def block(self, reason: str = "low on memory") -> None:
        """Connection.Blocked (a resource alarm)."""
        self._write(self.frames.blocked(reason))

    def unblock(self) -> None:
        """Connection.Unblocked."""
        self._write(self.frames.unblocked())

    def cancel_consumer(self, consumer_tag: str) -> None:
        """Cancel a consumer as the broker does when its queue goes away (Basic.Cancel)."""
        for channel in self.channels.values():
            consumer = channel.consumers.get(consumer_tag)
            if consumer is not None:
                self.broker._remove_consumer(consumer)
                self._send_cancel(consumer)
                return
        raise KeyError(consumer_tag)

    def drop(self) -> None:
        """Close the TCP connection without the AMQP close handshake."""
        if self.transport is not None:
            self.transport.loseConnection()

    def release_confirms(self, channel_id: int | None = None, multiple: bool = True) -> None:
        """Send the confirms held while :attr:`hold_confirms` was set.

        With ``multiple``, each run of acks (or nacks) becomes one frame with
        ``multiple=True``, as RabbitMQ batches them.
        """
        for channel in list(self.channels.values()):
            if channel_id is not None and channel.channel_id != channel_id:
                continue
            held, channel.held_confirms = channel.held_confirms, []
            for index, (seq, ok) in enumerate(held):
                last_of_run = index + 1 == len(held) or held[index + 1][1] != ok
                if multiple and not last_of_run:
                    continue
                self._send_confirm(channel, seq, ok, multiple)

    # -- Protocol -----------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.broker.connections.append(self)

    def dataReceived(self, data: bytes) -> None:
        if self.state == "closed":
            return
        buf = self._buf
        buf += data
        if self.state == "header":
            if len(buf) < 8:
                return
            header = bytes(buf[:8])
            del buf[:8]
            if header != spec.PROTOCOL_HEADER:
                self._write(spec.PROTOCOL_HEADER)
                self._lose()
                return
            self.state = "start-ok"
            self._write(
                self.frames.start(
                    mechanisms=b"PLAIN AMQPLAIN", server_properties=self.broker.server_properties
                )
            )
        pos = 0
        while len(buf) - pos >= 7 and self.state not in ("closed", "lost"):
            _, _, size = _frame_header.unpack_from(buf, pos)
            if size + 8 > max(self.frame_max, spec.FRAME_MIN_SIZE):
                self._connection_error(
                    spec.FRAME_ERROR, f"FRAME_ERROR - frame of {size + 8} bytes exceeds frame_max"
                )
                break
            end = pos + 8 + size
            if end > len(buf):
                break
            chunk = bytes(buf[pos:end])
            pos = end
            try:
                (frame,) = parse_client_frames(chunk)
            except (ValueError, struct.error, IndexError, UnicodeDecodeError) as exc:
                self._connection_error(spec.FRAME_ERROR, f"FRAME_ERROR - {exc}"[:255])
                break
            self.received.append(frame)
            self._handle_frame(frame)
            # As RabbitMQ does, deliver as soon as a method makes it possible (a requeue,
            # an ack freeing prefetch room, a new consumer), not at the end of the read.
            self.broker.dispatch()
        del buf[:pos]

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self.state == "lost":
            return
        self.state = "lost"
        if self._heartbeat_call is not None and self._heartbeat_call.active():
            self._heartbeat_call.cancel()
        self._heartbeat_call = None
        self._release_all()
        broker = self.broker
        for queue in list(broker.queues.values()):
            if queue.owner is self:
                broker._delete_queue(queue)
        if self in broker.connections:
            broker.connections.remove(self)
        broker.dispatch()

    # -- output --------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self.transport is not None and self.state not in ("closed", "lost"):
            self.transport.write(data)

    def _lose(self) -> None:
        self.state = "closed"
        if self.transport is not None:
            self.transport.loseConnection()

    def _send_heartbeat(self) -> None:
        self._heartbeat_call = None
        if self.state in ("closed", "lost") or self.clock is None:
            return
        self._write(self.frames.heartbeat())
        self._heartbeat_call = self.clock.callLater(self.heartbeat / 2, self._send_heartbeat)

    def _send_cancel(self, consumer: BrokerConsumer) -> None:
        channel = consumer.channel
        if not channel.closing and channel.connection is self:
            self._write(self.frames.cancel(channel.channel_id, consumer.tag, nowait=True))

    def _send_confirm(self, channel: BrokerChannel, seq: int, ok: bool, multiple: bool) -> None:
        if ok:
            self._write(self.frames.ack(channel.channel_id, seq, multiple))
        else:
            self._write(self.frames.nack(channel.channel_id, seq, multiple))

    def _deliver(self, consumer: BrokerConsumer, queue: FakeQueue, message: StoredMessage) -> None:
        channel = consumer.channel
        tag = channel.next_delivery_tag
        channel.next_delivery_tag += 1
        if not consumer.no_ack:
            channel.unacked[tag] = Unacked(queue.name, message, consumer)
            consumer.unacked += 1
        self._write(
            self.frames.deliver(
                channel.channel_id,
                consumer.tag,
                tag,
                message.body,
                message.properties,
                message.exchange,
                message.routing_key,
                message.redelivered,
                frame_max=self.frame_max,
            )
        )

    # -- errors ---------------------------------------------------------------------------------

    def _connection_error(self, code: int, text: str, method: spec.Method | None = None) -> None:
        if self.state in ("closing", "closed", "lost"):
            return
        self._release_all()
        class_id, method_id = (method.CLASS_ID, method.METHOD_ID) if method else (0, 0)
        self._write(self.frames.close(code, text[:255], class_id, method_id))
        self.state = "closing"

    def _channel_error(
        self, channel: BrokerChannel, code: int, text: str, method: spec.Method | None = None
    ) -> None:
        class_id, method_id = (method.CLASS_ID, method.METHOD_ID) if method else (0, 0)
        self._release_channel(channel)
        channel.closing = True
        self._write(
            self.frames.channel_close(channel.channel_id, code, text[:255], class_id, method_id)
        )

    def _release_channel(self, channel: BrokerChannel) -> None:
        """The channel ends: cancel its consumers and requeue what it had not acked."""
        broker = self.broker
        for consumer in list(channel.consumers.values()):
            broker._remove_consumer(consumer)
        unacked, channel.unacked = channel.unacked, {}
        broker._requeue(unacked[tag] for tag in sorted(unacked))
        channel._tx_pending.clear()
        channel.held_confirms.clear()

    def _release_all(self) -> None:
        for channel in list(self.channels.values()):
            self._release_channel(channel)

    # -- input ----------------------------------------------------------------------------------

    def _handle_frame(self, frame: ClientFrame) -> None:
        frame_type, channel_id, payload = frame
        if frame_type == spec.FRAME_HEARTBEAT:
            if channel_id:
                self._connection_error(spec.FRAME_ERROR, "FRAME_ERROR - heartbeat on a channel")
            return
        if self.state == "closing":
            if channel_id == 0 and isinstance(payload, spec.ConnectionCloseOk):
                self._lose()
            elif channel_id == 0 and isinstance(payload, spec.ConnectionClose):
                self._write(self.frames.close_ok())
                self._lose()
            return
        if channel_id == 0:
            if not isinstance(payload, spec.Method):
                self._connection_error(
                    spec.UNEXPECTED_FRAME, "UNEXPECTED_FRAME - content frame on channel 0"
                )
                return
            self._connection_method(payload)
            return
        if self.state != "open":
            self._connection_error(
                spec.CHANNEL_ERROR, f"CHANNEL_ERROR - frame on channel {channel_id} before open"
            )
            return
        self._channel_frame(channel_id, frame_type, payload)

    def _connection_method(self, method: spec.Method) -> None:
        state = self.state
        if state == "start-ok" and isinstance(method, spec.ConnectionStartOk):
            self.client_properties = method.client_properties
            if not self._authenticate(method):
                self._connection_error(
                    spec.ACCESS_REFUSED,
                    f"ACCESS_REFUSED - Login was refused using authentication mechanism "
                    f"{method.mechanism}. For details see the broker logfile.",
                )
                return
            self.state = "tune-ok"
            self._write(self.frames.tune(self.channel_max, self.frame_max, self.broker.heartbeat))
        elif state == "tune-ok" and isinstance(method, spec.ConnectionTuneOk):
            if method.frame_max and not spec.FRAME_MIN_SIZE <= method.frame_max <= self.frame_max:
                self._connection_error(
                    spec.NOT_ALLOWED, f"NOT_ALLOWED - frame_max {method.frame_max} out of range"
                )
                return
            self.frame_max = method.frame_max or self.frame_max
            self.frames.frame_max = self.frame_max
            self.channel_max = method.channel_max or self.channel_max
            self.heartbeat = method.heartbeat
            self.state = "opening"
        elif state == "opening" and isinstance(method, spec.ConnectionOpen):
            if method.virtual_host not in self.broker.vhosts:
                self._connection_error(
                    spec.NOT_ALLOWED, f"NOT_ALLOWED - vhost {method.virtual_host} not found"
                )
                return
            self.virtual_host = method.virtual_host
            self.state = "open"
            self._write(self.frames.open_ok())
            if self.heartbeat and self.clock is not None:
                self._heartbeat_call = self.clock.callLater(
                    self.heartbeat / 2, self._send_heartbeat
                )
        elif state == "open" and isinstance(method, spec.ConnectionClose):
            self._release_all()
            self._write(self.frames.close_ok())
            self._lose()
        elif state == "open" and isinstance(method, spec.ConnectionUpdateSecret):
            self._write(self.frames.update_secret_ok())
        else:
            self._connection_error(
                spec.COMMAND_INVALID,
                f"COMMAND_INVALID - {method.NAME} not expected while {state}",
                method,
            )

    def _authenticate(self, start_ok: spec.ConnectionStartOk) -> bool:
        users = self.broker.users
        if start_ok.mechanism != "PLAIN":
            return users is None
        parts = start_ok.response.split(b"\x00")
        if len(parts) != 3:
            return False
        self.username = parts[1].decode("utf-8", "replace")
        if users is None:
            return True
        return users.get(self.username) == parts[2].decode("utf-8", "replace")

    def _channel_frame(self, channel_id: int, frame_type: int, payload: object) -> None:
        channel = self.channels.get(channel_id)
        if isinstance(payload, spec.ChannelOpen):
            if channel is not None:
                self._connection_error(
                    spec.CHANNEL_ERROR, "CHANNEL_ERROR - second 'channel.open' seen", payload
                )
                return
            if channel_id > self.channel_max:
                self._connection_error(
                    spec.CHANNEL_ERROR, f"CHANNEL_ERROR - channel {channel_id} above channel_max"
                )
                return
            self.channels[channel_id] = BrokerChannel(self, channel_id)
            self._write(self.frames.channel_open_ok(channel_id))
            return
        if channel is None:
            self._connection_error(spec.CHANNEL_ERROR, "CHANNEL_ERROR - expected 'channel.open'")
            return
        if channel.closing:
            # spec 1.5.2.5: after Channel.Close only Close and Close-Ok count.
            if isinstance(payload, spec.ChannelCloseOk):
                del self.channels[channel_id]
            elif isinstance(payload, spec.ChannelClose):
                self._write(self.frames.channel_close_ok(channel_id))
            return
        content = channel._content
        if frame_type == spec.FRAME_METHOD:
            assert isinstance(payload, spec.Method)
            if content is not None:
                self._connection_error(
                    spec.UNEXPECTED_FRAME, "UNEXPECTED_FRAME - expected content", payload
                )
                return
            if isinstance(payload, spec.BasicPublish):
                channel._content = [payload, None, 0, []]
                return
            self._run(channel, payload, lambda: self.methods.handle(channel, payload))
        elif frame_type == spec.FRAME_HEADER:
            if content is None or content[1] is not None:
                self._connection_error(
                    spec.UNEXPECTED_FRAME, "UNEXPECTED_FRAME - content header without a publish"
                )
                return
            body_size, properties = cast(tuple[int, spec.BasicProperties], payload)
            content[1], content[2] = properties, body_size
            if body_size == 0:
                self._content_done(channel)
        else:
            if content is None or content[1] is None:
                self._connection_error(
                    spec.UNEXPECTED_FRAME, "UNEXPECTED_FRAME - content body without a header"
                )
                return
            content[3].append(payload)
            received = sum(len(part) for part in content[3])
            if received > content[2]:
                self._connection_error(
                    spec.FRAME_ERROR, "FRAME_ERROR - content body longer than declared"
                )
            elif received == content[2]:
                self._content_done(channel)

    def _content_done(self, channel: BrokerChannel) -> None:
        assert channel._content is not None
        method, properties, _, parts = channel._content
        channel._content = None
        self._run(
            channel,
            method,
            lambda: self.methods.publish(channel, method, properties, b"".join(parts)),
        )

    def _run(self, channel: BrokerChannel, method: spec.Method, action: Callable[[], None]) -> None:
        try:
            action()
        except BrokerConnectionError as exc:
            self._connection_error(exc.code, exc.text, method)
        except BrokerChannelError as exc:
            self._channel_error(channel, exc.code, exc.text, method)
