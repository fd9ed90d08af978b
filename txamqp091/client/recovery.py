"""Channels and consumers that survive reconnects: protocol bookkeeping, no I/O.

A :class:`SurvivingChannel` is what the reconnecting clients hand out. It
records what was declared, bound, QoS-set, confirm-selected and consumed, and
runs each operation on the current *incarnation*: a plain
:class:`~.channel.ChannelLogic` on the current connection. When the
connection dies, operations still in flight and publishes not yet confirmed
are kept; on the next connection a new incarnation is opened, the topology is
replayed in order (server-named queues are re-declared first and their new
names substituted wherever the old ones were used), consumers re-subscribe
with their tags, and the kept operations are sent again. A publish in confirm
mode therefore succeeds only once a broker has acked it (at least once:
duplicates are possible, losses are not).

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

import itertools
import re
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic

from ..core.spec import BasicProperties
from ..core.states import ChannelState
from ..exceptions import (
    AMQPConnectionError,
    ChannelClosed,
    ChannelClosedByBroker,
    ChannelWrongStateError,
    ConnectionBlockedTimeout,
    ConsumerCancelled,
    DuplicateConsumerTag,
    PublishTimeout,
)
from ..message import Message
from .consumer import ConsumerLogic
from .runtime import Runtime, TimerHandle, W

if TYPE_CHECKING:
    from .channel import ChannelLogic
    from .connection import ConnectionLogic

__all__ = ["RecoverySession", "SurvivingChannel", "SurvivingConsumer", "Topology"]

#: An operation on an incarnation: returns the incarnation's waiter.
Operation = Callable[["ChannelLogic[Any]"], Any]


class _Record:
    """One replayable topology operation."""

    __slots__ = ("applied", "auto_delete", "kind", "operation", "server_named")

    def __init__(self, kind: str, operation: Callable[[ChannelLogic[Any], dict[str, str]], Any]):
        self.kind = kind
        self.operation = operation
        #: For a server-named queue: the name the broker first gave it.
        self.server_named: str | None = None
        self.auto_delete = False
        #: The broker accepted it once. Until then its own operation is pending (parked
        #: or in flight) and goes out by itself: the replay must not send it as well.
        self.applied = False


class Topology:
    """What a surviving channel declared, in the order it was declared.

    Keys identify an entity so that a repeat declaration replaces the old record
    in place and a delete removes it (and the bindings that depended on it).
    """

    def __init__(self) -> None:
        self._records: dict[tuple[Any, ...], _Record] = {}
        #: Original server-assigned queue name -> the name on the current connection.
        self.names: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[_Record]:
        return iter(list(self._records.values()))

    def keys(self) -> list[tuple[Any, ...]]:
        return list(self._records)

    def record(self, key: tuple[Any, ...], record: _Record) -> None:
        self._records[key] = record

    def forget(self, predicate: Callable[[tuple[Any, ...]], bool]) -> None:
        for key in [k for k in self._records if predicate(k)]:
            del self._records[key]

    def name(self, queue: str) -> str:
        """The current name of ``queue`` (a server-named queue's first name maps to its latest)."""
        return self.names.get(queue, queue)


def _args_key(arguments: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, repr(v)) for k, v in (arguments or {}).items()))


#: No entity names: operations such as basic_qos or confirm_delivery.
_NOTHING: frozenset[str] = frozenset()


class _Parked(Generic[W]):
    """An operation waiting for an incarnation (disconnected, or being replaced)."""

    __slots__ = ("operation", "seq", "subjects", "suspect", "timer", "waiter")

    def __init__(
        self,
        operation: Operation,
        waiter: W,
        timer: TimerHandle | None,
        seq: int,
        subjects: frozenset[str],
    ) -> None:
        self.operation = operation
        self.waiter = waiter
        self.timer = timer
        #: When the user asked for it: parked operations go out again in this order.
        self.seq = seq
        #: The exchanges and queues it names, to tell whether a channel error was its doing.
        self.subjects = subjects
        #: The channel error it was caught up in, until :meth:`SurvivingChannel._blame`.
        self.suspect: BaseException | None = None


