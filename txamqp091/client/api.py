"""The public API of channels, consumers and connections, as typing protocols.

One place says what every operation takes and what its waiter fires with:

* mypy checks :class:`~.channel.ChannelLogic` and the surviving channel
  (:class:`~.recovering.SurvivingChannel`) against :class:`ChannelAPI`, so the two
  cannot drift apart (``_conformance.py``);
* the docstrings here are the contract's text: :func:`documented_by` lends them to
  those classes, so there is one copy;
* ``tools/typedapi.py`` reads these protocols and writes ``twisted/_typed.py``
  (``Deferred[QueueDeclareOk]``...) and ``tornado/_typed.py`` (``Future[...]``), the
  typed faces of the adapters' classes, so that a user's mypy knows what
  ``queue_declare`` gives. ``scripts/test`` runs it with ``--check``.

A return annotation ``Annotated[W_co, "T"]`` means "the adapter's waiter, firing with
``T``" (``T`` is written as the generated modules spell it: ``spec.X``, ``Message``,
and ``Channel``/``Consumer`` for the adapter's typed classes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Protocol, TypeVar

from ..core import spec
from ..message import Message, ReturnedMessage

__all__ = ["ChannelAPI", "ConnectionAPI", "ConsumerAPI", "documented_by"]

W_co = TypeVar("W_co", covariant=True)
W = TypeVar("W")
T = TypeVar("T")


class ConsumerAPI(Protocol[W_co]):
    """A Basic.Consume subscription."""

    consumer_tag: str
    queue: str

    def get(self, timeout: float | None = None) -> Annotated[W_co, "Message | None"]:
        """The next message; ``None`` when none arrives within ``timeout`` seconds.

        Messages are buffered as the broker pushes them (up to the prefetch); ``get`` hands
        them out in order. Fails with the channel's error when the channel ends.
        """

    def cancel(self) -> Annotated[W_co, "int"]:
        """Basic.Cancel; fires with the number of buffered, not yet handed out messages it
        returned to the broker (nacked with requeue), so none is left unacked in memory.
        """

    def __anext__(self) -> Annotated[W_co, "Message"]:
        """``async for message in consumer``: like ``get()``; the loop ends when the consumer
        is cancelled.
        """


class ChannelAPI(Protocol[W_co]):
    """An AMQP channel: pika's method names, each returning the adapter's waiter."""

    @property
    def is_open(self) -> bool:
        """Whether the channel is open (a surviving channel: open on the current connection)."""

    @property
    def closed(self) -> Annotated[W_co, "BaseException | None"]:
        """Fires once the channel has ended: with ``None`` after a close you asked for,
        otherwise with the exception that ended it (``ChannelClosedByBroker`` with its
        ``reply_code``, or the connection's error). Never errbacks.
        """

    @property
    def publisher_confirms(self) -> bool:
        """Whether ``confirm_delivery()`` has put the channel in confirm mode."""

    def exchange_declare(
        self,
        exchange: str,
        exchange_type: str = "direct",
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> Annotated[W_co, "spec.ExchangeDeclareOk"]:
        """Exchange.Declare: create the exchange, or check that it exists with these settings.

        ``exchange_type`` is ``direct``, ``fanout``, ``topic``, ``headers`` or a plugin's type.
        With ``passive=True`` nothing is created: the broker only checks it exists.

        :raises ChannelClosedByBroker: 406 PRECONDITION_FAILED when it exists with other
            settings, 404 NOT_FOUND for a passive declare of a missing exchange,
            403 ACCESS_REFUSED for a reserved ``amq.`` name.
        """

    def exchange_delete(
        self, exchange: str = "", if_unused: bool = False
    ) -> Annotated[W_co, "spec.ExchangeDeleteOk"]:
        """Exchange.Delete; with ``if_unused=True`` only when no queue or exchange is bound to it.

        :raises ChannelClosedByBroker: 406 PRECONDITION_FAILED when ``if_unused`` and in use.
        """

    def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> Annotated[W_co, "spec.ExchangeBindOk"]:
        """Exchange.Bind (a RabbitMQ extension): route what reaches ``source`` to ``destination``
        as if ``destination`` were a queue bound with ``routing_key``.

        :raises ChannelClosedByBroker: 404 NOT_FOUND when either exchange is missing.
        """

    def exchange_unbind(
        self,
        destination: str = "",
        source: str = "",
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> Annotated[W_co, "spec.ExchangeUnbindOk"]:
        """Exchange.Unbind: remove a binding made by :meth:`exchange_bind`."""

    def queue_declare(
        self,
        queue: str,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> Annotated[W_co, "spec.QueueDeclareOk"]:
        """Queue.Declare; fires with ``Queue.DeclareOk``: ``.queue`` (the broker's name for a
        server-named queue, asked for with ``queue=""``), ``.message_count`` and
        ``.consumer_count``.

        ``arguments`` carries ``x-queue-type`` (``classic``, ``quorum``, ``stream``),
        ``x-message-ttl``, ``x-dead-letter-exchange``, ``x-max-length`` and the other
        optional arguments. With ``passive=True`` it only checks that the queue exists.

        :raises ChannelClosedByBroker: 406 PRECONDITION_FAILED when the queue exists with
            other settings, 404 NOT_FOUND for a passive declare of a missing queue,
            405 RESOURCE_LOCKED for another connection's exclusive queue.
        """

    def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> Annotated[W_co, "spec.QueueBindOk"]:
        """Queue.Bind: route messages that reach ``exchange`` with a matching routing key (or
        headers, for a headers exchange) to ``queue``. ``routing_key=None`` binds with the
        queue's name, as pika does.

        :raises ChannelClosedByBroker: 404 NOT_FOUND when the queue or exchange is missing.
        """

    def queue_unbind(
        self,
        queue: str,
        exchange: str = "",
        routing_key: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> Annotated[W_co, "spec.QueueUnbindOk"]:
        """Queue.Unbind: remove a binding made by :meth:`queue_bind`."""

    def queue_purge(self, queue: str) -> Annotated[W_co, "spec.QueuePurgeOk"]:
        """Queue.Purge; fires with ``Queue.PurgeOk`` (``.message_count``: how many were removed).
        Unacked messages are not purged.
        """

    def queue_delete(
        self, queue: str, if_unused: bool = False, if_empty: bool = False
    ) -> Annotated[W_co, "spec.QueueDeleteOk"]:
        """Queue.Delete; fires with ``Queue.DeleteOk`` (``.message_count``: how many messages
        went with it). ``if_unused``/``if_empty`` make the broker refuse a queue in use or
        not empty (406 PRECONDITION_FAILED).
        """

    def basic_qos(
        self, prefetch_size: int = 0, prefetch_count: int = 0, global_qos: bool = False
    ) -> Annotated[W_co, "spec.BasicQosOk"]:
        """Basic.Qos: how many unacked messages (``prefetch_count``) the broker may push to
        this channel's consumers (per consumer; ``global_qos=True``: shared by the channel).
        ``0`` means no limit. A stream consumer needs a non-zero prefetch.
        """

    def basic_recover(self, requeue: bool = False) -> Annotated[W_co, "spec.BasicRecoverOk"]:
        """Basic.Recover: redeliver every unacked message of this channel
        (RabbitMQ supports ``requeue=True`` only).
        """

    def confirm_delivery(self) -> Annotated[W_co, "spec.ConfirmSelectOk"]:
        """Confirm.Select: from now on each ``basic_publish`` fires only when the broker acks
        that message, and fails with ``NackError`` or ``UnroutableError``.

        :raises ChannelClosedByBroker: 406 PRECONDITION_FAILED on a transactional channel.
        """

    def tx_select(self) -> Annotated[W_co, "spec.TxSelectOk"]:
        """Tx.Select: put the channel in transaction mode; publishes and acks take effect on
        :meth:`tx_commit`. (Publisher confirms are the faster way to know the broker has a
        message.)
        """

    def tx_commit(self) -> Annotated[W_co, "spec.TxCommitOk"]:
        """Tx.Commit: apply the publishes and acks made since the last commit or rollback."""

    def tx_rollback(self) -> Annotated[W_co, "spec.TxRollbackOk"]:
        """Tx.Rollback: discard the publishes and acks made since the last commit."""

    def flow(self, active: bool) -> Annotated[W_co, "bool"]:
        """Channel.Flow: ask the broker to stop (``active=False``) or resume pushing messages to
        this channel; fires with the state the broker reports.
        """

    def basic_publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | bytearray | memoryview | str,
        properties: spec.BasicProperties | None = None,
        mandatory: bool = False,
    ) -> Annotated[W_co, "None"]:
        """Basic.Publish ``body`` (bytes, or str as UTF-8) to ``exchange`` with ``routing_key``.

        Outside confirm mode it fires once the frames are handed to the transport (after
        waiting while the broker blocks the connection or the transport pushes back). In
        confirm mode it fires when the broker acks this message. On a surviving channel a
        publish made while disconnected waits for the next connection (up to
        ``publish_timeout``), and an unconfirmed one is sent again after a reconnect.

        :raises NackError: the broker nacked it (confirm mode).
        :raises UnroutableError: ``mandatory=True`` and no queue took it (confirm mode).
        :raises ConnectionBlockedTimeout: the broker blocked publishers for longer than
            ``blocked_connection_timeout``.
        :raises PublishTimeout: (surviving channel) no connection within ``publish_timeout``.
        :raises ChannelWrongStateError: the channel is closed.
        """

    def basic_consume(
        self,
        queue: str,
        on_message_callback: Callable[[Message], object] | None = None,
        auto_ack: bool = False,
        exclusive: bool = False,
        consumer_tag: str | None = None,
        arguments: dict[str, Any] | None = None,
        run_in_thread: bool = False,
    ) -> Annotated[W_co, "Consumer"]:
        """Basic.Consume; fires with the :class:`Consumer` once the broker confirms it.

        With ``on_message_callback``, ``f(message)`` is called for each delivery (an
        ``async def`` callback is run to its end); without it, take messages with
        ``consumer.get()`` or ``async for``. ``auto_ack=True`` means the broker considers a
        message settled once sent. ``arguments`` carries ``x-stream-offset``,
        ``x-priority`` and other consumer arguments. With ``run_in_thread=True`` the
        callback is a blocking function run in a thread pool, one call per message; it is
        acked when it returns and nacked (requeued) when it raises.

        :raises ChannelClosedByBroker: 404 NOT_FOUND for a missing queue, 403
            ACCESS_REFUSED for another connection's exclusive queue.
        :raises ValueError: a stream consumer without a prefetch, or a bad
            ``x-stream-offset``.
        """

    def basic_cancel(self, consumer_tag: str = "") -> Annotated[W_co, "int"]:
        """Basic.Cancel the consumer with this tag; fires with the number of its buffered
        messages handed back to the broker (as :meth:`Consumer.cancel`).
        """

    def basic_get(self, queue: str, auto_ack: bool = False) -> Annotated[W_co, "Message | None"]:
        """Basic.Get one message from ``queue``: a :class:`~txamqp091.Message` (with
        ``.message_count``: how many remain) or ``None`` when the queue is empty.
        """

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        """Basic.Ack the delivery ``delivery_tag`` (with ``multiple=True``, every unacked delivery
        up to it). ``message.ack()`` is the safer spelling: it acks only on the channel the
        message came on. Safe from any thread.
        """

    def basic_nack(
        self, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True
    ) -> None:
        """Basic.Nack (a RabbitMQ extension): reject one delivery, or every one up to
        ``delivery_tag`` with ``multiple=True``; ``requeue=False`` dead-letters or drops it.
        """

    def basic_reject(self, delivery_tag: int, requeue: bool = True) -> None:
        """Basic.Reject one delivery; ``requeue=False`` dead-letters or drops it."""

    def add_on_return_callback(self, callback: Callable[[ReturnedMessage], Any]) -> None:
        """Call ``callback(message)`` for each mandatory message the broker returns as
        unroutable: the message as published (``exchange``, ``routing_key``, ``properties``,
        ``body``). In confirm mode its ``basic_publish`` fails with ``UnroutableError``, which
        carries the reply code and text."""

    def add_on_cancel_callback(self, callback: Callable[[str], Any]) -> None:
        """Call ``callback(consumer_tag)`` when the broker cancels a consumer (its queue was
        deleted, or a quorum queue's leader moved).
        """

    def close(
        self, reply_code: int = 200, reply_text: str = "Normal shutdown"
    ) -> Annotated[W_co, "BaseException | None"]:
        """Channel.Close, then fires once the broker confirms; buffered unacked messages go
        back to the broker. Fires with ``None``, or the error that had already ended the channel.
        """


class ConnectionAPI(Protocol[W_co]):
    """An open AMQP connection."""

    @property
    def is_open(self) -> bool:
        """Whether the connection is open (handshake done, not closing)."""

    @property
    def is_blocked(self) -> bool:
        """Whether the broker has blocked publishing on this connection (a resource alarm)."""

    @property
    def closed(self) -> Annotated[W_co, "BaseException | None"]:
        """Fires once the connection has ended: ``None`` after a close you asked for,
        otherwise the exception that ended it (``ConnectionClosedByBroker``,
        ``StreamLostError``, ``AMQPHeartbeatTimeout`` ...). Never errbacks.
        """

    def add_on_blocked_callback(self, callback: Callable[[str | None], Any]) -> None:
        """Call ``callback(reason)`` when the broker blocks publishing on this connection
        (Connection.Blocked: a memory or disk alarm; ``reason`` is the broker's text) and
        ``callback(None)`` when it unblocks it. Publishes wait meanwhile (and fail after
        ``blocked_connection_timeout``); this lets the application notice and shed load.
        """

    def channel(self, channel_number: int | None = None) -> Annotated[W_co, "Channel"]:
        """Open a new channel on the lowest free number, or on ``channel_number``; fires
        with it.

        Fails when the connection is closed, all ``channel_max`` channel numbers are taken
        or ``channel_number`` is in use (``ChannelWrongStateError``); a number outside
        1..``channel_max`` raises ``ValueError``.
        """

    def close(
        self, reply_code: int = 200, reply_text: str = "Normal shutdown"
    ) -> Annotated[W_co, "BaseException | None"]:
        """Connection.Close with ``reply_code``/``reply_text``; fires once the broker confirms
        and the transport is closed. Every channel ends with ``ChannelClosedByClient``.
        """

    def update_secret(
        self, new_secret: bytes | str, reason: str
    ) -> Annotated[W_co, "spec.ConnectionUpdateSecretOk"]:
        """Connection.UpdateSecret: give the broker a new password or token (OAuth 2 tokens
        expire) without reconnecting.
        """


def documented_by(protocol: type) -> Callable[[type[T]], type[T]]:
    """Class decorator: the class's own methods and properties take the docstring of
    the same name in ``protocol``.

    The contract is written once, here, and ``help()``, IDEs and the API reference
    show it on the classes users hold, without a second copy to keep in step (an
    implementation's own docstring is replaced: notes about *how* belong in comments).
    """

    def apply(cls: type[T]) -> type[T]:
        for name, member in vars(cls).items():
            documented = vars(protocol).get(name)
            if documented is None or not getattr(documented, "__doc__", None):
                continue
            doc = documented.__doc__
            if isinstance(member, property) and member.fget is not None:
                member.fget.__doc__ = doc
                setattr(cls, name, property(member.fget, member.fset, member.fdel, doc))
            elif callable(member):
                member.__doc__ = doc
        return cls

    return apply
