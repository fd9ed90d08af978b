"""What pika's blocking methods return, in pika's shapes.

``queue_declare()`` returns a :class:`MethodFrame` whose ``method`` is the
broker's reply (``.method.queue``, ``.method.message_count``...), as
``pika.frame.Method``. Deliveries and Basic.Get-Ok are handed to user code as the
:class:`~txamqp091.Message` itself in the ``method`` position: it carries
``delivery_tag``, ``consumer_tag``, ``exchange``, ``routing_key``,
``redelivered`` (and ``message_count`` for a get), the fields of pika's
``Basic.Deliver`` / ``Basic.GetOk``, without building a second object per message.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BasicCancel",
    "BasicReturn",
    "ConnectionBlocked",
    "ConnectionUnblocked",
    "MethodFrame",
    "ReturnedMessage",
]


class MethodFrame:
    """``pika.frame.Method``: a method the broker sent on a channel."""

    __slots__ = ("channel_number", "method")

    frame_type = 1

    def __init__(self, channel_number: int, method: Any) -> None:
        self.channel_number = channel_number
        self.method = method

    def __repr__(self) -> str:
        return f"<METHOD(['channel_number={self.channel_number}', 'method={self.method!r}'])>"


class BasicReturn:
    """``pika.spec.Basic.Return``: why the broker returned a mandatory message."""

    __slots__ = ("exchange", "reply_code", "reply_text", "routing_key")

    NAME = "Basic.Return"

    def __init__(self, reply_code: int, reply_text: str, exchange: str, routing_key: str) -> None:
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.exchange = exchange
        self.routing_key = routing_key

    def __repr__(self) -> str:
        return (
            f"<Basic.Return(reply_code={self.reply_code}, reply_text={self.reply_text!r}, "
            f"exchange={self.exchange!r}, routing_key={self.routing_key!r})>"
        )


class BasicCancel:
    """``pika.spec.Basic.Cancel``: the broker cancelled a consumer."""

    __slots__ = ("consumer_tag",)

    NAME = "Basic.Cancel"

    def __init__(self, consumer_tag: str) -> None:
        self.consumer_tag = consumer_tag

    def __repr__(self) -> str:
        return f"<Basic.Cancel(consumer_tag={self.consumer_tag!r})>"


class ReturnedMessage:
    """``pika.adapters.blocking_connection.ReturnedMessage``: one message of an
    ``UnroutableError``'s ``messages``; ``method`` is its :class:`BasicReturn`."""

    __slots__ = ("body", "method", "properties")

    def __init__(self, method: BasicReturn, properties: Any, body: bytes) -> None:
        self.method = method
        self.properties = properties
        self.body = body

    def __repr__(self) -> str:
        return f"<ReturnedMessage {self.method!r} body={self.body[:32]!r}>"


class ConnectionBlocked:
    """``pika.spec.Connection.Blocked``: the broker stopped reading our publishes."""

    __slots__ = ("reason",)

    NAME = "Connection.Blocked"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"<Connection.Blocked(reason={self.reason!r})>"


class ConnectionUnblocked:
    """``pika.spec.Connection.Unblocked``: the broker reads our publishes again."""

    __slots__ = ()

    NAME = "Connection.Unblocked"

    def __repr__(self) -> str:
        return "<Connection.Unblocked>"
