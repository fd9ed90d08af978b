"""The Twisted Protocol that drives the shared client, and its waiter runtime.

``dataReceived`` feeds the core, dispatches the events (settling Deferreds)
and writes what the core queued, once. Time comes from the ``IReactorTime``
given to the protocol, so tests drive heartbeats with ``task.Clock``.
"""

from __future__ import annotations

from collections.abc import Callable
from errno import ENOBUFS, EWOULDBLOCK
from typing import Any

from twisted.internet import main, tcp
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..client.spool import WriteSpool
from ..params import ConnectionParameters
from .channel import Connection
from .runtime import DeferredRuntime

__all__ = ["AMQPProtocol"]

log = Logger()

#: Bytes per socket read: below glibc's mmap threshold (128 KiB), so a read's buffer
#: comes from the heap, not from a fresh mapping...
READ_SIZE = 96 * 1024
#: ...unless the last read filled its buffer: then 1 MiB at a time.
LARGE_READ_SIZE = 1 << 20


@implementer(IPushProducer)
class AMQPProtocol(Protocol, DeferredRuntime):
    """An AMQP 0-9-1 client connection over one Twisted transport.

    :param params: the connection parameters.
    :param clock: the reactor (or a ``Clock``) used for heartbeats and timeouts.

    ``ready`` fires with the :class:`~txamqp091.twisted.Connection` once the
    broker has sent Connection.Open-Ok, or fails if the handshake does not finish.
    """

    def __init__(self, params: ConnectionParameters, clock: IReactorTime | None = None) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        DeferredRuntime.__init__(self, clock)
        # DeferredRuntime.now without its call (once per read): the clock's own method.
        self.now = clock.seconds  # type: ignore[method-assign]
        self.connection = Connection(params, self)
        self.ready: Deferred[Connection] = self.connection._opened
        self._reading_paused = False
        #: The TCP/UNIX transport when writes may go straight to its socket (see write()).
        self._socket_transport: Any = None
        #: Where _read_socket hands the bytes it read (set in connectionMade).
        self._received: Callable[[bytes], None] = self.dataReceived
        self._read_size = READ_SIZE
        #: Large writes not yet handed to the transport, and what follows them, in order.
        self._spool = WriteSpool()

    # -- Protocol ----------------------------------------------------------------------------

    def connectionMade(self) -> None:
        transport: Any = self.transport
        # Twisted pauses its producer at 64 KiB buffered, which would make a publishing
        # loop stop and go every few dozen messages: allow 1 MiB before pushing back.
        for attribute in ("bufferSize", "SEND_LIMIT"):
            if isinstance(getattr(transport, attribute, None), int):
                setattr(transport, attribute, max(getattr(transport, attribute), 1 << 20))
        transport.registerProducer(self, True)
        # Frames are whole messages, written once per loop turn: Nagle's algorithm would
        # only hold a small write (an ack, an RPC request) back behind an unacked one.
        # asyncio, and so the Tornado adapter, sets it on every TCP socket too.
        set_no_delay = getattr(transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            try:
                set_no_delay(True)
            except OSError:  # not a TCP socket after all (UNIX sockets)
                pass
        if (
            isinstance(transport, tcp.Connection)
            and hasattr(transport, "_tempDataLen")
            and isinstance(getattr(transport, "SEND_LIMIT", None), int)
        ):
            self._socket_transport = transport
            # Bytes read go straight to the connection (what dataReceived does), unless a
            # subclass put something of its own in between.
            if type(self).dataReceived is AMQPProtocol.dataReceived:
                self._received = self.connection.data_received
            else:
                self._received = self.dataReceived
            # The 1 MiB above is also the size Twisted reads with: recv(1 MiB) allocates
            # above malloc's mmap threshold, so every read cost mmap + mremap + munmap
            # (three syscalls and page faults per RPC reply). Reads stay below it.
            transport.doRead = self._read_socket  # type: ignore[method-assign]
        self.connection.connection_made()

    def _read_socket(self) -> Any:
        """``tcp.Connection.doRead`` with a read size of its own (see connectionMade)."""
        transport = self._socket_transport
        size = self._read_size
        try:
            data = transport.socket.recv(size)
        except OSError as se:
            if se.args[0] == EWOULDBLOCK:
                return None
            return main.CONNECTION_LOST
        # A full read means more is waiting (a large message, a backlog): read it in
        # big pieces, whose mapping costs little per byte; small reads again after.
        self._read_size = LARGE_READ_SIZE if len(data) == size else READ_SIZE
        if not data:
            return main.CONNECTION_DONE
        # As transport._dataReceived, without its two calls on every read.
        self._received(data)
        return None

    def dataReceived(self, data: bytes) -> None:
        self.connection.data_received(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._spool.clear()
        text = reason.getErrorMessage() if reason is not None else "connection lost"
        self.connection.connection_lost(text)

    # -- IPushProducer: the transport tells us its buffer is full ----------------------------

    def pauseProducing(self) -> None:
        self._spool.full = True
        self.connection.pause_writing()

    def resumeProducing(self) -> None:
        self._spool.full = False
        if self._spool:
            self._pump()
        if not self._spool.full:
            self.connection.resume_writing()

    def stopProducing(self) -> None:
        pass

    # -- Runtime: the transport half -------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Hand ``data`` to the transport; large writes a slice at a time (:mod:`..client.spool`)."""
        direct = self._socket_transport
        transport: Any = self.transport
        if (
            direct is not None
            and direct is transport
            and not direct.dataBuffer
            and not direct._tempDataLen
            and direct.connected
            and not direct.disconnecting
            and not direct._writeDisconnected
            and len(data) <= direct.SEND_LIMIT
            and len(data) <= self._spool.spools_above  # not self._spool.takes(data)
        ):
            # _write_now's direct send, inline for its common case (a write of at most
            # SEND_LIMIT bytes, nothing spooled or buffered): one Python call less per
            # write, which is one per RPC half. Its docstring says why it sends here.
            try:
                sent = direct.socket.send(data)
            except OSError as se:
                sent = 0 if se.args[0] in (EWOULDBLOCK, ENOBUFS) else -1
            if sent != len(data):
                direct.write(data[sent:] if sent > 0 else data)
            return
        if transport is None:
            return
        spool = self._spool
        if spool.takes(data):
            spool.add(data)
            self._pump()
            return
        self._write_now(data)

    def _pump(self) -> None:
        """Feed spooled bytes to the transport until it pushes back (pauseProducing)."""
        spool = self._spool
        if spool.pump(lambda piece: self._write_now(bytes(piece))) and spool.close_pending:
            spool.close_pending = False
            if self.transport is not None:
                self.transport.loseConnection()

    def _write_now(self, data: bytes) -> None:
        """Send now when nothing is queued in the transport, else queue behind it.

        ``transport.write`` only buffers: the bytes leave on the reactor's next turn,
        once epoll reports the socket writable, which costs a loop turn and two
        ``epoll_ctl`` calls per write, and an RPC's round trip waits for that turn.
        With an empty buffer, the bytes are handed to the socket here (what asyncio's
        transports do); whatever the socket does not take goes to the transport's
        buffer, behind nothing, so order is kept and its backpressure still applies.
        """
        transport: Any = self.transport
        if transport is None:
            return
        direct = self._socket_transport
        if (
            direct is transport
            and not transport.dataBuffer
            and not transport._tempDataLen
            and transport.connected
            and not transport.disconnecting
            and not transport._writeDisconnected
        ):
            # transport.writeSomeData, less its memoryview and untilConcludes (Python
            # retries a send interrupted by a signal itself, PEP 475).
            size = len(data)
            if size <= transport.SEND_LIMIT:
                try:
                    sent = transport.socket.send(data)
                except OSError as se:
                    # A full send buffer sends nothing now; anything else is a lost
                    # connection, which the transport's own write path finds.
                    sent = 0 if se.args[0] in (EWOULDBLOCK, ENOBUFS) else -1
            else:
                written = transport.writeSomeData(data)
                sent = written if type(written) is int else -1
            if sent == size:
                return
            if sent > 0:
                data = data[sent:]
        transport.write(data)

    def close_transport(self, abort: bool = False) -> None:
        transport = self.transport
        if transport is None:
            return
        if abort:
            self._spool.clear()
            transport.abortConnection()  # type: ignore[attr-defined]
        elif self._spool:
            self._spool.close_pending = True  # after the spooled bytes (see _pump)
        else:
            transport.loseConnection()

    def pause_reading(self) -> None:
        if self.transport is not None and not self._reading_paused:
            self._reading_paused = True
            self.transport.pauseProducing()  # type: ignore[attr-defined]

    def resume_reading(self) -> None:
        if self.transport is not None and self._reading_paused:
            self._reading_paused = False
            self.transport.resumeProducing()  # type: ignore[attr-defined]
