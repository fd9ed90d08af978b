"""The public API of channels, consumers and connections, as typing protocols.

One place says what every operation takes and what its waiter fires with:

* mypy checks :class:`~.channel.ChannelLogic` and the surviving channel
  (:class:`~.recovering.SurvivingChannel`) against :class:`ChannelAPI`, so the two
  cannot drift apart (``_conformance`` below);
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
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar

from ..core import spec
from ..message import Message

__all__ = ["ChannelAPI", "ConnectionAPI", "ConsumerAPI"]

W_co = TypeVar("W_co", covariant=True)
W = TypeVar("W")


class ConsumerAPI(Protocol[W_co]):
    """A Basic.Consume subscription."""

    consumer_tag: str
    queue: str

    def get(self, timeout: float | None = None) -> Annotated[W_co, "Message | None"]: ...

    def cancel(self) -> Annotated[W_co, "int"]: ...

    def __anext__(self) -> Annotated[W_co, "Message"]: ...


class ChannelAPI(Protocol[W_co]):
    """An AMQP channel: pika's method names, each returning the adapter's waiter."""

    @property
    def is_open(self) -> bool: ...

    @property
    def closed(self) -> Annotated[W_co, "BaseException | None"]: ...

    @property
    def publisher_confirms(self) -> bool: ...

    def exchange_declare(
        self,
        exchange: str,
        exchange_type: str = "direct",
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> Annotated[W_co, "spec.ExchangeDeclareOk"]: ...

    def exchange_delete(
        self, exchange: str = "", if_unused: bool = False
    ) -> Annotated[W_co, "spec.ExchangeDeleteOk"]: ...

    def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> Annotated[W_co, "spec.ExchangeBindOk"]: ...

    def exchange_unbind(
        self,
        destination: str = "",
        source: str = "",
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> Annotated[W_co, "spec.ExchangeUnbindOk"]: ...

    def queue_declare(
        self,
        queue: str,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> Annotated[W_co, "spec.QueueDeclareOk"]: ...

    def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> Annotated[W_co, "spec.QueueBindOk"]: ...

    def queue_unbind(
        self,
        queue: str,
        exchange: str = "",
        routing_key: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> Annotated[W_co, "spec.QueueUnbindOk"]: ...

    def queue_purge(self, queue: str) -> Annotated[W_co, "spec.QueuePurgeOk"]: ...

    def queue_delete(
        self, queue: str, if_unused: bool = False, if_empty: bool = False
    ) -> Annotated[W_co, "spec.QueueDeleteOk"]: ...

    def basic_qos(
        self, prefetch_size: int = 0, prefetch_count: int = 0, global_qos: bool = False
    ) -> Annotated[W_co, "spec.BasicQosOk"]: ...

    def basic_recover(self, requeue: bool = False) -> Annotated[W_co, "spec.BasicRecoverOk"]: ...

    def confirm_delivery(self) -> Annotated[W_co, "spec.ConfirmSelectOk"]: ...

    def tx_select(self) -> Annotated[W_co, "spec.TxSelectOk"]: ...

    def tx_commit(self) -> Annotated[W_co, "spec.TxCommitOk"]: ...

    def tx_rollback(self) -> Annotated[W_co, "spec.TxRollbackOk"]: ...

    def flow(self, active: bool) -> Annotated[W_co, "bool"]: ...

    def basic_publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | bytearray | memoryview | str,
        properties: spec.BasicProperties | None = None,
        mandatory: bool = False,
    ) -> Annotated[W_co, "None"]: ...

    def basic_consume(
        self,
        queue: str,
        on_message_callback: Callable[[Message], object] | None = None,
        auto_ack: bool = False,
        exclusive: bool = False,
        consumer_tag: str | None = None,
        arguments: dict[str, Any] | None = None,
        run_in_thread: bool = False,
    ) -> Annotated[W_co, "Consumer"]: ...

    def basic_cancel(self, consumer_tag: str = "") -> Annotated[W_co, "int"]: ...

    def basic_get(
        self, queue: str, auto_ack: bool = False
    ) -> Annotated[W_co, "Message | None"]: ...

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None: ...

    def basic_nack(
        self, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True
    ) -> None: ...

    def basic_reject(self, delivery_tag: int, requeue: bool = True) -> None: ...

    def add_on_return_callback(self, callback: Callable[[Message], Any]) -> None: ...

    def add_on_cancel_callback(self, callback: Callable[[str], Any]) -> None: ...

    def close(
        self, reply_code: int = 200, reply_text: str = "Normal shutdown"
    ) -> Annotated[W_co, "BaseException | None"]: ...


class ConnectionAPI(Protocol[W_co]):
    """An open AMQP connection."""

    @property
    def is_open(self) -> bool: ...

    @property
    def is_blocked(self) -> bool: ...

    @property
    def closed(self) -> Annotated[W_co, "BaseException | None"]: ...

    def channel(self) -> Annotated[W_co, "Channel"]: ...

    def close(
        self, reply_code: int = 200, reply_text: str = "Normal shutdown"
    ) -> Annotated[W_co, "BaseException | None"]: ...

    def update_secret(
        self, new_secret: bytes | str, reason: str
    ) -> Annotated[W_co, "spec.ConnectionUpdateSecretOk"]: ...


if TYPE_CHECKING:
    from .channel import ChannelLogic
    from .connection import ConnectionLogic
    from .consumer import ConsumerLogic
    from .recovering import SurvivingChannel

    def _conformance(
        plain: ChannelLogic[W],
        surviving: SurvivingChannel[W],
        consumer: ConsumerLogic[W],
        connection: ConnectionLogic[W],
    ) -> tuple[ChannelAPI[W], ChannelAPI[W], ConsumerAPI[W], ConnectionAPI[W]]:
        """mypy fails here when either channel (or the consumer, or the connection)
        stops matching its protocol."""
        return plain, surviving, consumer, connection