def _quoted_names(reply_text: str) -> set[str]:
    """The entity names a broker's close text quotes ("NOT_FOUND - no exchange 'x' in
    vhost '/'" -> {"x"}); RabbitMQ quotes the exchange or queue at fault."""
    return set(re.findall(r"'([^']*)'", re.sub(r" in vhost '[^']*'", "", reply_text)))


def _usable(inner: ChannelLogic[Any]) -> bool:
    """Whether an incarnation can take an operation now. Its connection may have ended
    (or its channel been closed by the broker) in the batch of events being dispatched,
    before the channel itself is told: a user callback run by an earlier event of that
    batch (a publisher confirm, say) must then park, not fail."""
    return inner.is_open and inner._conn.is_open and inner._core.state is ChannelState.OPEN


class SurvivingConsumer(ConsumerLogic[W]):
    """A consumer that keeps delivering across reconnects: the same object throughout."""

    #: The broker confirmed its first Basic.Consume; from then on every new incarnation
    #: subscribes it again during the replay.
    _subscribed = False

    def _deliver_from(self, message: Message) -> None:
        self._deliver(message)

    def _forget_dead_messages(self, live: object) -> None:
        """Buffered deliveries of a dead incarnation can no longer be acked: drop them
        (the broker redelivers them), unless they were auto-acked."""
        if self.auto_ack or not self._buffer:
            return
        kept = deque(m for m in self._buffer if m._channel is live)
        dropped = len(self._buffer) - len(kept)
        self._buffer = kept
        if dropped:
            self._channel._buffered_changed(-dropped)


