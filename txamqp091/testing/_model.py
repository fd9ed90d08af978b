"""What the fake broker stores and how it routes: messages, bindings, exchanges.

These are plain values with no reference to connections or channels, so
every other module of the fake broker can import them and nothing here
imports back. The errors a method handler raises live here too: they are
what the per-connection protocol turns into Channel.Close or Connection.Close.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core import spec
from ..core.codec import FieldTable

__all__ = [
    "EXCHANGE_TYPES",
    "OVERFLOW_MODES",
    "Binding",
    "BrokerChannelError",
    "BrokerConnectionError",
    "FakeExchange",
    "StoredMessage",
    "flag",
]

EXCHANGE_TYPES = ("direct", "fanout", "topic", "headers")
OVERFLOW_MODES = ("drop-head", "reject-publish", "reject-publish-dlx")


@dataclass
class StoredMessage:
    """A message held in a queue (or delivered and not yet acked)."""

    exchange: str
    routing_key: str
    body: bytes
    properties: spec.BasicProperties = field(default_factory=spec.BasicProperties)
    #: Set once the message was delivered and requeued.
    redelivered: bool = False
    #: Its place in the queue: a requeued message goes back where it was, as in RabbitMQ.
    position: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Binding:
    """A binding of a queue (``to_queue``) or an exchange to a source exchange."""

    destination: str
    to_queue: bool
    routing_key: str
    arguments: FieldTable = field(default_factory=dict, compare=False)

    def key(self) -> tuple[str, bool, str, str]:
        """What makes two bindings the same one (the arguments compared by value)."""
        items = sorted(self.arguments.items(), key=lambda item: item[0])
        return (self.destination, self.to_queue, self.routing_key, repr(items))


@dataclass
class FakeExchange:
    """An exchange: its declared properties and the bindings it routes to."""

    name: str
    type: str = "direct"
    durable: bool = False
    auto_delete: bool = False
    internal: bool = False
    arguments: FieldTable = field(default_factory=dict)
    bindings: list[Binding] = field(default_factory=list)

    def matches(self, binding: Binding, routing_key: str, headers: FieldTable | None) -> bool:
        """Whether a message with ``routing_key``/``headers`` follows ``binding``."""
        if self.type == "fanout":
            return True
        if self.type == "topic":
            return topic_match(binding.routing_key.split("."), routing_key.split("."))
        if self.type == "headers":
            return headers_match(binding.arguments, headers or {})
        return binding.routing_key == routing_key


def topic_match(pattern: list[str], words: list[str]) -> bool:
    """AMQP topic matching: ``*`` is one word, ``#`` is zero or more."""
    if not pattern:
        return not words
    head = pattern[0]
    if head == "#":
        return any(topic_match(pattern[1:], words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and topic_match(pattern[1:], words[1:])


def headers_match(arguments: FieldTable, headers: FieldTable) -> bool:
    """A headers-exchange binding (``x-match: all`` by default, or ``any``)."""
    mode = str(arguments.get("x-match", "all"))
    wanted = {k: v for k, v in arguments.items() if not k.startswith("x-")}

    def ok(key: str, value: Any) -> bool:
        return key in headers and (value is None or headers[key] == value)

    if mode.startswith("any"):
        return any(ok(k, v) for k, v in wanted.items())
    return all(ok(k, v) for k, v in wanted.items())


def flag(value: bool) -> str:
    """A boolean as RabbitMQ spells it in ``inequivalent arg`` errors."""
    return "true" if value else "false"


class BrokerChannelError(Exception):
    """Raised by a channel-method handler: the broker closes the channel with ``code``."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text


class BrokerConnectionError(BrokerChannelError):
    """Raised by a handler for a hard error: the broker closes the whole connection."""
