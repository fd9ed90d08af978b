"""Channel 0: the connection-level methods the broker sends, and their answers.

:class:`ConnectionMethods` is a base class of :class:`~.connection.Connection`;
it holds the handshake (Start, Secure, Tune, Open-Ok), the close handshake, and
Blocked, Unblocked and Update-Secret-Ok. ``Connection._parse`` calls
:meth:`~ConnectionMethods._handle_connection_method` for a method frame on
channel 0; frames on other channels never come here, so the per-frame path is
unchanged. The attributes annotated below are the connection's own, set in
``Connection.__init__``.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import (
    AuthenticationError,
    ConnectionClosedByBroker,
    ConnectionClosedByClient,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    ProtocolError,
)
from . import spec
from .events import (
    ConnectionBlocked,
    ConnectionClosed,
    ConnectionOpened,
    ConnectionUnblocked,
    Event,
    MethodReply,
)
from .frames import encode_method_frame
from .handshake import Credentials, HeartbeatSetting, negotiate, negotiate_heartbeat
from .heartbeat import HeartbeatMonitor
from .states import CONNECTION_TRANSITIONS, ConnectionState

__all__ = ["MAX_FRAME_LIMIT", "ConnectionMethods"]

#: Protocol header frames larger than this cannot be sent before Tune (spec 4.2.3
#: lets a peer send frames of FRAME_MIN_SIZE before negotiation; we accept our own
#: frame_max too, to be lenient with brokers with large server-properties).
MAX_FRAME_LIMIT = 2**31 - 1


class ConnectionMethods:
    """The channel-0 method handlers of :class:`~.connection.Connection`."""

    # The connection's attributes these handlers read and set (Connection.__init__).
    credentials: Credentials
    virtual_host: str
    client_properties: dict[str, Any]
    locale: str
    state: ConnectionState
    channel_max: int
    frame_max: int
    heartbeat: int
    server_properties: dict[str, Any]
    is_blocked: bool
    max_message_size: int
    _requested_channel_max: int
    _requested_frame_max: int
    _requested_heartbeat: HeartbeatSetting
    _out: list[bytes]
    _events: list[Event]
    _heartbeat: HeartbeatMonitor | None
    _update_secret_pending: int
    _close_requested_code: int

    def _handle_connection_method(
        self, index: int, buf: bytes | bytearray, start: int, end: int, now: float
    ) -> None:
        method_class = spec.METHODS.get(index)
        if method_class is None:
            raise ProtocolError(
                spec.NOT_IMPLEMENTED, f"NOT_IMPLEMENTED - unknown method {index:#x}"
            )
        method = method_class.decode(buf, start, end)
        next_state = CONNECTION_TRANSITIONS.get((self.state, index))
        if next_state is None:
            if self.state is ConnectionState.CLOSING:
                return  # only Close and Close-Ok matter now (spec 1.4.2.5)
            raise ProtocolError(
                spec.COMMAND_INVALID,
                f"COMMAND_INVALID - {method.NAME} not allowed while the connection is "
                f"{self.state.value}",
            )
        state = self.state
        self.state = next_state
        if isinstance(method, spec.ConnectionStart):
            self._on_start(method)
        elif isinstance(method, spec.ConnectionSecure):
            try:
                response = self.credentials.response_for(method.challenge)
            except AuthenticationError as exc:
                # PLAIN and EXTERNAL have no answer to a challenge; receive_data must not raise.
                self.state = ConnectionState.CLOSED
                self._events.append(ConnectionClosed(reply_code=0, reply_text=str(exc), error=exc))
                return
            self._send0(spec.ConnectionSecureOk(response=response))
        elif isinstance(method, spec.ConnectionTune):
            self._on_tune(method, now)
        elif isinstance(method, spec.ConnectionOpenOk):
            self._events.append(
                ConnectionOpened(
                    server_properties=self.server_properties,
                    channel_max=self.channel_max,
                    frame_max=self.frame_max,
                    heartbeat=self.heartbeat,
                )
            )
        elif isinstance(method, spec.ConnectionClose):
            self._on_close(method, state)
        elif isinstance(method, spec.ConnectionCloseOk):
            self._heartbeat = None
            code = self._close_requested_code
            error = None if code == 200 else ConnectionClosedByClient(code, "closed by client")
            self._events.append(
                ConnectionClosed(reply_code=code, reply_text="closed by client", error=error)
            )
        elif isinstance(method, spec.ConnectionBlocked):
            self.is_blocked = True
            self._events.append(ConnectionBlocked(reason=method.reason))
        elif isinstance(method, spec.ConnectionUnblocked):
            self.is_blocked = False
            self._events.append(ConnectionUnblocked())
        elif isinstance(method, spec.ConnectionUpdateSecretOk):
            if not self._update_secret_pending:
                raise ProtocolError(
                    spec.COMMAND_INVALID, "COMMAND_INVALID - update-secret-ok without a request"
                )
            self._update_secret_pending -= 1
            self._events.append(MethodReply(channel_id=0, method=method))

    def _send0(self, method: spec.Method) -> None:
        self._out.append(encode_method_frame(0, method))

    def _on_start(self, start: spec.ConnectionStart) -> None:
        if (start.version_major, start.version_minor) != (0, 9):
            raise ProtocolError(
                spec.NOT_IMPLEMENTED,
                f"NOT_IMPLEMENTED - protocol {start.version_major}-{start.version_minor}",
            )
        self.server_properties = start.server_properties
        mechanism = self.credentials.mechanism
        offered = start.mechanisms.split()
        if mechanism.encode() not in offered:
            self.state = ConnectionState.CLOSED
            error = AuthenticationError(
                f"the broker offers {b' '.join(offered).decode(errors='replace')!r}, "
                f"not {mechanism}"
            )
            self._events.append(ConnectionClosed(reply_code=0, reply_text=str(error), error=error))
            return
        self._send0(
            spec.ConnectionStartOk(
                client_properties=self.client_properties,
                mechanism=mechanism,
                response=self.credentials.response_for(start.mechanisms),
                locale=self.locale,
            )
        )

    def _on_tune(self, tune: spec.ConnectionTune, now: float) -> None:
        self.channel_max = negotiate(self._requested_channel_max, tune.channel_max, 65535)
        frame_max = negotiate(self._requested_frame_max, tune.frame_max, MAX_FRAME_LIMIT)
        self.frame_max = max(frame_max, spec.FRAME_MIN_SIZE)
        self.heartbeat = negotiate_heartbeat(self._requested_heartbeat, tune.heartbeat)
        if not 0 <= self.heartbeat <= 65535:
            raise ValueError(f"heartbeat must be between 0 and 65535, got {self.heartbeat}")
        self._send0(
            spec.ConnectionTuneOk(
                channel_max=self.channel_max, frame_max=self.frame_max, heartbeat=self.heartbeat
            )
        )
        self._send0(spec.ConnectionOpen(virtual_host=self.virtual_host))
        if self.heartbeat:
            self._heartbeat = HeartbeatMonitor(self.heartbeat, now)

    def _on_close(self, close: spec.ConnectionClose, state: ConnectionState) -> None:
        self._send0(spec.ConnectionCloseOk())
        self._heartbeat = None
        code, text = close.reply_code, close.reply_text
        error: Exception
        if state is ConnectionState.AWAIT_TUNE and code == spec.ACCESS_REFUSED:
            error = ProbableAuthenticationError(f"({code}) {text}", reply_code=code)
        elif state is ConnectionState.AWAIT_OPEN_OK and code in (
            spec.ACCESS_REFUSED,
            spec.NOT_ALLOWED,
        ):
            error = ProbableAccessDeniedError(f"({code}) {text}", reply_code=code)
        else:
            error = ConnectionClosedByBroker(code, text)
        self._events.append(ConnectionClosed(reply_code=code, reply_text=text, error=error))
