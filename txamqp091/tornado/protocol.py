"""The asyncio Protocol that drives the shared client, and its Future runtime.

``data_received`` feeds the core, dispatches the events (settling Futures) and
writes what the core queued, once. The transport's ``pause_writing`` /
``resume_writing`` hold publishes while its buffer is full; consumers that fall
behind pause reading. Tornado 6 runs on asyncio, so the same objects serve
Tornado coroutines and plain asyncio code.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from ..client.runtime import Runtime, TimerHandle
from ..params import ConnectionParameters
from .channel import Connection

__all__ = ["AMQPProtocol"]

logger = logging.getLogger("txamqp091.tornado")

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "failure": logging.ERROR,
}


def _observe(future: asyncio.Future[Any]) -> None:
    """Mark an internal future's exception as retrieved, so asyncio does not log it."""
    if not future.cancelled():
        future.exception()


class AMQPProtocol(asyncio.Protocol, Runtime[asyncio.Future[Any]]):
    """An AMQP 0-9-1 client connection over one asyncio transport.

    :param params: the connection parameters.
    :param loop: the event loop; the running loop when omitted.

    ``ready`` is the Future of the :class:`~txamqp091.tornado.Connection`: it
    completes once the broker has sent Connection.Open-Ok, or fails if the
    handshake does not finish.
    """

    def __init__(
        self, params: ConnectionParameters, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._reading_paused = False
        self._tasks: set[asyncio.Future[Any]] = set()
        self.connection = Connection(params, self)
        self.ready: asyncio.Future[Connection] = self.connection._opened
        # Nobody may await ``ready`` (the connect attempt gave up): never log its failure.
        self.ready.add_done_callback(_observe)

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.connection.connection_made()

    def data_received(self, data: bytes) -> None:
        self.connection.data_received(data)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost reports it

    def connection_lost(self, exc: Exception | None) -> None:
        text = str(exc) if exc is not None and str(exc) else "connection closed"
        self.connection.connection_lost(text)

    # -- write backpressure: the transport's buffer is full ----------------------------------

    def pause_writing(self) -> None:
        self.connection.pause_writing()

    def resume_writing(self) -> None:
        self.connection.resume_writing()

    # -- Runtime ---------------------------------------------------------------------------------

    def create_waiter(self, canceller: Callable[[], None] | None = None) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self._loop.create_future()
        if canceller is not None:

            def on_done(f: asyncio.Future[Any]) -> None:
                if f.cancelled():
                    canceller()

            future.add_done_callback(on_done)
        return future

    def resolve(self, waiter: asyncio.Future[Any], value: Any) -> None:
        if not waiter.done():
            waiter.set_result(value)

    def reject(self, waiter: asyncio.Future[Any], error: BaseException) -> None:
        if not waiter.done():
            waiter.set_exception(error)

    def is_done(self, waiter: asyncio.Future[Any]) -> bool:
        return waiter.done()

    def add_done(self, waiter: asyncio.Future[Any], callback: Callable[[], None]) -> None:
        waiter.add_done_callback(lambda _: callback())

    def now(self) -> float:
        return self._loop.time()

    def call_later(self, delay: float, fn: Callable[[], None]) -> TimerHandle:
        return self._loop.call_later(delay, fn)

    def call_soon(self, fn: Callable[[], None]) -> None:
        self._loop.call_soon(fn)

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def close_transport(self, abort: bool = False) -> None:
        transport = self.transport
        if transport is None:
            return
        if abort:
            transport.abort()
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

    def run_user_callback(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            result = fn(*args)
        except Exception:
            logger.exception("user callback %r raised", fn)
            return
        if inspect.isawaitable(result):
            try:
                future = asyncio.ensure_future(result, loop=self._loop)
            except Exception:
                logger.exception("user callback %r returned an awaitable that failed", fn)
                return
            self._tasks.add(future)

            def done(f: asyncio.Future[Any]) -> None:
                self._tasks.discard(f)
                if f.cancelled():
                    return
                error = f.exception()
                if error is not None:
                    logger.error("user callback %r failed", fn, exc_info=error)

            future.add_done_callback(done)

    def log(self, level: str, message: str, **fields: Any) -> None:
        try:
            text = message.format(**fields)
        except (KeyError, IndexError, ValueError):
            text = f"{message} {fields!r}"
        logger.log(_LEVELS.get(level, logging.INFO), "%s", text)
