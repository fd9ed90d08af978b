"""The fake broker's side of one client connection, sans-IO: bytes in, RabbitMQ's answers out.

:class:`BrokerConnection` checks the protocol header, runs the handshake (Start,
Tune, Open; PLAIN logins and virtual hosts checked against the broker), reassembles
published content, hands channel methods to :class:`~._methods.ChannelMethods`,
and turns their errors into Channel.Close or Connection.Close as RabbitMQ does.

It does no I/O. A shim (:mod:`txamqp091.testing.twisted`,
:mod:`txamqp091.testing.asyncio`) feeds it with :meth:`~BrokerConnection.receive_data`,
sends what :meth:`~BrokerConnection.data_to_send` returns, closes the transport once
``close_requested`` (or aborts it once ``abort_requested``) is set, and calls
:meth:`~BrokerConnection.connection_lost` when the transport ends. ``on_output`` is
called whenever any of those changes, so the shim need not poll; ``call_later``, when
the shim sets it, runs the broker's heartbeats.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Protocol, cast

from ..core import spec
from ..core.codec import FieldTable
from ..core.testing import ClientFrame, ServerFrames, parse_client_frames
from ._methods import ChannelMethods
from ._model import BrokerChannelError, BrokerConnectionError, StoredMessage
from ._state import BrokerChannel, BrokerConsumer, FakeQueue, Unacked, VirtualHost

__all__ = ["FAULTS", "BrokerConnection", "BrokerSide", "Timer"]

_frame_header = struct.Struct(">BHI")

#: Scripted faults a connection can be given instead of serving (see ``FakeBroker.faults``):
#: ``drop`` closes the transport at once, ``silent`` reads and never answers, and
#: ``refuse-login`` answers Connection.Start-Ok with Connection.Close 403 ACCESS_REFUSED.
#: The failover ones, as a cluster node can behave: ``blocked`` answers Connection.Open with
#: Connection.Blocked and then nothing (a node under a resource alarm), ``maintenance``
#: answers it with Connection.Close 320 CONNECTION_FORCED (a node being drained), and
#: ``booting`` answers Connection.Open with Connection.Close 530 (its vhost not up yet).
FAULTS = ("drop", "silent", "refuse-login", "blocked", "maintenance", "booting")


class Timer(Protocol):
    """A scheduled call that can be cancelled (``IDelayedCall``, ``asyncio.TimerHandle``)."""

    def cancel(self) -> object: ...


class BrokerSide(Protocol):
    """What a connection needs from the broker it belongs to."""

    users: dict[str, str] | None
    vhosts: set[str]
    channel_max: int
    frame_max: int
    heartbeat: int
    server_properties: FieldTable

    @property
    def vhost(self) -> VirtualHost:
        """The exchanges, queues and bindings (one model, whatever the vhost name)."""
        ...

    def attach(self, connection: BrokerConnection) -> str | None:
        """A transport connected: register ``connection``, return its scripted fault."""
        ...

    def detach(self, connection: BrokerConnection) -> None:
        """The transport ended."""
        ...


class BrokerConnection:
    """The broker's side of one client connection.

    Tests reach it as ``pump.server`` or ``broker.connections[i]`` and use it to
    act as the broker would: :meth:`close`, :meth:`close_channel`,
    :meth:`block` / :meth:`unblock`, :meth:`cancel_consumer`, :meth:`drop`, and,
    with :attr:`hold_confirms`, :meth:`release_confirms`.
    """

    def __init__(self, broker: BrokerSide) -> None:
        self.broker = broker
        self.vhost = broker.vhost
        #: ``header``, ``start-ok``, ``tune-ok``, ``opening``, ``open``, ``closing``,
        #: ``closed`` (the broker is done with it) or ``lost`` (the transport ended).
        self.state = "header"
        #: The scripted fault this connection plays (one of :data:`FAULTS`), or None.
        self.fault: str | None = None
        self.frames = ServerFrames(broker.frame_max)
        self.channels: dict[int, BrokerChannel] = {}
        self.client_properties: FieldTable = {}
        self.virtual_host = ""
        self.username = ""
        self.channel_max = broker.channel_max
        self.frame_max = broker.frame_max
        self.heartbeat = 0
        #: Every frame the client sent, in order.
        self.received: list[ClientFrame] = []
        #: (channel, exchange, routing key, body) of every complete publish, in order.
        self.published: list[tuple[int, str, str, bytes]] = []
        #: Keep publisher confirms until :meth:`release_confirms` (to test ``multiple``).
        self.hold_confirms = False
        #: Set once the broker is done: send what is left, then close the transport.
        self.close_requested = False
        #: Set by :meth:`drop`: end the transport at once, dropping unsent bytes.
        self.abort_requested = False
        #: Called when there is output, or a close or abort was requested (set by the shim).
        self.on_output: Callable[[], None] = _nothing
        #: ``call_later(seconds, f)`` for the broker's heartbeats; None sends none.
        self.call_later: Callable[[float, Callable[[], None]], Timer] | None = None
        self.methods = ChannelMethods(self)
        self._out = bytearray()
        self._buf = bytearray()
        self._heartbeat_call: Timer | None = None

    def __repr__(self) -> str:
        return f"<BrokerConnection {self.state} channels={sorted(self.channels)}>"

    @property
    def is_open(self) -> bool:
        return self.state == "open"

    def method_names(self) -> list[str]:
        """The names of the methods the client sent after the handshake, in order."""
        handshake = ("connection.start-ok", "connection.tune-ok", "connection.open")
        return [
            frame.payload.NAME
            for frame in self.received
            if isinstance(frame.payload, spec.Method) and frame.payload.NAME not in handshake
        ]

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
        self.write(self.frames.blocked(reason))

    def unblock(self) -> None:
        """Connection.Unblocked."""
        self.write(self.frames.unblocked())

    def cancel_consumer(self, consumer_tag: str) -> None:
        """Cancel a consumer as the broker does when its queue goes away (Basic.Cancel)."""
        for channel in self.channels.values():
            consumer = channel.consumers.get(consumer_tag)
            if consumer is not None:
                self.vhost.remove_consumer(consumer)
                self.send_cancel(consumer)
                return
        raise KeyError(consumer_tag)

    def drop(self) -> None:
        """Close the TCP connection without the AMQP close handshake."""
        if self.state != "lost":
            self.abort_requested = True
            self.on_output()

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
                self.send_confirm(channel, seq, ok, multiple)

    # -- the shim's side: bytes in, bytes out -----------------------------------------------

    def connection_made(self) -> None:
        """The transport connected: register with the broker and play any scripted fault."""
        self.fault = self.broker.attach(self)
        if self.fault == "drop":
            self.drop()

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client; the answers are then in :meth:`data_to_send`."""
        if self.state in ("closed", "lost") or self.fault in ("drop", "silent"):
            return
        buf = self._buf
        buf += data
        if self.state == "header":
            if len(buf) < 8:
                return
            header = bytes(buf[:8])
            del buf[:8]
            if header != spec.PROTOCOL_HEADER:
                self.write(spec.PROTOCOL_HEADER)
                self._lose()
                return
            self.state = "start-ok"
            self.write(
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
            self.vhost.dispatch()
        del buf[:pos]

    def data_to_send(self) -> bytes:
        """What the broker has written since the last call."""
        data = bytes(self._out)
        self._out.clear()
        return data

    def connection_lost(self) -> None:
        """The transport ended: the broker drops the connection's channels and queues."""
        if self.state == "lost":
            return
        self.state = "lost"
        self._out.clear()
        if self._heartbeat_call is not None:
            self._heartbeat_call.cancel()
        self._heartbeat_call = None
        self._release_all()
        vhost = self.vhost
        for queue in list(vhost.queues.values()):
            if queue.owner is self:
                vhost.delete_queue(queue)
        self.broker.detach(self)
        vhost.dispatch()

    # -- output --------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue bytes for the client (nothing once the broker is done with the connection)."""
        if self.state not in ("closed", "lost"):
            self._out += data
            self.on_output()

    def _lose(self) -> None:
        self.state = "closed"
        self.close_requested = True
        self.on_output()

    def _send_heartbeat(self) -> None:
        self._heartbeat_call = None
        if self.state in ("closed", "lost") or self.call_later is None:
            return
        self.write(self.frames.heartbeat())
        self._heartbeat_call = self.call_later(self.heartbeat / 2, self._send_heartbeat)

    def send_cancel(self, consumer: BrokerConsumer) -> None:
        channel = consumer.channel
        if not channel.closing and channel.connection is self:
            self.write(self.frames.cancel(channel.channel_id, consumer.tag, nowait=True))

    def send_confirm(self, channel: BrokerChannel, seq: int, ok: bool, multiple: bool) -> None:
        if ok:
            self.write(self.frames.ack(channel.channel_id, seq, multiple))
        else:
            self.write(self.frames.nack(channel.channel_id, seq, multiple))

    def deliver(self, consumer: BrokerConsumer, queue: FakeQueue, message: StoredMessage) -> None:
        channel = consumer.channel
        tag = channel.next_delivery_tag
        channel.next_delivery_tag += 1
        if not consumer.no_ack:
            channel.unacked[tag] = Unacked(queue.name, message, consumer)
            consumer.unacked += 1
        self.write(
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
        self.write(self.frames.close(code, text[:255], class_id, method_id))
        self.state = "closing"

    def _channel_error(
        self, channel: BrokerChannel, code: int, text: str, method: spec.Method | None = None
    ) -> None:
        class_id, method_id = (method.CLASS_ID, method.METHOD_ID) if method else (0, 0)
        self.vhost.release_channel(channel)
        channel.closing = True
        self.write(
            self.frames.channel_close(channel.channel_id, code, text[:255], class_id, method_id)
        )

    def _release_all(self) -> None:
        for channel in list(self.channels.values()):
            self.vhost.release_channel(channel)

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
                self.write(self.frames.close_ok())
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
            if self.fault == "refuse-login" or not self._authenticate(method):
                self._connection_error(
                    spec.ACCESS_REFUSED,
                    f"ACCESS_REFUSED - Login was refused using authentication mechanism "
                    f"{method.mechanism}. For details see the broker logfile.",
                )
                return
            if self.fault == "maintenance":
                self._connection_error(
                    spec.CONNECTION_FORCED,
                    "CONNECTION_FORCED - Node was put into maintenance mode",
                )
                return
            self.state = "tune-ok"
            self.write(self.frames.tune(self.channel_max, self.frame_max, self.broker.heartbeat))
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
            if self.fault == "blocked":
                self.write(self.frames.blocked("low on memory"))
                self.state = "blocked"
                return
            if self.fault == "booting":
                self._connection_error(
                    spec.NOT_ALLOWED, f"NOT_ALLOWED - vhost {method.virtual_host} is down"
                )
                return
            if method.virtual_host not in self.broker.vhosts:
                self._connection_error(
                    spec.NOT_ALLOWED, f"NOT_ALLOWED - vhost {method.virtual_host} not found"
                )
                return
            self.virtual_host = method.virtual_host
            self.state = "open"
            self.write(self.frames.open_ok())
            if self.heartbeat and self.call_later is not None:
                self._heartbeat_call = self.call_later(self.heartbeat / 2, self._send_heartbeat)
        elif state == "open" and isinstance(method, spec.ConnectionClose):
            self._release_all()
            self.write(self.frames.close_ok())
            self._lose()
        elif state == "open" and isinstance(method, spec.ConnectionUpdateSecret):
            self.write(self.frames.update_secret_ok())
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
            self.write(self.frames.channel_open_ok(channel_id))
            return
        if channel is None:
            self._connection_error(spec.CHANNEL_ERROR, "CHANNEL_ERROR - expected 'channel.open'")
            return
        if channel.closing:
            # spec 1.5.2.5: after Channel.Close only Close and Close-Ok count.
            if isinstance(payload, spec.ChannelCloseOk):
                del self.channels[channel_id]
            elif isinstance(payload, spec.ChannelClose):
                self.write(self.frames.channel_close_ok(channel_id))
            return
        content = channel.content
        if frame_type == spec.FRAME_METHOD:
            assert isinstance(payload, spec.Method)
            if content is not None:
                self._connection_error(
                    spec.UNEXPECTED_FRAME, "UNEXPECTED_FRAME - expected content", payload
                )
                return
            if isinstance(payload, spec.BasicPublish):
                channel.content = [payload, None, 0, []]
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
        assert channel.content is not None
        method, properties, _, parts = channel.content
        channel.content = None
        body = b"".join(parts)
        self.published.append((channel.channel_id, method.exchange, method.routing_key, body))
        self._run(channel, method, lambda: self.methods.publish(channel, method, properties, body))

    def _run(self, channel: BrokerChannel, method: spec.Method, action: Callable[[], None]) -> None:
        try:
            action()
        except BrokerConnectionError as exc:
            self._connection_error(exc.code, exc.text, method)
        except BrokerChannelError as exc:
            self._channel_error(channel, exc.code, exc.text, method)


def _nothing() -> None:
    pass
