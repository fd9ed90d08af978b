"""The asyncio Protocol that drives the shared client, and its Future runtime.

``data_received`` feeds the core, dispatches the events (settling Futures) and
writes what the core queued, once. The transport's ``pause_writing`` /
``resume_writing`` hold publishes while its buffer is full; consumers that fall
behind pause reading. Tornado 6 runs on asyncio, so the same objects serve
Tornado coroutines and plain asyncio code.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from ..client.spool import WriteSpool
from ..params import ConnectionParameters
from ._direct import reader_replaceable, selector_socket
from .channel import Connection
from .runtime import Clock, FutureRuntime, observe_quietly

__all__ = ["AMQPProtocol"]

#: Bytes per socket read. asyncio's socket transport reads 256 KiB at a time
#: (``max_size``): above glibc's mmap threshold (128 KiB), so each read's buffer was
#: a fresh mapping, shrunk to what came and unmapped: mmap, mremap and munmap, three
#: system calls and page faults per read (per RPC reply). Below it, reads stay on
#: the heap...
READ_SIZE = 96 * 1024
#: ...unless the last read filled its buffer (a large message, a backlog): then
#: 1 MiB at a time, whose mapping costs little per byte; small reads again after.
LARGE_READ_SIZE = 1 << 20
#: Writes up to this size go straight to the socket while the transport's buffer is
#: empty (:mod:`._direct`); larger ones (a batch of publishes, a big body) go through
#: the transport, whose cost is nothing next to their size and which, when the socket
#: takes only part, buffers the rest without a second send.
DIRECT_WRITE_MAX = 64 * 1024


class AMQPProtocol(asyncio.Protocol, FutureRuntime):
    """An AMQP 0-9-1 client connection over one asyncio transport.

    :param params: the connection parameters.
    :param loop: the event loop; the running loop when omitted.
    :param clock: time and timers (heartbeats, timeouts); the loop when omitted.

    ``ready`` is the Future of the :class:`~txamqp091.tornado.Connection`: it
    completes once the broker has sent Connection.Open-Ok, or fails if the
    handshake does not finish.
    """

    def __init__(
        self,
        params: ConnectionParameters,
        loop: asyncio.AbstractEventLoop | None = None,
        clock: Clock | None = None,
    ) -> None:
        FutureRuntime.__init__(self, loop, clock)
        self.transport: asyncio.Transport | None = None
        #: The transport whose read size we set (asyncio's socket transport), if any.
        self._sized: Any = None
        #: asyncio's selector socket transport, when this protocol reads and writes on
        #: its socket itself (:mod:`._direct`), and that socket.
        self._direct: Any = None
        self._sock: socket.socket | None = None
        self._reading_paused = False
        #: Large writes not yet handed to the transport, and what follows them, in order.
        self._spool = WriteSpool()
        self.connection = Connection(params, self)
        self.ready: asyncio.Future[Connection] = self.connection._opened
        # Nobody may await ``ready`` (the connect attempt gave up): never log its failure.
        self.ready.add_done_callback(observe_quietly)

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if type(getattr(transport, "max_size", None)) is int:
            # CPython's selector transport reads recv(self.max_size) each time.
            self._sized = transport
            transport.max_size = READ_SIZE  # type: ignore[attr-defined]
        sock = selector_socket(transport)
        if sock is not None:
            self._direct = transport
            self._sock = sock
            # What the transport's reader calls: its _read_ready__data_received.
            transport._read_ready_cb = self._read_now  # type: ignore[attr-defined]
            if reader_replaceable(transport):
                # And the reader itself, one call less per read: what resume_reading()
                # registers from now on, and, on the next turn, in place of the one the
                # transport registers on this turn (after this call).
                transport._read_ready = self._read_now  # type: ignore[attr-defined]
                self._loop.call_soon(self._adopt_reader, transport)
        self.connection.connection_made()

    def data_received(self, data: bytes) -> None:
        sized = self._sized
        if sized is not None:
            sized.max_size = LARGE_READ_SIZE if len(data) == sized.max_size else READ_SIZE
        self.connection.data_received(data)

    def _adopt_reader(self, transport: Any) -> None:
        """Register :meth:`_read_now` as the socket's reader, as the transport registers
        its own (``_add_reader``: nothing while reading is paused or the transport closes)."""
        if self._direct is transport:
            transport._add_reader(transport._sock_fd, self._read_now)

    def _read_now(self) -> None:
        """The selector transport's ``_read_ready__data_received`` and :meth:`data_received`
        in one: the same recv, end-of-file and error handling, two Python calls less."""
        transport = self._direct
        if transport is None or transport._conn_lost:  # a reader run after connection_lost
            return
        size = transport.max_size
        try:
            data = self._sock.recv(size)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            transport._fatal_error(exc, "Fatal read error on socket transport")
            return
        if not data:
            transport._read_ready__on_eof()
            return
        if len(data) == size:
            transport.max_size = LARGE_READ_SIZE
        elif size != READ_SIZE:
            transport.max_size = READ_SIZE
        try:
            self.connection.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            transport._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost reports it

    def connection_lost(self, exc: Exception | None) -> None:
        self._spool.clear()
        self._direct = self._sock = None
        text = str(exc) if exc is not None and str(exc) else "connection closed"
        self.connection.connection_lost(text)

    # -- Runtime: the confirmed publishes' callbacks ------------------------------------------

    def _run_calls(self, calls: list[tuple[Callable[..., object], Any, Any]]) -> None:
        """Run the done callbacks of a read's confirmed publishes (see
        :meth:`FutureRuntime.resolve_all`) as a read's dispatch runs
        (``ConnectionLogic._run_as_read``): the publishes that refill a confirm window are
        written once, at the end, instead of by a flush scheduled for the next loop turn.
        The same bytes in the same order (the loop's next turn ran that flush before any
        read it polled), with one Handle and one loop turn (its poll) less per read of
        acks."""
        self.connection._run_as_read(super()._run_calls, calls)

    # -- write backpressure: the transport's buffer is full ----------------------------------

    def pause_writing(self) -> None:
        self._spool.full = True
        self.connection.pause_writing()

    def resume_writing(self) -> None:
        self._spool.full = False
        if self._spool:
            self._pump()
        if not self._spool.full:
            self.connection.resume_writing()

    # -- Runtime: the transport half -------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Hand ``data`` to the transport; large writes a slice at a time (:mod:`..client.spool`)."""
        spool = self._spool
        direct = self._direct
        if (
            direct is not None
            and len(data) <= DIRECT_WRITE_MAX
            and not direct._buffer
            and len(data) <= spool.spools_above  # not spool.takes(data), without its call
        ):
            # The transport's own write for this case (its buffer empty: send now), less
            # its frame and its checks for what this protocol never does (write_eof,
            # sendfile); a closing or lost transport takes the usual path below.
            if not direct._closing and not direct._conn_lost:
                try:
                    sent = self._sock.send(data)  # type: ignore[union-attr]
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    direct._fatal_error(exc, "Fatal write error on socket transport")
                    return
                if sent == len(data):
                    return
                direct.write(data[sent:])  # buffers the rest and waits for the socket
                return
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if spool.takes(data):
            spool.add(data)
            self._pump()
            return
        transport.write(data)

    def _pump(self) -> None:
        """Feed spooled bytes to the transport until it pushes back (pause_writing)."""
        transport = self.transport
        if transport is None:
            return
        spool = self._spool
        if spool.pump(transport.write) and spool.close_pending:
            spool.close_pending = False
            transport.close()

    def close_transport(self, abort: bool = False) -> None:
        transport = self.transport
        if transport is None:
            return
        if abort:
            self._spool.clear()
            transport.abort()
        elif self._spool:
            self._spool.close_pending = True  # after the spooled bytes (see _pump)
        else:
            transport.close()

    def pause_reading(self) -> None:
        transport = self.transport
        if transport is not None and not self._reading_paused and not transport.is_closing():
            self._reading_paused = True
            transport.pause_reading()

    def resume_reading(self) -> None:
        transport = self.transport
        if transport is not None and self._reading_paused:
            self._reading_paused = False
            if not transport.is_closing():
                transport.resume_reading()