class SurvivingChannel(Generic[W]):
    """The channel API of :class:`~.channel.ChannelLogic`, surviving reconnects."""

    consumer_class: type[SurvivingConsumer[Any]] = SurvivingConsumer
    #: Broker channel closes in a row, while replaying, before the channel gives up.
    max_reopens = 5

    def __init__(self, session: RecoverySession[W]) -> None:
        self._session = session
        self._runtime: Runtime[W] = session.runtime
        self._inner: ChannelLogic[W] | None = None
        self._topology = Topology()
        self._parked: deque[_Parked[W]] = deque()
        self._consumers: dict[str, SurvivingConsumer[W]] = {}
        self._on_return: list[Callable[..., Any]] = []
        self._on_cancel: list[Callable[..., Any]] = []
        self._on_close: list[Callable[..., Any]] = []
        self._closed_error: BaseException | None = None
        self._closed_waiters: list[W] = []
        self._reopens = 0
        #: Operations a broker's channel close failed, in the order it failed them; which
        #: of them caused it is decided once all are known (:meth:`_blame`).
        self._suspects: list[_Parked[W]] = []
        self._replaying = False
        self._op_seq = itertools.count()
        #: The connection of the latest incarnation (a reopen after a channel error
        #: stays on it, and then the queues it declared are still there).
        self._last_connection: object | None = None

    def __repr__(self) -> str:
        return f"<SurvivingChannel inner={self._inner!r} records={len(self._topology)}>"

    # -- state ------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._closed_error is None

    @property
    def channel_number(self) -> int:
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

    # -- running operations -----------------------------------------------------------------------

    def _run(
        self,
        operation: Operation,
        timeout: float | None = None,
        subjects: frozenset[str] = _NOTHING,
    ) -> W:
        """Run ``operation`` on the live incarnation, or park it until there is one.
        ``subjects`` are the exchanges and queues it names."""
        runtime = self._runtime
        if self._closed_error is not None:
            return runtime.failed(
                ChannelWrongStateError(f"channel is closed: {self._closed_error}")
            )
        waiter = runtime.create_waiter()
        seq = next(self._op_seq)
        inner = self._inner
        if inner is not None and _usable(inner) and not self._parked and not self._replaying:
            self._bridge(inner, operation, waiter, seq, subjects)
        else:
            self._park(operation, waiter, timeout, seq, subjects)
        return waiter

    def _park(
        self,
        operation: Operation,
        waiter: W,
        timeout: float | None,
        seq: int,
        subjects: frozenset[str],
    ) -> _Parked[W]:
        runtime = self._runtime
        limit = self._session.publish_timeout if timeout is None else timeout
        timer: TimerHandle | None = None
        parked = _Parked(operation, waiter, None, seq, subjects)
        if limit is not None:

            def expire() -> None:
                parked.timer = None
                runtime.reject(
                    waiter,
                    PublishTimeout(f"no connection to the broker within {limit} s"),
                )

            timer = runtime.call_later(limit, expire)
        parked.timer = timer
        queue = self._parked
        if not queue or queue[-1].seq < seq:
            queue.append(parked)
            return parked
        # An operation that was in flight when its incarnation died comes back: it goes
        # before those the user issued after it, so order survives the reconnect.
        index = len(queue)
        while index > 0 and queue[index - 1].seq > seq:
            index -= 1
        queue.insert(index, parked)
        return parked

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
                parked = self._park(operation, waiter, None, seq, subjects)
                parked.suspect = error
                if not self._suspects:
                    runtime.call_soon(self._blame)
                self._suspects.append(parked)
            elif self._should_retry(error, inner):
                self._park(operation, waiter, None, seq, subjects)
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

    def _blame(self) -> None:
        """Fail the operations that caused a broker's channel close; the others it failed
        go out again on the next incarnation.

        The culprits are those naming the exchange or queue the close text quotes (a
        publish to a missing exchange, a passive declare of a missing queue); when it
        quotes none of theirs, the first operation the close failed (the request in
        flight). An unknown delivery tag is an acknowledgement's doing: none of them.
        Blaming the oldest publish instead would fail an innocent one per round and send
        the real culprit (and every publish behind it) again and again."""
        suspects, self._suspects = self._suspects, []
        runtime = self._runtime
        errors: list[BaseException] = []
        for item in suspects:
            if item.suspect is not None and all(item.suspect is not e for e in errors):
                errors.append(item.suspect)
        for error in errors:
            group = [p for p in suspects if p.suspect is error and not runtime.is_done(p.waiter)]
            for item in suspects:
                if item.suspect is error:
                    item.suspect = None
            text = getattr(error, "reply_text", "") or ""
            if "delivery tag" in text:
                continue
            named = _quoted_names(text)
            culprits = [p for p in group if p.subjects & named] or group[:1]
            for item in culprits:
                if item in self._parked:
                    self._parked.remove(item)
                if item.timer is not None:
                    item.timer.cancel()
                    item.timer = None
                runtime.reject(item.waiter, error)

    # -- incarnations -----------------------------------------------------------------------------

    def _attach(self, conn: ConnectionLogic[W]) -> None:
        """Open an incarnation on ``conn`` and bring it up to date."""
        runtime = self._runtime
        opening = conn.channel()
        runtime.on_result(opening, self._on_incarnation, lambda error: None)

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
        self._replay(iter(self._topology), inner, reopened)

    def _still_there(self, record: _Record) -> bool:
        """After a channel error (same connection): whether a server-named queue survived
        the channel's end. It did unless it was auto-delete and lost its consumers with
        the channel; declaring it again would create a second queue under a new name."""
        original = record.server_named
        assert original is not None
        if not record.auto_delete:
            return True
        current = self._topology.name(original)
        return not any(self._topology.name(c.queue) == current for c in self._consumers.values())

    def _replay(self, records: Iterator[_Record], inner: ChannelLogic[W], reopened: bool) -> None:
        """Replay records in order; pause after a server-named queue until its name is known."""
        runtime = self._runtime
        names = self._topology.names
        for record in records:
            if self._inner is not inner or not inner.is_open:
                return
            if not record.applied:
                continue  # its own operation is parked and follows the replay
            if reopened and record.server_named is not None and self._still_there(record):
                continue
            waiter = record.operation(inner, names)
            if record.server_named is not None:
                original = record.server_named

                def declared(ok: Any, original: str = original) -> None:
                    names[original] = ok.queue
                    self._replay(records, inner, reopened)

                runtime.on_result(waiter, declared, lambda error: None)
                return
            runtime.on_result(waiter, lambda value: None, lambda error: None)
        self._resubscribe(inner)

    def _resubscribe(self, inner: ChannelLogic[W]) -> None:
        runtime = self._runtime
        for consumer in list(self._consumers.values()):
            if not consumer._subscribed:
                continue  # its own Basic.Consume is still to go out (parked): not twice
            waiter = inner.basic_consume(
                self._topology.name(consumer.queue),
                consumer._deliver_from,
                consumer.auto_ack,
                consumer.exclusive,
                consumer.consumer_tag,
                consumer.arguments,
            )
            runtime.on_result(waiter, lambda value: None, lambda error: None)
        self._replaying = False
        self._reopens = 0
        if self._suspects:
            self._blame()  # before anything goes out again (normally done by now)
        parked, self._parked = self._parked, deque()
        for item in parked:
            if item.timer is not None:
                item.timer.cancel()
            if not runtime.is_done(item.waiter):
                self._bridge(inner, item.operation, item.waiter, item.seq, item.subjects)
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

    def _end(self, error: BaseException) -> None:
        if self._closed_error is not None:
            return
        self._closed_error = error
        runtime = self._runtime
        self._suspects = []
        parked, self._parked = self._parked, deque()
        for item in parked:
            if item.timer is not None:
                item.timer.cancel()
            runtime.reject(item.waiter, error)
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
        consumer = self._consumers.pop(consumer_tag, None)
        if consumer is not None:
            consumer._end(ConsumerCancelled(f"the broker cancelled consumer {consumer_tag}"))
        for callback in self._on_cancel:
            self._runtime.run_user_callback(callback, consumer_tag)

    def _buffered_changed(self, delta: int) -> None:
        conn = self._session.connection
        if conn is not None:
            conn._buffered_changed(delta)

    # -- the channel API ---------------------------------------------------------------------------------

    def _queue_names(self, queue: str) -> frozenset[str]:
        return frozenset((queue, self._topology.name(queue)))

    def _declare(
        self,
        key: tuple[Any, ...],
        kind: str,
        call: Callable[..., Any],
        subjects: frozenset[str] = _NOTHING,
    ) -> W:
        """Record a topology operation, then run it; a broker refusal forgets it again."""
        record = _Record(kind, lambda inner, names: call(inner, names))
        self._topology.record(key, record)
        waiter = self._run(lambda inner: call(inner, self._topology.names), subjects=subjects)

        def accepted(value: Any) -> None:
            record.applied = True

        def refused(error: BaseException) -> None:
            if isinstance(error, ChannelClosed) and self._topology._records.get(key) is record:
                self._topology.forget(lambda k: k == key)

        self._runtime.observe(waiter, accepted, refused)
        return waiter

    def exchange_declare(
        self,
        exchange: str,
        exchange_type: str = "direct",
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> W:
        def call(inner: ChannelLogic[W], names: dict[str, str]) -> W:
            return inner.exchange_declare(
                exchange, exchange_type, passive, durable, auto_delete, internal, arguments
            )

        subjects = frozenset((exchange,))
        if passive:
            return self._run(lambda inner: call(inner, {}), subjects=subjects)
        return self._declare(("exchange", exchange), "exchange", call, subjects)

    def exchange_delete(self, exchange: str = "", if_unused: bool = False) -> W:
        self._topology.forget(
            lambda k: (
                k == ("exchange", exchange)
                or (k[0] == "xbind" and exchange in (k[1], k[2]))
                or (k[0] == "qbind" and k[2] == exchange)
            )
        )
        return self._run(
            lambda inner: inner.exchange_delete(exchange, if_unused),
            subjects=frozenset((exchange,)),
        )

    def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> W:
        def call(inner: ChannelLogic[W], names: dict[str, str]) -> W:
            return inner.exchange_bind(destination, source, routing_key, arguments)

        key = ("xbind", destination, source, routing_key, _args_key(arguments))
        return self._declare(key, "xbind", call, frozenset((destination, source)))

    def exchange_unbind(
        self,
        destination: str = "",
        source: str = "",
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> W:
        key = ("xbind", destination, source, routing_key, _args_key(arguments))
        self._topology.forget(lambda k: k == key)
        return self._run(
            lambda inner: inner.exchange_unbind(destination, source, routing_key, arguments),
            subjects=frozenset((destination, source)),
        )

    def queue_declare(
        self,
        queue: str,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> W:
        topology = self._topology
        if passive:
            return self._run(
                lambda inner: inner.queue_declare(
                    topology.name(queue), True, durable, exclusive, auto_delete, arguments
                ),
                subjects=self._queue_names(queue),
            )
        if queue:

            def call(inner: ChannelLogic[W], names: dict[str, str]) -> W:
                return inner.queue_declare(queue, False, durable, exclusive, auto_delete, arguments)

            return self._declare(("queue", queue), "queue", call, frozenset((queue,)))
        # Server-named: the first name the broker gives is the one the user holds; later
        # incarnations map it to the new name (Topology.names).
        record = _Record(
            "queue",
            lambda inner, names: inner.queue_declare(
                "", False, durable, exclusive, auto_delete, arguments
            ),
        )
        waiter = self._run(
            lambda inner: inner.queue_declare("", False, durable, exclusive, auto_delete, arguments)
        )

        record.auto_delete = auto_delete

        def named(ok: Any) -> None:
            record.applied = True
            record.server_named = ok.queue
            topology.names[ok.queue] = ok.queue
            topology.record(("queue", ok.queue), record)

        self._runtime.observe(waiter, named, lambda error: None)
        return waiter

    def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> W:
        key_ = queue if routing_key is None else routing_key

        def call(inner: ChannelLogic[W], names: dict[str, str]) -> W:
            current = names.get(queue, queue)
            bind_key = current if routing_key is None else routing_key
            return inner.queue_bind(current, exchange, bind_key, arguments)

        key = ("qbind", queue, exchange, key_, _args_key(arguments))
        return self._declare(key, "qbind", call, self._queue_names(queue) | {exchange})

    def queue_unbind(
        self,
        queue: str,
        exchange: str = "",
        routing_key: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> W:
        key_ = queue if routing_key is None else routing_key
        key = ("qbind", queue, exchange, key_, _args_key(arguments))
        self._topology.forget(lambda k: k == key)
        name = self._topology.name(queue)
        rk = name if routing_key is None else routing_key
        return self._run(
            lambda inner: inner.queue_unbind(name, exchange, rk, arguments),
            subjects=self._queue_names(queue) | {exchange},
        )

    def queue_purge(self, queue: str) -> W:
        return self._run(
            lambda inner: inner.queue_purge(self._topology.name(queue)),
            subjects=self._queue_names(queue),
        )

    def queue_delete(self, queue: str, if_unused: bool = False, if_empty: bool = False) -> W:
        self._topology.forget(
            lambda k: k == ("queue", queue) or (k[0] == "qbind" and k[1] == queue)
        )
        name = self._topology.name(queue)
        return self._run(
            lambda inner: inner.queue_delete(name, if_unused, if_empty),
            subjects=self._queue_names(queue),
        )

    def basic_qos(
        self, prefetch_size: int = 0, prefetch_count: int = 0, global_qos: bool = False
    ) -> W:
        def call(inner: ChannelLogic[W], names: dict[str, str]) -> W:
            return inner.basic_qos(prefetch_size, prefetch_count, global_qos)

        return self._declare(("qos", global_qos), "qos", call)

    def confirm_delivery(self) -> W:
        return self._declare(("confirm",), "confirm", lambda inner, names: inner.confirm_delivery())

    def tx_select(self) -> W:
        return self._declare(("tx",), "tx", lambda inner, names: inner.tx_select())

    def tx_commit(self) -> W:
        return self._run(lambda inner: inner.tx_commit())

    def tx_rollback(self) -> W:
        return self._run(lambda inner: inner.tx_rollback())

    def basic_recover(self, requeue: bool = False) -> W:
        return self._run(lambda inner: inner.basic_recover(requeue))

    def flow(self, active: bool) -> W:
        return self._run(lambda inner: inner.flow(active))

    @property
    def publisher_confirms(self) -> bool:
        return ("confirm",) in self._topology.keys()

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
        names = self._topology.names

        def publish(inner: ChannelLogic[W]) -> W:
            # The default exchange routes by queue name: follow a server-named queue's renames.
            key = names.get(routing_key, routing_key) if not exchange else routing_key
            return inner.basic_publish(exchange, key, body, properties, mandatory)

        # The default exchange never refuses a publish (an unroutable one is dropped or
        # returned), so only a named exchange can be at fault.
        return self._run(publish, subjects=frozenset((exchange,)) if exchange else _NOTHING)

    def basic_get(self, queue: str, auto_ack: bool = False) -> W:
        return self._run(
            lambda inner: inner.basic_get(self._topology.name(queue), auto_ack),
            subjects=self._queue_names(queue),
        )

    def basic_consume(
        self,
        queue: str,
        on_message_callback: Callable[[Message], Any] | None = None,
        auto_ack: bool = False,
        exclusive: bool = False,
        consumer_tag: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> W:
        """Basic.Consume; the consumer it fires with re-subscribes by itself after reconnects."""
        from .channel import _TAG_PREFIX, _tag_counter

        tag = consumer_tag or f"{_TAG_PREFIX}{next(_tag_counter)}"
        if tag in self._consumers:
            return self._runtime.failed(DuplicateConsumerTag(tag))
        consumer = self.consumer_class(
            self, queue, tag, on_message_callback, auto_ack, exclusive, arguments
        )
        self._consumers[tag] = consumer
        waiter = self._run(
            lambda inner: inner.basic_consume(
                self._topology.name(queue),
                consumer._deliver_from,
                auto_ack,
                exclusive,
                tag,
                arguments,
            ),
            subjects=self._queue_names(queue),
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
        if self._inner is not None:
            self._inner.basic_ack(delivery_tag, multiple)

    def basic_nack(
        self, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True
    ) -> None:
        if self._inner is not None:
            self._inner.basic_nack(delivery_tag, multiple, requeue)

    def basic_reject(self, delivery_tag: int, requeue: bool = True) -> None:
        if self._inner is not None:
            self._inner.basic_reject(delivery_tag, requeue)

    def add_on_return_callback(self, callback: Callable[[Message], Any]) -> None:
        self._on_return.append(callback)

    def add_on_cancel_callback(self, callback: Callable[[str], Any]) -> None:
        self._on_cancel.append(callback)

    def add_on_close_callback(self, callback: Callable[..., Any]) -> None:
        self._on_close.append(callback)

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> W:
        """Close for good: no more incarnations."""
        inner = self._inner
        self._end(_ClosedByUser(reply_code, reply_text))
        if inner is not None and inner.is_open:
            return inner.close(reply_code, reply_text)
        return self._runtime.succeeded(None)


class _ClosedByUser(ChannelClosed):
    """The user closed the surviving channel (``closed`` then fires with None)."""


class RecoverySession(Generic[W]):
    """The surviving channels of one reconnecting client, and the current connection."""

    def __init__(self, runtime: Runtime[W], publish_timeout: float | None = 30.0) -> None:
        self.runtime = runtime
        self.publish_timeout = publish_timeout
        self.connection: ConnectionLogic[W] | None = None
        self.channels: list[SurvivingChannel[W]] = []
        self.stopping = False
        #: Called with each channel once it is back in business on a new connection.
        self.on_channel_recovered: list[Callable[[SurvivingChannel[W]], None]] = []

    def channel(self, channel_class: type[SurvivingChannel[Any]] = SurvivingChannel) -> W:
        channel = channel_class(self)
        self.channels.append(channel)
        if self.connection is not None and self.connection.is_open:
            channel._attach(self.connection)
        return self.runtime.succeeded(channel)

    def attach(self, conn: ConnectionLogic[W]) -> None:
        """A new connection is open: bring every surviving channel onto it."""
        self.connection = conn
        for channel in list(self.channels):
            channel._attach(conn)

    def detach(self) -> None:
        """The connection is gone; operations park until :meth:`attach`."""
        self.connection = None
        for channel in self.channels:
            channel._detach()

    def stop(self, error: BaseException) -> None:
        self.stopping = True
        for channel in list(self.channels):
            channel._end(error)

    def _forget(self, channel: SurvivingChannel[W]) -> None:
        if channel in self.channels:
            self.channels.remove(channel)

    def _channel_recovered(self, channel: SurvivingChannel[W]) -> None:
        for callback in self.on_channel_recovered:
            self.runtime.run_user_callback(callback, channel)
