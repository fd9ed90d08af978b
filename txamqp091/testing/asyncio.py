"""The fake broker on asyncio (and so Tornado): served on a loopback port.

::

    broker = FakeBroker()
    async with await serve(broker) as server:
        conn = await txamqp091.tornado.connect(server.url())
        ...

Each accepted socket gets a :class:`~txamqp091.testing.BrokerConnection` from
``broker.connect()``; :class:`BrokerTransport` carries its bytes and runs its
heartbeats on the loop. The broker's scripted faults
(:meth:`~txamqp091.testing.FakeBroker.script`) apply per accepted socket, so a
client's reconnect loop can be tested against drops, silent peers and refused logins.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from ._connection import BrokerConnection
from .broker import FakeBroker

__all__ = ["BrokerTransport", "FakeServer", "serve"]


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
