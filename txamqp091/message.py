"""The message a consumer or ``basic_get`` hands to user code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from .core.events import Delivery

__all__ = ["Message", "ReturnedMessage", "SettlingChannel"]


class SettlingChannel(Protocol):
    """What a message needs of the channel it came on: a way to settle it. The client's
    channels implement it; this module names only the protocol, so it depends on the
    core and nothing above it."""

    def _settle(self, message: Message, how: str, **kwargs: Any) -> None: ...

    def _ack(self, message: Message, multiple: bool) -> None: ...


@dataclass(slots=True, eq=False, repr=False)
class Message(Delivery):
    """A received message: ``body``, ``properties`` and the delivery's routing facts.

    The core builds one of these per delivery (it is the connection's
    ``delivery_class``), so the event and the user's message are one object.

    A message remembers the connection it came on: acking it after that
    connection died does nothing (the broker redelivers it), and so never
    acknowledges a different message that reuses its delivery tag.
    """

    # Built by the core for each delivery, through the ``__init__`` the dataclass
    # generates from Delivery's fields and these three: one call per message, every
    # slot set, no copy of Delivery's field list. Not keyword-only: keyword defaults
    # cost the call about 5% (measured), positional ones nothing.
    _channel: SettlingChannel | None = None
    _core_channel: object = None
    #: Messages left in the queue (``basic_get`` only; None for deliveries).
    message_count: int | None = None

    @property
    def channel(self) -> SettlingChannel | None:
        """The channel this message arrived on."""
        return self._channel

    @property
    def delivery_count(self) -> int | None:
        """Earlier deliveries of this message, from the ``x-delivery-count`` header a
        quorum queue adds to a redelivery (None where the broker does not say: a first
        delivery, or a classic queue)."""
        return _header_int(self, "x-delivery-count")

    @property
    def stream_offset(self) -> int | None:
        """This message's offset in a stream (``x-stream-offset``), or None off a stream.
        A recovering consumer resumes after the last offset it delivered."""
        return _header_int(self, "x-stream-offset")

    def _settle(self, method: str, **kwargs: Any) -> None:
        channel = self._channel
        if channel is None:
            _unbound()
        channel._settle(self, method, **kwargs)

    def ack(self, multiple: bool = False) -> None:
        """Acknowledge this message (and, with ``multiple``, every earlier one on its channel)."""
        # The channel's _ack, not _settle: a consumer's every message, without the
        # keyword packing (two dicts) and one call.
        channel = self._channel
        if channel is None:
            _unbound()
        channel._ack(self, multiple)

    def nack(self, requeue: bool = True, multiple: bool = False) -> None:
        """Reject this message (RabbitMQ's Basic.Nack); ``requeue=False`` dead-letters or drops it."""
        self._settle("nack", requeue=requeue, multiple=multiple)

    def reject(self, requeue: bool = True) -> None:
        """Reject this message (Basic.Reject)."""
        self._settle("reject", requeue=requeue)


@dataclass(slots=True, eq=False, repr=False)
class ReturnedMessage(Message):
    """A mandatory message the broker could not route, as ``add_on_return_callback``
    hands it over: the message, plus why the broker returned it (Basic.Return's
    ``reply_code`` and ``reply_text``, 312 ``NO_ROUTE`` for no matching binding).
    A subclass, so a callback typed for :class:`Message` takes it unchanged."""

    reply_code: int = 0
    reply_text: str = ""


def _unbound() -> NoReturn:
    raise RuntimeError("this message is not bound to a channel")


def _header_int(message: Message, name: str) -> int | None:
    headers = message.properties.headers
    if not headers:
        return None
    value = headers.get(name)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        # A plain int: the header's wire type (Int64 and the like) is the codec's business.
        return int(value)
    return None
