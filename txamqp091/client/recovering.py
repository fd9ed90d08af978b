"""Channels and consumers that survive reconnects: protocol bookkeeping, no I/O.

A :class:`SurvivingChannel` is what the reconnecting clients hand out. It
records what was declared, bound, QoS-set, confirm-selected and consumed
(:mod:`.topology`), and runs each operation on the current *incarnation*: a
plain :class:`~.channel.ChannelLogic` on the current connection. Every
operation is that channel's own method, called on the incarnation: this class
adds the recording, the waiting and the sending again, never a second copy of
what a method does. When the connection dies, operations still in flight and
publishes not yet confirmed are kept (:mod:`.parking`); on the next connection a
new incarnation is opened, the topology is replayed in order (:mod:`.replay`:
server-named queues are re-declared first and their new names substituted
wherever the old ones were used), consumers re-subscribe with their tags, and the
kept operations are sent again. A publish in confirm mode therefore succeeds only
once a broker has acked it (at least once: duplicates are possible, losses are
not).

When the broker closes the channel (a 404 from a passive declare, say), the
operation that caused it fails with that error: the one naming the exchange or
queue the close text quotes, else the request in flight (none, for an unknown
delivery tag). The other pending operations are kept, and a new incarnation is
opened on the same connection; there the queues are still there, so a
server-named queue is not declared again (unless it was auto-delete and lost its
consumers with the channel). A channel the broker closes again and again while
replaying gives up after ``max_reopens``.

Operations that wait for an incarnation go out in the order they were issued,
including those sent again after the incarnation they were on died.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import validation as validate
from ..core.spec import BasicProperties
from ..core.states import ChannelState
from ..exceptions import (
    AMQPConnectionError,
    ChannelClosed,
    ChannelClosedByBroker,
    ChannelWrongStateError,
    ConnectionBlockedTimeout,
    ConnectionWrongStateError,
    ConsumerCancelled,
    DuplicateConsumerTag,
)
from ..message import Message, ReturnedMessage
from .api import ChannelAPI, documented_by
from .channel import ChannelLogic
from .consumer import BufferCount, message_callback, new_consumer_tag
from .parking import NOTHING, Operation, ParkingLot
from .recorded import Arguments, TopologyOperations, arguments_of
from .recovering_consumer import Reconsume, SurvivingConsumer
from .replay import Replay
from .runtime import Runtime, W
from .topology import Entry, Record, Topology

if TYPE_CHECKING:
    from .connection import ConnectionLogic
    from .session import RecoverySession

__all__ = ["SurvivingChannel"]

#: Why an operation fails at once while the client is stopped (it may be started again).
_STOPPED = "the client is stopped: start it again to use this channel"


def _usable(inner: ChannelLogic[Any]) -> bool:
    """Whether an incarnation can take an operation now. Its connection may have ended
    (or its channel been closed by the broker) in the batch of events being dispatched,
    before the channel itself is told: a user callback run by an earlier event of that
    batch (a publisher confirm, say) must then park, not fail."""
    return inner.is_open and inner._conn.is_open and inner._core.state is ChannelState.OPEN


def _ignore(value: object) -> None:
    return None


@documented_by(ChannelAPI)
class SurvivingChannel(TopologyOperations[W]):
    """The channel API of :class:`~.channel.ChannelLogic`, surviving reconnects."""

    consumer_class: type[SurvivingConsumer[Any]] = SurvivingConsumer
    #: Its consumers' buffered deliveries count on whichever connection is current (see
    #: _buffered_changed): no fixed count for their get() to touch inline.
    _fixed_buffer_count: BufferCount | None = None
    #: Broker channel closes in a row, while replaying, before the channel gives up.
    max_reopens = 5
    #: Off by default: a consumer the broker cancels (its queue deleted, a quorum queue's
    #: node gone) ends with ``ConsumerCancelled``. On: it consumes again once the queue is
    #: back, up to ``reconsume_attempts`` tries, ``reconsume_delay`` seconds apart at
    #: first, doubling to ``reconsume_max_delay``; the same consumer object goes on.
    reconsume_on_cancel = False
    reconsume_attempts = 10
    reconsume_delay = 1.0
    reconsume_max_delay = 30.0

    def __init__(self, session: RecoverySession[W]) -> None:
        self._session = session
        self._runtime: Runtime[W] = session.runtime
        self._inner: ChannelLogic[W] | None = None
        self._topology = Topology()
        self._parked: ParkingLot[W] = ParkingLot(self._runtime, lambda: session.publish_timeout)
        self._consumers: dict[str, SurvivingConsumer[W]] = {}
        self._on_return: list[Callable[..., Any]] = []
        self._on_cancel: list[Callable[..., Any]] = []
        self._on_close: list[Callable[..., Any]] = []
        self._closed_error: BaseException | None = None
        self._closed_waiters: list[W] = []
        self._reopens = 0
        self._replaying = False
        #: The connection of the latest incarnation (a reopen after a channel error
        #: stays on it, and then the queues it declared are still there).
        self._last_connection: object | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} inner={self._inner!r} records={len(self._topology)}>"

    # -- state ------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._closed_error is None

    @property
    def channel_number(self) -> int:
        """The channel number on the current connection (0 while disconnected); it may
        change after a reconnect."""
        return self._inner.channel_number if self._inner is not None else 0

    @property
    def closed(self) -> W:
        if self._closed_error is not None:
            return self._runtime.succeeded(self._closed_value())
        waiter = self._runtime.create_waiter()
        self._closed_waiters.append(waiter)
        return waiter

    def _closed_value(self) -> BaseException | None:
        error = self._closed_error
        return None if isinstance(error, _ClosedByUser) else error

    @property
    def topology(self) -> list[Record]:
        """What this channel replays on every new connection, in order."""
        return self._topology.records()

    # -- running operations -----------------------------------------------------------------------

    def _run(self, operation: Operation, subjects: frozenset[str] = NOTHING) -> W:
        """Run ``operation`` on the live incarnation, or park it until there is one.
        ``subjects`` are the exchanges and queues it names."""
        runtime = self._runtime
        if self._closed_error is not None:
            return runtime.failed(
                ChannelWrongStateError(f"channel is closed: {self._closed_error}")
            )
        inner = self._inner
        live = inner is not None and _usable(inner)
        if self._session.stopping and not live:
            return runtime.failed(ConnectionWrongStateError(_STOPPED))
        waiter = runtime.create_waiter()
        seq = self._parked.next_seq()
        if inner is not None and live and not self._parked and not self._replaying:
            self._bridge(inner, operation, waiter, seq, subjects)
        else:
            self._parked.park(operation, waiter, seq, subjects)
        return waiter

    def _bridge(
        self,
        inner: ChannelLogic[W],
        operation: Operation,
        waiter: W,
        seq: int,
        subjects: frozenset[str],
    ) -> None:
        """Settle ``waiter`` from the incarnation's result; keep the operation if the
        incarnation died under it through no fault of its own."""
        runtime = self._runtime
        try:
            inner_waiter = operation(inner)
        except Exception as exc:
            runtime.reject(waiter, exc)
            return

        def failed(error: BaseException) -> None:
            if runtime.is_done(waiter):
                return
            if (
                isinstance(error, ChannelClosedByBroker)
                and self._closed_error is None
                and not self._session.stopping
            ):
                # One of the operations this close failed caused it; the others were
                # only caught up in it. Keep them all until all are known.
                self._parked.suspect(self._parked.park(operation, waiter, seq, subjects), error)
            elif self._should_retry(error, inner):
                self._parked.park(operation, waiter, seq, subjects)
            else:
                runtime.reject(waiter, error)

        runtime.on_result(inner_waiter, lambda value: runtime.resolve(waiter, value), failed)

    def _should_retry(self, error: BaseException, inner: ChannelLogic[W]) -> bool:
        if self._closed_error is not None or self._session.stopping:
            return False
        if isinstance(error, ConnectionBlockedTimeout):
            # The connection is alive (blocked): the caller asked for this bound. Parking
            # it would hold every later operation back until a reconnect.
            return False
        if isinstance(error, AMQPConnectionError):
            return True  # the connection died: send it again on the next one
        if isinstance(error, ChannelWrongStateError) and not _usable(inner):
            return True  # refused by an incarnation that is ending: not this operation's fault
        return False

    def _declare(self, record: Record, subjects: frozenset[str] = NOTHING) -> W:
        """File ``record`` in the topology, then run it; a broker refusal forgets it again."""
        entry = self._topology.add(record)
        return self._run_entry(
            entry, lambda inner: record.replay(inner, self._topology.names), subjects
        )

    def _run_entry(self, entry: Entry, operation: Operation, subjects: frozenset[str]) -> W:
        waiter = self._run(operation, subjects)

        def accepted(value: Any) -> None:
            entry.applied = True

        def refused(error: BaseException) -> None:
            if isinstance(error, ChannelClosed):
                self._topology.discard(entry)

        self._runtime.observe(waiter, accepted, refused)
        return waiter

    # -- incarnations -----------------------------------------------------------------------------

    def _attach(self, conn: ConnectionLogic[W]) -> None:
        """Open an incarnation on ``conn`` and bring it up to date."""
        self._runtime.on_result(conn.channel(), self._on_incarnation, _ignore)

    def _on_incarnation(self, inner: ChannelLogic[W]) -> None:
        if self._closed_error is not None:
            inner.close()
            return
        self._inner = inner
        inner.add_on_close_callback(self._on_incarnation_closed)
        inner.add_on_return_callback(self._relay_return)
        inner.add_on_cancel_callback(self._relay_cancel)
        for consumer in self._consumers.values():
            consumer._forget_dead_messages(inner)
        reopened = inner._conn is self._last_connection
        self._last_connection = inner._conn
        self._replaying = True
        Replay(self, inner, reopened).run()

    def _resume(self, inner: ChannelLogic[W]) -> None:
        """The replay on ``inner`` has sent everything: the operations parked meanwhile
        go out after it, in the order they were issued."""
        self._replaying = False
        if self._parked.blaming:
            self._parked.blame()  # before anything goes out again (normally done by now)
        for item in self._parked.take_all():
            self._bridge(inner, item.operation, item.waiter, item.seq, item.subjects)

    def _recovered(self, inner: ChannelLogic[W]) -> None:
        """The broker answered the replay's last request: everything replayed is in place."""
        if self._inner is not inner:
            return
        self._reopens = 0
        self._session._channel_recovered(self)

    def _on_incarnation_closed(self, inner: ChannelLogic[W], error: BaseException) -> None:
        if self._inner is not inner:
            return
        self._inner = None
        if self._closed_error is not None:
            return
        if isinstance(error, ChannelClosedByBroker) and not self._session.stopping:
            self._reopens += 1
            if self._reopens > self.max_reopens:
                self._end(error)
                return
            conn = self._session.connection
            if conn is not None and conn.is_open:
                self._attach(conn)
        # On a connection loss the session re-attaches every channel when it reconnects.

    def _detach(self) -> None:
        self._inner = None

    def _fail_waiting(self, error: BaseException) -> None:
        self._parked.fail_all(error)

    def _end(self, error: BaseException) -> None:
        if self._closed_error is not None:
            return
        self._closed_error = error
        runtime = self._runtime
        self._parked.fail_all(error)
        consumers, self._consumers = self._consumers, {}
        for consumer in consumers.values():
            consumer._end(error)
        value = self._closed_value()
        waiters, self._closed_waiters = self._closed_waiters, []
        for waiter in waiters:
            runtime.resolve(waiter, value)
        for callback in self._on_close:
            runtime.run_user_callback(callback, self, error)
        self._session._forget(self)

    # -- relays --------------------------------------------------------------------------------------

    def _relay_return(self, message: Message) -> None:
        for callback in self._on_return:
            self._runtime.run_user_callback(callback, message)

    def _relay_cancel(self, consumer_tag: str) -> None:
        """The broker cancelled a consumer. By default it ends with ``ConsumerCancelled``;
        with ``reconsume_on_cancel`` it stays (the same object) and consumes again once
        the queue is back. The hooks are called either way."""
        consumer = self._consumers.get(consumer_tag)
        if consumer is not None:
            if self.reconsume_on_cancel and not self._session.stopping:
                consumer._subscribed = False  # a replay meanwhile must not subscribe it
                consumer._reconsuming = True
                self._reconsume(consumer, 1)
            else:
                del self._consumers[consumer_tag]
                consumer._end(
                    ConsumerCancelled(
                        f"the broker cancelled consumer {consumer_tag} on queue {consumer.queue}"
                    )
                )
        for callback in self._on_cancel:
            self._runtime.run_user_callback(callback, consumer_tag)

    def _reconsume(self, consumer: SurvivingConsumer[W], attempt: int) -> None:
        tag = consumer.consumer_tag

        def subscribe() -> W:
            return self._run(
                lambda inner: consumer._subscribe(inner, self._topology.name(consumer.queue)),
                self._queue_names(consumer.queue),
            )

        def wanted() -> bool:
            return self._consumers.get(tag) is consumer and self._closed_error is None

        def give_up(error: BaseException) -> None:
            del self._consumers[tag]
            consumer._end(error)

        Reconsume(self, consumer, subscribe, wanted, give_up).attempt(attempt)

    def _buffered_changed(
        self, delta: int, consumer: object = None, consumer_full: bool = False
    ) -> None:
        conn = self._session.connection
        if conn is not None:
            conn._buffered_changed(delta, consumer, consumer_full)

    # -- the channel API: each ChannelLogic method, on the current incarnation -------------------------
    # (the declarations, deletes and other requests are in TopologyOperations)

    def basic_publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | bytearray | memoryview | str,
        properties: BasicProperties | None = None,
        mandatory: bool = False,
    ) -> W:
        """Publish; waits (up to ``publish_timeout``) while there is no connection. In
        confirm mode it fires only once a broker has acked the message, re-sending it on
        the next connection if the one it went out on died first."""
        validate.basic_publish(exchange, routing_key, body, properties, mandatory)
        names = self._topology.names

        def publish(inner: ChannelLogic[W]) -> W:
            # The default exchange routes by queue name: follow a server-named queue's renames.
            key = names.get(routing_key, routing_key) if not exchange else routing_key
            return inner.basic_publish(exchange, key, body, properties, mandatory)

        # The default exchange never refuses a publish (an unroutable one is dropped or
        # returned), so only a named exchange can be at fault.
        return self._run(publish, frozenset((exchange,)) if exchange else NOTHING)

    def basic_get(self, queue: str, auto_ack: bool = False) -> W:
        validate.basic_get(queue, auto_ack)
        return self._run(
            lambda inner: inner.basic_get(self._topology.name(queue), auto_ack),
            self._queue_names(queue),
        )

    @arguments_of(ChannelLogic.basic_consume)
    def basic_consume(self, a: Arguments) -> W:
        """Basic.Consume; the consumer it fires with re-subscribes by itself after reconnects."""
        validate.basic_consume(**vars(a))
        queue, auto_ack, consumer_tag = a.queue, a.auto_ack, a.consumer_tag
        try:
            on_message_callback = message_callback(
                self._runtime, a.on_message_callback, auto_ack, a.run_in_thread
            )
        except ValueError as exc:
            return self._runtime.failed(exc)
        tag = consumer_tag or new_consumer_tag()
        if tag in self._consumers:
            return self._runtime.failed(DuplicateConsumerTag(tag))
        consumer = self.consumer_class(
            self, queue, tag, on_message_callback, auto_ack, a.exclusive, a.arguments
        )
        self._consumers[tag] = consumer
        waiter = self._run(
            lambda inner: consumer._subscribe(inner, self._topology.name(queue)),
            self._queue_names(queue),
        )
        runtime = self._runtime

        def failed(error: BaseException) -> None:
            if self._consumers.get(tag) is consumer:
                del self._consumers[tag]
            runtime.reject(result, error)

        def subscribed(value: Any) -> None:
            consumer._subscribed = True
            runtime.resolve(result, consumer)

        result = runtime.create_waiter()
        runtime.on_result(waiter, subscribed, failed)
        return result

    def basic_cancel(self, consumer_tag: str = "") -> W:
        validate.basic_cancel(consumer_tag)
        consumer = self._consumers.get(consumer_tag)
        if consumer is None:
            return self._runtime.succeeded(0)
        return self._cancel_consumer(consumer)

    def _cancel_consumer(self, consumer: SurvivingConsumer[W]) -> W:
        if self._consumers.get(consumer.consumer_tag) is not consumer:
            return self._runtime.succeeded(0)
        del self._consumers[consumer.consumer_tag]
        handed_back = consumer._drain_buffer()
        consumer._end(
            ConsumerCancelled(f"consumer {consumer.consumer_tag} cancelled by the client", True)
        )
        runtime = self._runtime
        inner = self._inner
        # Basic.Cancel before the nacks: messages requeued while the consumer still
        # exists would be delivered straight back to it.
        cancelled = inner.basic_cancel(consumer.consumer_tag) if inner is not None else None
        count = 0
        for message in handed_back:
            if not consumer.auto_ack and message._channel is self._inner:
                message.nack(requeue=True)
                count += 1
        if cancelled is None:
            return runtime.succeeded(count)
        result = runtime.create_waiter()
        runtime.on_result(
            cancelled,
            lambda late: runtime.resolve(result, count + (late or 0)),
            lambda error: runtime.resolve(result, count),
        )
        return result

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        validate.basic_ack(delivery_tag, multiple)
        if self._inner is not None:
            self._inner.basic_ack(delivery_tag, multiple)

    def basic_nack(
        self, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True
    ) -> None:
        validate.basic_nack(delivery_tag, multiple, requeue)
        if self._inner is not None:
            self._inner.basic_nack(delivery_tag, multiple, requeue)

    def basic_reject(self, delivery_tag: int, requeue: bool = True) -> None:
        validate.basic_reject(delivery_tag, requeue)
        if self._inner is not None:
            self._inner.basic_reject(delivery_tag, requeue)

    def add_on_return_callback(self, callback: Callable[[ReturnedMessage], Any]) -> None:
        validate.callback("callback", callback)
        self._on_return.append(callback)

    def add_on_cancel_callback(self, callback: Callable[[str], Any]) -> None:
        validate.callback("callback", callback)
        self._on_cancel.append(callback)

    def add_on_close_callback(self, callback: Callable[..., Any]) -> None:
        """``callback(channel, reason)`` once the surviving channel has ended for good
        (closed by you, or its client stopped), not on each connection loss."""
        validate.callback("callback", callback)
        self._on_close.append(callback)

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> W:
        """Close for good: no more incarnations."""
        validate.close(reply_code, reply_text)
        inner = self._inner
        self._end(_ClosedByUser(reply_code, reply_text))
        if inner is not None and inner.is_open:
            return inner.close(reply_code, reply_text)
        return self._runtime.succeeded(None)


class _ClosedByUser(ChannelClosed):
    """The user closed the surviving channel (``closed`` then fires with None)."""
