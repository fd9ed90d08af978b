"""``twistd amqp-consumer``: a consumer service around one handler function.

::

    twistd -n amqp-consumer --url amqp://guest:guest@localhost/ --queue orders \\
        --handler myapp.consumers:handle --prefetch 50 [--threads N] \\
        [--on-error requeue|reject] [--declare]

The handler takes a :class:`~txamqp091.Message` and may return a value, a
Deferred or a coroutine; success acks the message, failure requeues or rejects
it (``--on-error``). With ``--threads N`` the handler runs in the reactor's
thread pool and its ack is sent from the reactor thread. Stopping the service
(SIGTERM) cancels the consumer, lets in-flight handlers finish and ack, then
closes the connection. A lost connection is retried with backoff.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from twisted.application.service import IService, Service
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python import usage

from ..message import Message
from ..params import URLParameters
from .channel import Connection, Consumer
from .connect import connect

__all__ = ["ConsumerService", "Options", "load_handler", "makeService"]

log = Logger()


def load_handler(spec: str) -> Callable[[Message], Any]:
    """``package.module:function`` -> the function."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise usage.UsageError(f"--handler must look like package.module:function, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise usage.UsageError(f"--handler: cannot import {module_name!r}: {exc}") from exc
    handler = module
    for part in attr.split("."):
        handler = getattr(handler, part, None)  # type: ignore[assignment]
        if handler is None:
            raise usage.UsageError(f"--handler: {module_name!r} has no {attr!r}")
    if not callable(handler):
        raise usage.UsageError(f"--handler: {spec!r} is not callable")
    return handler


class Options(usage.Options):
    synopsis = "--url URL --queue QUEUE --handler module:function [options]"
    longdesc = __doc__

    optParameters = [
        [
            "url",
            "u",
            "amqp://guest:guest@localhost:5672/%2F",
            "The broker URL (amqp:// or amqps://).",
        ],
        ["queue", "q", None, "The queue to consume from."],
        ["handler", None, None, "The handler, as package.module:function."],
        ["prefetch", "p", 50, "Unacknowledged messages the broker may send at once.", int],
        [
            "threads",
            "t",
            0,
            "Run the handler in the reactor thread pool with this many threads.",
            int,
        ],
        ["on-error", None, "requeue", "What a failed handler does to its message: requeue|reject."],
    ]
    optFlags = [
        ["declare", None, "Declare the queue (durable) if it does not exist."],
    ]

    def postOptions(self) -> None:
        if not self["queue"]:
            raise usage.UsageError("--queue is required")
        if not self["handler"]:
            raise usage.UsageError("--handler is required")
        if self["on-error"] not in ("requeue", "reject"):
            raise usage.UsageError("--on-error must be requeue or reject")
        if self["prefetch"] < 0 or self["threads"] < 0:
            raise usage.UsageError("--prefetch and --threads must not be negative")
        try:
            self["params"] = URLParameters(self["url"])
        except ValueError as exc:
            raise usage.UsageError(f"--url: {exc}") from exc
        self["handler_fn"] = load_handler(self["handler"])


class ConsumerService(Service):
    """Consumes one queue with one handler, reconnecting when the connection drops."""

    #: Seconds between reconnection attempts, doubling up to ``max_retry_delay``.
    retry_delay = 1.0
    max_retry_delay = 30.0

    def __init__(
        self,
        reactor: Any,
        params: URLParameters,
        queue: str,
        handler: Callable[[Message], Any],
        prefetch: int = 50,
        threads: int = 0,
        on_error: str = "requeue",
        declare: bool = False,
    ) -> None:
        self.reactor = reactor
        self.params = params
        self.queue = queue
        self.handler = handler
        self.prefetch = prefetch
        self.threads = threads
        self.requeue_on_error = on_error == "requeue"
        self.declare = declare
        self.connection: Connection | None = None
        self.consumer: Consumer | None = None
        self.handled = 0
        self.failed = 0
        self._in_flight: set[Deferred[Any]] = set()
        self._running: Deferred[None] | None = None
        self._stopping = False

    @property
    def consuming(self) -> bool:
        return self.consumer is not None and self.consumer.is_active

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._stopping = False
        if self.threads:
            self.reactor.suggestThreadPoolSize(self.threads)
        self._running = defer.ensureDeferred(self._run())

    async def _run(self) -> None:
        delay = self.retry_delay
        while not self._stopping:
            try:
                await self._consume_once()
                delay = self.retry_delay
            except Exception as exc:
                if self._stopping:
                    break
                log.warn("amqp-consumer: {error}; retrying in {delay:.1f}s", error=exc, delay=delay)
            if self._stopping:
                break
            await deferLater(self.reactor, delay, lambda: None)
            delay = min(delay * 2, self.max_retry_delay)

    async def _consume_once(self) -> None:
        conn = await connect(self.reactor, self.params)
        self.connection = conn
        try:
            channel = await conn.channel()
            if self.declare:
                await channel.queue_declare(self.queue, durable=True)
            await channel.basic_qos(prefetch_count=self.prefetch)
            self.consumer = await channel.basic_consume(
                self.queue, on_message_callback=self._on_message
            )
            log.info(
                "amqp-consumer: consuming {queue!r} on {host}:{port}",
                queue=self.queue,
                host=self.params.host,
                port=self.params.port,
            )
            reason = await conn.closed
        finally:
            self.consumer = None
        if reason is not None and not self._stopping:
            raise reason

    def _on_message(self, message: Message) -> None:
        d: Deferred[Any]
        if self.threads:
            d = deferToThreadPool(self.reactor, self.reactor.getThreadPool(), self.handler, message)
        else:
            d = defer.maybeDeferred(self.handler, message)
            d.addCallback(_await_if_coroutine)
        self._in_flight.add(d)
        d.addCallbacks(
            self._handled, self._handler_failed, callbackArgs=(message,), errbackArgs=(message,)
        )
        d.addBoth(lambda _: self._in_flight.discard(d))

    def _handled(self, result: Any, message: Message) -> None:
        self.handled += 1
        message.ack()

    def _handler_failed(self, failure: Any, message: Message) -> None:
        self.failed += 1
        log.failure(
            "amqp-consumer: handler failed for delivery {tag}", failure, tag=message.delivery_tag
        )
        message.nack(requeue=self.requeue_on_error)

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        # twistd re-raises the signal that stopped the reactor once it is down, so a
        # SIGTERM'd process reports death-by-signal. A drain that finished is a clean
        # exit: forget the signal so the process exits with status 0, as API.md says.
        if getattr(self.reactor, "_exitSignal", None) is not None:
            self.reactor._exitSignal = None
        return defer.ensureDeferred(self._drain())

    async def _drain(self) -> None:
        self._stopping = True
        consumer, conn = self.consumer, self.connection
        if consumer is not None and consumer.is_active:
            try:
                await consumer.cancel()
            except Exception as exc:
                log.warn("amqp-consumer: cancel failed: {error}", error=exc)
        if self._in_flight:
            await defer.DeferredList(list(self._in_flight))
        if conn is not None and conn.is_open:
            await conn.close()
        log.info(
            "amqp-consumer: stopped after {handled} handled, {failed} failed",
            handled=self.handled,
            failed=self.failed,
        )


def _await_if_coroutine(result: Any) -> Any:
    if inspect.iscoroutine(result):
        return defer.ensureDeferred(result)
    return result


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    return ConsumerService(
        reactor,
        options["params"],
        options["queue"],
        options["handler_fn"],
        prefetch=options["prefetch"],
        threads=options["threads"],
        on_error=options["on-error"],
        declare=bool(options["declare"]),
    )
