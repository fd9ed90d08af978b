"""A hostile AMQP "broker" of the tests' own: it plays a script, then listens.

The client under test connects to :class:`HostileServer` over real loopback
TCP, so both adapters (Twisted and asyncio/Tornado) meet exactly the same
bytes. The server runs in a thread of its own with blocking sockets; each
connection is handed to a *script*, a function of a :class:`Peer`, which
plays the broker's side (usually a normal handshake, then something
malformed, marked with :meth:`Peer.hostile`). When the script returns, the
server keeps reading until the client closes the socket, recording every
frame the client sent and when the end of stream came, so a test can check
that a Connection.Close with the right reply code went out *before* the
client closed.

Nothing here knows about Twisted or asyncio: tests wait for :attr:`done`
through a thread (``deferToThread`` / ``asyncio.to_thread``) or by polling.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from txamqp091.core import spec
from txamqp091.core.testing import ClientFrame, ServerFrames, parse_client_frames

__all__ = ["HostileServer", "Peer", "ScriptError"]

_frame_header = struct.Struct(">BHI")
#: How long the server waits for the client, at each read, before giving up.
READ_TIMEOUT = 5.0


class ScriptError(AssertionError):
    """The client did not do what the script waited for (a bug in the client or the test)."""


class Peer:
    """The broker's end of one connection, for a script to drive.

    :ivar frames: a :class:`~txamqp091.core.testing.ServerFrames` factory.
    :ivar received: every frame the client sent so far, decoded.
    :ivar hostile_at: ``time.monotonic()`` when the hostile bytes went out.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.frames = ServerFrames()
        self.received: list[ClientFrame] = []
        self.protocol_header = b""
        self.hostile_at: float | None = None
        self.eof_at: float | None = None
        #: The client ended with a TCP reset rather than a clean close.
        self.reset = False

    # -- writing ----------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def hostile(self, data: bytes = b"") -> None:
        """Send the bytes the client must reject, and start the clock on its answer."""
        self.hostile_at = time.monotonic()
        if data:
            self.send(data)

    def hang_up(self) -> None:
        """Half-close our side (FIN); the client may already have closed the socket."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    # -- reading ----------------------------------------------------------------------

    def _read_exactly(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self.sock.recv(n)
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def read_protocol_header(self) -> bytes:
        self.protocol_header = self._read_exactly(8)
        if self.protocol_header != spec.PROTOCOL_HEADER:
            raise ScriptError(f"unexpected protocol header {self.protocol_header!r}")
        return self.protocol_header

    def read_frame(self) -> ClientFrame:
        head = self._read_exactly(7)
        _, _, size = _frame_header.unpack(head)
        rest = self._read_exactly(size + 1)
        (frame,) = parse_client_frames(head + rest)
        self.received.append(frame)
        return frame

    def expect(self, method_class: type[spec.Method]) -> tuple[int, Any]:
        """Read frames (heartbeats and content skipped) until a ``method_class`` arrives."""
        while True:
            frame_type, channel_id, payload = self.read_frame()
            if frame_type != spec.FRAME_METHOD:
                continue
            if isinstance(payload, method_class):
                return channel_id, payload
            if isinstance(payload, spec.ConnectionClose):
                raise ScriptError(f"client closed while we waited for {method_class.NAME}")

    # -- broker behaviour ---------------------------------------------------------------

    def handshake(self, *, heartbeat: int = 0, frame_max: int = 131072) -> None:
        """A well-behaved broker's side of the handshake, up to Open-Ok."""
        self.read_protocol_header()
        self.send(self.frames.start())
        self.expect(spec.ConnectionStartOk)
        self.send(self.frames.tune(frame_max=frame_max, heartbeat=heartbeat))
        self.expect(spec.ConnectionTuneOk)
        self.expect(spec.ConnectionOpen)
        self.send(self.frames.open_ok())

    def answer(self, method_class: type[spec.Method], **fields: Any) -> tuple[int, Any]:
        """Wait for a request and send the reply the spec lists first."""
        channel_id, method = self.expect(method_class)
        self.send(self.frames.reply(channel_id, method, **fields))
        return channel_id, method

    def open_channel(self) -> int:
        channel_id, _ = self.answer(spec.ChannelOpen)
        return channel_id

    def drain_until_eof(self, timeout: float) -> None:
        """Record what the client sends until it closes the socket (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                self.read_frame()
            except EOFError:
                self.eof_at = time.monotonic()
                return
            except ConnectionError:
                self.eof_at = time.monotonic()
                self.reset = True
                return
            except TimeoutError:
                return

    # -- what the client sent -------------------------------------------------------

    def connection_closes(self) -> list[spec.ConnectionClose]:
        return [
            payload
            for frame_type, channel_id, payload in self.received
            if frame_type == spec.FRAME_METHOD
            and channel_id == 0
            and isinstance(payload, spec.ConnectionClose)
        ]

    def last_method(self) -> Any:
        methods = [p for t, _, p in self.received if t == spec.FRAME_METHOD]
        return methods[-1] if methods else None


Script = Callable[[Peer], None]


class HostileServer:
    """Listen on a free loopback port; play ``script`` on the first connection.

    :param script: what the broker does; runs in the server's thread.
    :param drain_timeout: how long to wait for the client to close afterwards.
    """

    def __init__(self, script: Script, drain_timeout: float = 5.0) -> None:
        self.script = script
        self.drain_timeout = drain_timeout
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(1)
        self.port: int = self._listener.getsockname()[1]
        self.peer: Peer | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hostile-server", daemon=True)

    def url(self, **options: Any) -> str:
        query = "&".join(f"{key}={value}" for key, value in options.items())
        base = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F?connection_attempts=1"
        return f"{base}&{query}" if query else base

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        try:
            self._listener.close()
        finally:
            self._thread.join(timeout=self.drain_timeout + READ_TIMEOUT + 1)

    def _run(self) -> None:
        try:
            self._listener.settimeout(READ_TIMEOUT)
            sock, _ = self._listener.accept()
        except OSError as exc:
            self.error = exc
            self.done.set()
            return
        with sock:
            sock.settimeout(READ_TIMEOUT)
            peer = self.peer = Peer(sock)
            try:
                self.script(peer)
            except EOFError:
                peer.eof_at = time.monotonic()
            except ConnectionError:
                peer.eof_at = time.monotonic()
                peer.reset = True
            except BaseException as exc:  # reported to the test through .error
                self.error = exc
            else:
                if peer.eof_at is None:
                    peer.drain_until_eof(self.drain_timeout)
            finally:
                self.done.set()
