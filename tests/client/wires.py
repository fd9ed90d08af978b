"""A client connection on both adapters, fed scripted broker frames, no network.

``TwistedWire`` drives the Twisted ``AMQPProtocol`` over a ``StringTransport`` and a
``Clock``; ``AsyncioWire`` drives the asyncio one over a transport that only records
writes. Both give the same methods, so one test runs on both adapters.
"""

from __future__ import annotations

import asyncio
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from txamqp091 import ConnectionParameters
from txamqp091.core import spec
from txamqp091.core.testing import ServerFrames, parse_client_frames, parse_published_messages
from txamqp091.tornado.protocol import AMQPProtocol as AsyncioProtocol
from txamqp091.twisted.protocol import AMQPProtocol as TwistedProtocol


class _RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.closing = False

    def write(self, data: Any) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class TwistedWire:
    name = "twisted"

    def __init__(self) -> None:
        self.clock = Clock()
        self.frames = ServerFrames()
        self.protocol = TwistedProtocol(ConnectionParameters(), self.clock)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    async def settle(self) -> None:
        self.clock.advance(0)

    async def raw(self) -> bytes:
        await self.settle()
        data = self.transport.value()
        self.transport.clear()
        return data

    async def feed(self, data: bytes) -> None:
        self.protocol.dataReceived(data)
        await self.settle()

    def done(self, waiter: Any) -> bool:
        return bool(waiter.called)

    async def result(self, waiter: Any) -> Any:
        await self.settle()
        assert isinstance(waiter, Deferred)
        outcome: list[Any] = []
        waiter.addBoth(outcome.append)
        assert outcome, "no result yet"
        value = outcome[0]
        if hasattr(value, "raiseException"):
            value.raiseException()
        return value

    async def open(self) -> Any:
        assert await self.raw() == spec.PROTOCOL_HEADER
        await self.feed(self.frames.handshake())
        conn = await self.result(self.protocol.ready)
        await self.raw()
        return conn

    async def channel(self, conn: Any) -> Any:
        d = conn.channel()
        await self.raw()
        await self.feed(self.frames.channel_open_ok(1))
        return await self.result(d)

    async def published(self) -> list[bytes]:
        return [m.body for m in parse_published_messages(await self.raw())]

    async def methods(self) -> list[spec.Method]:
        data = await self.raw()
        return [f.payload for f in parse_client_frames(data) if isinstance(f.payload, spec.Method)]


class AsyncioWire(TwistedWire):
    name = "asyncio"

    def __init__(self) -> None:
        self.frames = ServerFrames()
        self.protocol = AsyncioProtocol(ConnectionParameters())  # type: ignore[assignment]
        self.atransport = _RecordingTransport()
        self.protocol.connection_made(self.atransport)  # type: ignore[attr-defined]

    async def settle(self) -> None:
        for _ in range(3):
            await asyncio.sleep(0)

    async def raw(self) -> bytes:
        await self.settle()
        data = bytes(self.atransport.data)
        self.atransport.data.clear()
        return data

    async def feed(self, data: bytes) -> None:
        self.protocol.data_received(data)  # type: ignore[attr-defined]
        await self.settle()

    def done(self, waiter: Any) -> bool:
        return bool(waiter.done())

    async def result(self, waiter: Any) -> Any:
        await self.settle()
        assert waiter.done(), "no result yet"
        return waiter.result()


WIRES = [TwistedWire, AsyncioWire]
