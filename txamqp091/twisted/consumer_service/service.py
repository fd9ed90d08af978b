"""``ConsumerService``: one queue, one handler, run as a service on ``AMQPClientService``.

Theory of operation. The reconnecting :class:`~txamqp091.twisted.AMQPClientService`
owns the connection; this service opens one surviving channel on it, declares
what ``--declare`` asked for (recorded, so it is declared again after a
reconnect) and subscribes a callback consumer, which the recovery layer
re-subscribes on every new connection. The broker sends at most ``prefetch``
unacked messages; at most ``concurrency`` handlers run at once, and the rest
wait here in arrival order.

Each message ends in exactly one settlement: ack after success; after a
failure, requeue or reject by ``--on-error``, and reject once the message has
failed more than ``max_redeliveries`` times (see :mod:`.poison`). With a
``requeue_delay`` a failed message is held unacked for that long before the
requeue, so a poison message cannot spin. Stopping (SIGTERM) cancels the
consumer, requeues what waits or is held, gives running handlers
``shutdown_grace`` seconds (their successes are acked), requeues whatever is
still running, then closes the connection.

A stream is consumed from ``stream_offset``. The surviving consumer remembers the
offset after the last message it delivered and subscribes from there after a
reconnect; delivered is not handled, though, so on a disconnect this service
moves that offset back to the oldest message it had not finished (waiting for a
handler slot, or running): nothing delivered but unhandled is skipped, and at
most ``concurrency`` messages are handled twice.
"""

from __future__ import annotations

import inspect
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from ...client.streams import STREAM_OFFSET
from ...handling import RejectMessage, RequeueMessage
from ...message import Message
from ...metrics import ConsumerMetrics
from ...params import ParametersLike
from ..service import AMQPClientService, RecoveringChannel, RecoveringConsumer
from ._util import (
    awaited,
    channel_gone,
    daemon_thread,
    exit_process,
    fire,
    ignore_cancel,
    sleep,
)
from .declaring import Declaration, declare
from .logs import RateLimiter, one_line_traceback
from .poison import RedeliveryCounter

__all__ = ["ConsumerService", "Declaration"]

log = Logger(namespace="txamqp091.consumer")


