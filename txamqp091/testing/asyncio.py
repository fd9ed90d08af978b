"""The fake broker on asyncio (and so Tornado): in memory, or served on a loopback port.

::

    broker = FakeBroker()
    conn = await txamqp091.tornado.connect(params, endpoint=MemoryEndpoint(broker))
    # or, over real sockets:
    async with await serve(broker) as server:
        conn = await txamqp091.tornado.connect(server.url())
        ...

:class:`MemoryEndpoint` joins the client's protocol to a broker connection with a
:class:`MemoryTransport` that hands bytes over on the next loop turn, as a socket
would: no port, no system call.

Each accepted socket gets a :class:`~txamqp091.testing.BrokerConnection` from
``broker.connect()``; :class:`BrokerTransport` carries its bytes and runs its
heartbeats on the loop. The broker's scripted faults
(:meth:`~txamqp091.testing.FakeBroker.script`) apply per accepted socket, so a
client's reconnect loop can be tested against drops, silent peers and refused logins.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from ._connection import BrokerConnection
from .broker import FakeBroker

__all__ = ["BrokerTransport", "FakeServer", "MemoryEndpoint", "MemoryTransport", "serve"]


class BrokerTransport(asyncio.Protocol):
    """Carries one :class:`BrokerConnection`'s bytes over an asyncio transport."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.connection: BrokerConnection = server.broker.connect()
        self.transport: asyncio.Transport | None = None
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        loop = asyncio.get_running_loop()
        self.server.accepted_at.append(loop.time())
        self.server.connections.append(self.connection)
        connection = self.connection
        connection.on_output = self._flush
        connection.call_later = loop.call_later
        connection.connection_made()

    def data_received(self, data: bytes) -> None:
        self.connection.receive_data(data)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost reports it

    def connection_lost(self, exc: Exception | None) -> None:
        self.connection.connection_lost()

    def _flush(self) -> None:
        transport = self.transport
        if transport is None or self._closing:
            return
        connection = self.connection
        if connection.abort_requested:
            self._closing = True
            transport.abort()
            return
        data = connection.data_to_send()
        if data:
            transport.write(data)
        if connection.close_requested:
            self._closing = True
            transport.close()


class FakeServer:
    """``broker`` listening on ``host``:``port`` (0 picks a free port); see :func:`serve`."""

    def __init__(self, broker: FakeBroker, host: str = "127.0.0.1", port: int = 0) -> None:
        self.broker = broker
        self.host = host
        self.port = port
        #: ``loop.time()`` of every accepted socket, oldest first.
        self.accepted_at: list[float] = []
        #: The broker side of every accepted socket, oldest first (closed ones too).
        self.connections: list[BrokerConnection] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> FakeServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: BrokerTransport(self), self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, query: str = "", user: str = "guest", password: str = "guest") -> str:
        """An ``amqp://`` URL for this server (heartbeats off unless ``query`` asks)."""
        url = f"amqp://{user}:{password}@{self.host}:{self.port}/%2F?heartbeat=0"
        return f"{url}&{query}" if query else url

    async def close(self) -> None:
        """Stop listening and drop every connection still open."""
        if self._server is not None:
            self._server.close()
        for connection in list(self.broker.connections):
            connection.drop()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def serve(broker: FakeBroker, host: str = "127.0.0.1", port: int = 0) -> FakeServer:
    """Serve ``broker`` on a loopback port; ``await server.close()`` (or ``async with``) ends it."""
    return await FakeServer(broker, host, port).start()


class MemoryTransport(asyncio.Transport):
    """The client's transport to one broker connection, in memory.

    Bytes move one loop turn after they are written (``call_soon``, in order), both
    ways; ``pause_reading`` holds the broker's bytes back until ``resume_reading``.
    ``close()`` delivers what is pending first; ``abort()`` (or the broker's ``drop()``)
    does not.
    """

    def __init__(self, connection: BrokerConnection, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.connection = connection
        self.protocol = protocol
        self._loop = asyncio.get_running_loop()
        self._held = bytearray()
        self._paused = False
        self._closing = False
        self._lost = False

    def start(self) -> None:
        """Connect both sides: the broker's first, then ``protocol.connection_made``."""
        connection = self.connection
        connection.on_output = self._wake
        connection.call_later = self._loop.call_later
        connection.connection_made()
        self.protocol.connection_made(self)

    # -- the broker's side ----------------------------------------------------------------

    def _wake(self) -> None:
        self._loop.call_soon(self._from_broker)

    def _from_broker(self) -> None:
        if self._lost:
            return
        connection = self.connection
        if connection.abort_requested:
            self._lose(ConnectionResetError("the broker dropped the connection"))
            return
        self._held += connection.data_to_send()
        self._deliver()
        if connection.close_requested and not self._held:
            self._lose(None)

    def _deliver(self) -> None:
        if self._held and not self._paused and not self._lost:
            data = bytes(self._held)
            self._held.clear()
            self.protocol.data_received(data)

    def _to_broker(self, data: bytes) -> None:
        if not self._lost:
            self.connection.receive_data(data)

    def _lose(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = self._closing = True
        self._held.clear()
        self.connection.connection_lost()
        self.protocol.connection_lost(exc)

    # -- asyncio.Transport ---------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._closing:
            self._loop.call_soon(self._to_broker, bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return False

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            # After what was written before: call_soon keeps the order.
            self._loop.call_soon(self._lose, None)

    def abort(self) -> None:
        self._closing = True
        self._lose(None)

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            self._loop.call_soon(self._deliver)

    def is_reading(self) -> bool:
        return not self._paused

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5672), "sockname": ("127.0.0.1", 40000)}.get(
            name, default
        )


class MemoryEndpoint:
    """An asyncio client endpoint whose every connection reaches ``broker`` in memory.

    Pass it as ``endpoint=`` to ``txamqp091.tornado.connect`` or ``AMQPClient``; each
    connection attempt gets a new :class:`MemoryTransport`, listed in :attr:`transports`.
    """

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        #: One transport per connection made, oldest first.
        self.transports: list[MemoryTransport] = []

    async def __call__(self, params: object, protocol: asyncio.Protocol) -> None:
        transport = MemoryTransport(self.broker.connect(), protocol)
        self.transports.append(transport)
        transport.start()