class ConsumerService(Service):
    """Consumes ``queue`` with ``handler`` through a reconnecting client.

    :param reactor: the reactor.
    :param nodes: broker parameters or URLs (a list: cluster nodes, tried in turn).
    :param queue: the queue to consume.
    :param handler: ``handler(message)``; may return a value, a Deferred or a coroutine.
    :param prefetch: Basic.Qos prefetch count (0: unlimited).
    :param concurrency: handlers running at once (default: ``prefetch``, at least 1).
    :param threads: run the handler in a pool of this many threads (0: in the reactor).
    :param on_error: ``"requeue"`` or ``"reject"``: what a failed handler does to its message.
    :param max_redeliveries: requeue a failing message at most this many times.
    :param requeue_delay: seconds a failed message is held unacked before its requeue.
    :param shutdown_grace: seconds running handlers may take to finish when stopping.
    :param declare: what to declare (None: declare nothing; the queue must exist).
    :param dead_lettering: the queue has a dead-letter exchange (counts rejections as
        dead-lettered); taken from ``declare`` when it names one.
    :param stream_offset: the queue is a stream; consume from this ``x-stream-offset``
        (``"first"``, ``"last"``, ``"next"``, an offset, a datetime or an interval).
        A stream declared by ``declare`` defaults to ``"next"``, RabbitMQ's own default.
    """

    #: Seconds between attempts to subscribe while the broker refuses (say, no such queue).
    resubscribe_delay = 5.0

    def __init__(
        self,
        reactor: Any,
        nodes: ParametersLike,
        queue: str,
        handler: Callable[[Message], Any],
        *,
        prefetch: int = 50,
        concurrency: int | None = None,
        threads: int = 0,
        on_error: str = "requeue",
        max_redeliveries: int = 5,
        requeue_delay: float = 0.0,
        shutdown_grace: float = 30.0,
        declare: Declaration | None = None,
        dead_lettering: bool | None = None,
        stream_offset: Any = None,
        metrics: ConsumerMetrics | None = None,
        client: AMQPClientService | None = None,
    ) -> None:
        if on_error not in ("requeue", "reject"):
            raise ValueError(f"on_error must be 'requeue' or 'reject', got {on_error!r}")
        self.reactor = reactor
        self.client = client if client is not None else AMQPClientService(reactor, nodes)
        self.queue = queue
        self.handler = handler
        self.prefetch = prefetch
        self.concurrency = max(1, concurrency or prefetch or 1)
        self.threads = threads
        self.requeue_on_error = on_error == "requeue"
        self.max_redeliveries = max_redeliveries
        self.requeue_delay = requeue_delay
        self.shutdown_grace = shutdown_grace
        self.declare = declare
        if dead_lettering is None:
            dead_lettering = declare is not None and bool(
                declare.dead_letter_exchange or "x-dead-letter-exchange" in declare.queue_arguments
            )
        self.dead_lettering = dead_lettering
        #: A stream queue: failures are logged and skipped, never nacked (RabbitMQ refuses).
        self.stream = stream_offset is not None or (
            declare is not None and declare.queue_arguments.get("x-queue-type") == "stream"
        )
        #: Where a stream is first read from (None: not a stream).
        self.stream_offset = (
            (stream_offset if stream_offset is not None else "next") if self.stream else None
        )
        self.metrics = metrics if metrics is not None else ConsumerMetrics()
        self.redeliveries = RedeliveryCounter()
        self.failure_log = RateLimiter(reactor.seconds)
        self.channel: RecoveringChannel | None = None
        self.consumer: RecoveringConsumer | None = None
        #: Why the service is not consuming (None while it is); /healthz reports it.
        self.not_consuming_because: str | None = "starting"
        #: The first Basic.ConsumeOk has arrived (/readyz).
        self.ready = False
        self.handled = 0
        self.failed = 0
        #: The process's exit status: 1 once the service gave up (refused logins).
        self.exit_status = 0
        self._stopping = False
        self._running: dict[int, tuple[Message, float]] = {}
        self._waiting: deque[Message] = deque()
        self._held: dict[int, tuple[Message, IDelayedCall]] = {}
        self._pumping = False
        self._idle: Deferred[None] | None = None
        self._pool: ThreadPool | None = None
        self._subscribing: Deferred[None] | None = None
        self.client.on_connected.append(self._on_connected)
        self.client.on_disconnected.append(self._on_disconnected)
        self.client.on_recovered.append(self._on_recovered)
        self.client.client.on_gave_up.append(self._give_up)

    # -- state -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        conn = self.client.connection
        return conn is not None and conn.is_open

    @property
    def consuming(self) -> bool:
        return self.connected and self.not_consuming_because is None

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def health(self) -> dict[str, Any]:
        """What /healthz and /readyz report (``ok`` decides 200 or 503)."""
        conn = self.client.connection
        blocked = bool(conn is not None and conn.is_open and conn.is_blocked)
        self.metrics.blocked = int(blocked)
        self.metrics.connected = int(self.connected)
        reason = None
        if self._stopping:
            reason = "stopping"
        elif not self.connected:
            reason = "not connected to a broker"
        elif self.not_consuming_because is not None:
            reason = self.not_consuming_because
        return {
            "ok": reason is None,
            "reason": reason,
            "connected": self.connected,
            "consuming": self.consuming,
            "ready": self.ready,
            "blocked": blocked,
            "queue": self.queue,
            "in_flight": len(self._running),
            "waiting": len(self._waiting),
            "held": len(self._held),
        }

    # -- starting ----------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._stopping = False
        if self.threads:
            pool = ThreadPool(minthreads=0, maxthreads=self.threads, name="amqp-consumer")
            pool.threadFactory = daemon_thread  # type: ignore[assignment]
            pool.start()
            self._pool = pool
        self.client.startService()
        self._subscribing = defer.ensureDeferred(self._subscribe())
        self._subscribing.addErrback(ignore_cancel)

    async def _subscribe(self) -> None:
        """Declare and consume; retried while the broker refuses (the queue is missing...)."""
        while not self._stopping:
            channel = self.channel
            if channel is None or not channel.is_open:
                channel = await self.client.channel()
                channel.add_on_cancel_callback(self._on_cancelled)
                self.channel = channel
            try:
                if self.declare is not None:
                    await declare(channel, self.queue, self.declare)
                await channel.basic_qos(prefetch_count=self.prefetch)
                self.consumer = await channel.basic_consume(
                    self.queue,
                    on_message_callback=self._on_message,
                    arguments=None
                    if self.stream_offset is None
                    else {STREAM_OFFSET: self.stream_offset},
                )
            except Exception as exc:
                if self._stopping:
                    return
                if self.client.failure is not None:
                    return  # the client gave up: _give_up ends the process
                self.not_consuming_because = f"cannot consume {self.queue!r}: {exc}"
                log.error(
                    "amqp-consumer: cannot consume {queue!r}: {error}; retrying in {delay}s",
                    queue=self.queue,
                    error=exc,
                    delay=self.resubscribe_delay,
                )
                self.channel = None
                try:
                    await channel.close()
                except Exception:
                    pass
                await sleep(self.reactor, self.resubscribe_delay)
                continue
            self.not_consuming_because = None
            self.ready = True
            log.info(
                "amqp-consumer: consuming {queue!r} (prefetch {prefetch}, concurrency "
                "{concurrency})",
                queue=self.queue,
                prefetch=self.prefetch,
                concurrency=self.concurrency,
            )
            return

    def _give_up(self, error: BaseException) -> None:
        """The client stopped retrying (the broker refuses our login): retrying here would
        not help either. Stop the process with a non-zero status, so a supervisor
        (systemd ``Restart=on-failure``, a container runtime) sees the failure."""
        self.not_consuming_because = f"gave up: {error}"
        self.exit_status = 1
        log.critical(
            "amqp-consumer: giving up on {queue!r}: {error}; exiting with status 1",
            queue=self.queue,
            error=error,
        )
        if self.running and getattr(self.reactor, "running", False):
            self.reactor.addSystemEventTrigger("after", "shutdown", exit_process, self.exit_status)
            self.reactor.stop()

    # -- the connection's hooks ----------------------------------------------------------------

    def _on_connected(self, conn: Any) -> None:
        self.metrics.connected = 1
        if self.client.connections > 1:
            self.metrics.reconnects += 1

    def _on_disconnected(self, reason: BaseException | None) -> None:
        self.metrics.connected = 0
        if self.not_consuming_because is None:
            self.not_consuming_because = "reconnecting"
        # Deliveries of the dead connection cannot be settled any more: the broker
        # redelivers them. Forget those still waiting; running ones finish and their
        # settlement is dropped by the channel.
        if self.stream and not self._stopping:
            self._rewind_stream()
        dropped = len(self._waiting) + len(self._held)
        self._waiting.clear()
        for key, (_, call) in list(self._held.items()):
            if call.active():
                call.cancel()
            del self._held[key]
        # The broker requeues them with the connection: count them so the counters add up.
        self.metrics.requeued += dropped
        if dropped:
            log.info(
                "amqp-consumer: {n} waiting or held messages dropped with the connection "
                "(the broker redelivers them)",
                n=dropped,
            )

    def _rewind_stream(self) -> None:
        """Resume the stream at the oldest message not yet handled, not after the last
        one delivered: those waiting for a handler slot are dropped with the connection
        and would be skipped for good (a stream never redelivers by itself). Running
        ones count as unhandled too (their handler may fail with the connection), so at
        most ``concurrency`` messages are handled twice."""
        consumer = self.consumer
        if consumer is None or consumer.next_stream_offset is None:
            return
        unhandled = [m.stream_offset for m in self._waiting]
        unhandled += [m.stream_offset for m, _ in self._running.values()]
        offsets = [offset for offset in unhandled if offset is not None]
        if offsets and min(offsets) < consumer.next_stream_offset:
            consumer.next_stream_offset = min(offsets)
        log.info(
            "amqp-consumer: the stream {queue!r} resumes at offset {offset} after the reconnect",
            queue=self.queue,
            offset=consumer.next_stream_offset,
        )

    def _on_cancelled(self, consumer_tag: str) -> None:
        """The broker cancelled the consumer (its queue was deleted, its node left the
        cluster...): report it on /healthz and subscribe again, declaring again with
        ``--declare``, until the queue is back. The channel stays: the messages still
        being handled are settled on it."""
        consumer = self.consumer
        if self._stopping or consumer is None or consumer.consumer_tag != consumer_tag:
            return
        self.consumer = None
        self.not_consuming_because = f"the broker cancelled the consumer of {self.queue!r}"
        log.warn(
            "amqp-consumer: the broker cancelled the consumer of {queue!r} (queue deleted?); "
            "subscribing again",
            queue=self.queue,
        )
        if self._subscribing is None or self._subscribing.called:
            self._subscribing = defer.ensureDeferred(self._subscribe())
            self._subscribing.addErrback(ignore_cancel)

    def _on_recovered(self, channel: Any) -> None:
        if channel is self.channel and self.consumer is not None and not self._stopping:
            self.not_consuming_because = None
            log.info("amqp-consumer: recovered, consuming {queue!r} again", queue=self.queue)

    # -- messages ------------------------------------------------------------------------------

    def _on_message(self, message: Message) -> None:
        self.metrics.received += 1
        if self._stopping:
            self._requeue_now(message)
            return
        if len(self._running) < self.concurrency and not self._waiting:
            self._start(message)
        else:
            self._waiting.append(message)

    def _pump(self) -> None:
        """Start waiting messages while there is room (a loop, not recursion: a handler
        that finishes synchronously would otherwise recurse once per waiting message)."""
        if self._pumping:
            return
        self._pumping = True
        try:
            waiting = self._waiting
            while waiting and len(self._running) < self.concurrency and not self._stopping:
                self._start(waiting.popleft())
        finally:
            self._pumping = False

    def _start(self, message: Message) -> None:
        key = id(message)
        self._running[key] = (message, time.monotonic())
        self.metrics.in_flight = len(self._running)
        if self._pool is not None:
            d = deferToThreadPool(self.reactor, self._pool, self.handler, message)
            d.addCallbacks(
                self._succeeded, self._failed, callbackArgs=(message,), errbackArgs=(message,)
            )
            return
        try:
            result = self.handler(message)
        except Exception:
            self._failed(Failure(), message)  # type: ignore[no-untyped-call]
            return
        if result is not None and (isinstance(result, Deferred) or inspect.isawaitable(result)):
            d = result if isinstance(result, Deferred) else defer.ensureDeferred(awaited(result))
            d.addCallbacks(
                self._succeeded, self._failed, callbackArgs=(message,), errbackArgs=(message,)
            )
            return
        self._succeeded(None, message)

    def _finish(self, message: Message) -> bool:
        """Take ``message`` out of the running set; False if shutdown already settled it."""
        entry = self._running.pop(id(message), None)
        if entry is None or entry[0] is not message:
            return False
        self.metrics.in_flight = len(self._running)
        self.metrics.observe_duration(time.monotonic() - entry[1])
        return True

    def _succeeded(self, result: Any, message: Message) -> None:
        if not self._finish(message):
            return
        self.handled += 1
        message.ack()
        if channel_gone(message):
            # The ack went nowhere: the broker redelivers the message on the next connection.
            self.metrics.requeued += 1
        else:
            self.metrics.acked += 1
        self.redeliveries.succeeded(message)
        self._after_settle()

    def _failed(self, failure: Failure, message: Message) -> None:
        if not self._finish(message):
            return
        self.failed += 1
        self.metrics.handler_errors += 1
        error = failure.value
        if isinstance(error, RejectMessage):
            requeue = False
            why = "the handler rejected it"
        elif self.stream:
            requeue = False
            why = "a stream cannot requeue: skipped"
        elif isinstance(error, RequeueMessage) or self.requeue_on_error:
            failures = self.redeliveries.failed(message)
            requeue = failures <= self.max_redeliveries
            why = (
                f"failure {failures}, requeued"
                if requeue
                else f"failure {failures}, more than --max-redeliveries "
                f"{self.max_redeliveries}: rejected"
            )
        else:
            requeue = False
            why = "--on-error reject"
        self._log_failure(failure, message, why)
        if not requeue:
            self._reject(message)
        elif self.requeue_delay > 0 and not self._stopping:
            self._hold(message)
        else:
            self._requeue_now(message)
        self._after_settle()

    def _after_settle(self) -> None:
        if self._waiting:
            self._pump()
        if self._idle is not None and not self._running:
            idle, self._idle = self._idle, None
            idle.callback(None)

    def _reject(self, message: Message) -> None:
        if self.stream:
            message.ack()  # see _requeue_now
        else:
            message.reject(requeue=False)
        self.redeliveries.settled(message)
        if channel_gone(message):
            self.metrics.requeued += 1  # as in _succeeded: the broker redelivers it
            return
        self.metrics.rejected += 1
        if self.dead_lettering:
            self.metrics.dead_lettered += 1

    def _requeue_now(self, message: Message) -> None:
        if self.stream:
            # A stream keeps every message whatever the consumer says, and RabbitMQ
            # closes the connection (540) on a nack or reject from a stream consumer:
            # an ack only gives the credit back. Re-reading means consuming from an offset.
            message.ack()
        else:
            message.nack(requeue=True)
        self.metrics.requeued += 1

    def _hold(self, message: Message) -> None:
        """Keep the failed message unacked for ``requeue_delay``, then requeue it."""
        key = id(message)

        def release() -> None:
            if self._held.pop(key, None) is not None:
                self._requeue_now(message)

        self._held[key] = (message, self.reactor.callLater(self.requeue_delay, release))

    def _log_failure(self, failure: Failure, message: Message, why: str) -> None:
        if not self.failure_log.allow():
            return
        suppressed = self.failure_log.take_suppressed()
        log.error(
            "amqp-consumer: handler failed for message {message_id} (delivery tag "
            "{delivery_tag}, redelivered {redelivered}): {why}: {error}{suppressed_note}",
            message_id=message.properties.message_id or "-",
            delivery_tag=message.delivery_tag,
            redelivered=message.redelivered,
            why=why,
            error=one_line_traceback(failure),
            suppressed=suppressed,
            suppressed_note=f" ({suppressed} similar lines suppressed)" if suppressed else "",
        )

    # -- stopping ------------------------------------------------------------------------------

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        # twistd re-raises the signal that stopped the reactor once it is down, so a
        # SIGTERM'd process would report death-by-signal. A drain that finished is a
        # clean exit: forget the signal so the process exits with status 0 (API.md).
        if getattr(self.reactor, "_exitSignal", None) is not None:
            self.reactor._exitSignal = None
        return defer.ensureDeferred(self._drain())

    async def _drain(self) -> None:
        self._stopping = True
        self.not_consuming_because = "stopping"
        if self._subscribing is not None and not self._subscribing.called:
            self._subscribing.cancel()
        consumer = self.consumer
        if consumer is not None and consumer.is_active:
            try:
                await consumer.cancel()
            except Exception as exc:
                log.warn("amqp-consumer: cancelling the consumer failed: {error}", error=exc)
        requeued = len(self._waiting) + len(self._held)
        while self._waiting:
            self._requeue_now(self._waiting.popleft())
        for message, call in list(self._held.values()):
            if call.active():
                call.cancel()
            self._requeue_now(message)
        self._held.clear()
        if self._running:
            await self._wait_running()
        if requeued:
            log.info("amqp-consumer: requeued {n} messages not yet handled", n=requeued)
        await self.client.stopService()
        self._stop_pool()
        log.info(
            "amqp-consumer: stopped after {handled} handled, {failed} failed",
            handled=self.handled,
            failed=self.failed,
        )

    async def _wait_running(self) -> None:
        """Give running handlers ``shutdown_grace`` seconds, then requeue what is left."""
        log.info(
            "amqp-consumer: waiting up to {grace}s for {n} running handlers",
            grace=self.shutdown_grace,
            n=len(self._running),
        )
        idle: Deferred[None] = Deferred()
        self._idle = idle
        timer = self.reactor.callLater(self.shutdown_grace, fire, idle)
        await idle
        if timer.active():
            timer.cancel()
        self._idle = None
        late = list(self._running.values())
        self._running.clear()
        self.metrics.in_flight = 0
        for message, _ in late:
            self._requeue_now(message)
        if late:
            log.warn(
                "amqp-consumer: {n} handlers still running after --shutdown-grace {grace}s; "
                "their messages are requeued",
                n=len(late),
                grace=self.shutdown_grace,
            )

    def _stop_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if pool.working:
            # A handler thread is stuck: joining it would hang the exit. Its threads
            # are daemons, so the process can end without them.
            log.warn("amqp-consumer: {n} handler threads still busy at exit", n=len(pool.working))
            return
        pool.stop()
