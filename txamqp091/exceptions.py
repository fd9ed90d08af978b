"""Every error txamqp091 raises, errbacks or fails a future with.

Names follow pika's wherever the same condition exists, so that ``except``
clauses port unchanged. Only the standard library is imported here: the core,
both adapters and user code all share these types.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AMQPChannelError",
    "AMQPConnectionError",
    "AMQPError",
    "AMQPHeartbeatTimeout",
    "AuthenticationError",
    "ChannelClosed",
    "ChannelClosedByBroker",
    "ChannelClosedByClient",
    "ChannelWrongStateError",
    "ConnectionBlockedTimeout",
    "ConnectionClosed",
    "ConnectionClosedByBroker",
    "ConnectionClosedByClient",
    "ConnectionWrongStateError",
    "ConsumerCancelled",
    "DuplicateConsumerTag",
    "IncompatibleProtocolError",
    "NackError",
    "ProbableAccessDeniedError",
    "ProbableAuthenticationError",
    "ProtocolError",
    "PublishTimeout",
    "StreamLostError",
    "UnroutableError",
]


class AMQPError(Exception):
    """Base of every txamqp091 error."""


class _ReplyCode(Exception):
    """Errors that carry an AMQP reply: ``reply_code`` and ``reply_text``."""

    def __init__(self, reply_code: int, reply_text: str) -> None:
        super().__init__(reply_code, reply_text)
        self.reply_code = reply_code
        self.reply_text = reply_text

    def __str__(self) -> str:
        return f"({self.reply_code}) {self.reply_text!r}"


class AMQPConnectionError(AMQPError):
    """The connection could not be established or was lost."""


class ConnectionWrongStateError(AMQPConnectionError):
    """An operation was asked of a connection that is not open (or not yet open)."""


class ConnectionClosed(_ReplyCode, AMQPConnectionError):
    """The connection ended; ``reply_code`` and ``reply_text`` say why.

    :param reply_code: the AMQP reply code (200 for a normal shutdown).
    :param reply_text: the peer's or client's explanation.
    """


class ConnectionClosedByBroker(ConnectionClosed):
    """The broker sent Connection.Close."""


class ConnectionClosedByClient(ConnectionClosed):
    """This client closed the connection (its own ``close()`` or a protocol error)."""


class StreamLostError(AMQPConnectionError):
    """The transport dropped without an AMQP close handshake."""


class AMQPHeartbeatTimeout(AMQPConnectionError):
    """Nothing was heard from the broker for two heartbeat intervals."""


class ConnectionBlockedTimeout(AMQPConnectionError):
    """The broker kept the connection blocked longer than ``blocked_connection_timeout``."""


class AuthenticationError(AMQPConnectionError):
    """The broker refused the credentials' mechanism (none of ours is offered)."""


class _HandshakeRefusal(AMQPConnectionError):
    """The broker ended the handshake: ``reply_code`` is its Connection.Close reply code,
    0 when it only dropped the connection (which may be a network cut, not a refusal)."""

    def __init__(self, text: str, reply_code: int = 0) -> None:
        super().__init__(text)
        self.reply_code = reply_code


class ProbableAuthenticationError(_HandshakeRefusal):
    """The broker refused the credentials, or closed the socket during the handshake."""


class ProbableAccessDeniedError(_HandshakeRefusal):
    """The broker refused access to the virtual host."""


class ProtocolError(_ReplyCode, AMQPConnectionError):
    """The peer sent a malformed or unexpected frame.

    The core does not raise it for peer input: it queues Connection.Close with
    ``reply_code`` (501 frame error, 502 syntax error, 503 command invalid, 504
    channel error, 505 unexpected frame, 540 not implemented) and returns a
    ``ConnectionClosed`` event carrying this error, with which the adapter then
    fails every operation still waiting.
    """

    def __str__(self) -> str:
        return f"({self.reply_code}) {self.reply_text}"


class IncompatibleProtocolError(ProtocolError):
    """The peer answered our protocol header with another one: it does not speak AMQP 0-9-1.

    Spec 4.2.2: a server that rejects the protocol header writes the one it
    supports and closes the socket. No Connection.Close is sent (nothing was
    negotiated), so ``reply_code`` is 0.
    """

    def __init__(self, reply_text: str) -> None:
        super().__init__(0, reply_text)

    def __str__(self) -> str:
        return self.reply_text


class AMQPChannelError(AMQPError):
    """Base of the channel-level errors."""


class ChannelWrongStateError(AMQPChannelError):
    """An operation was asked of a channel that is closed, closing or not in the right mode."""


class ChannelClosed(_ReplyCode, AMQPChannelError):
    """The channel ended; ``reply_code`` and ``reply_text`` say why."""


class ChannelClosedByBroker(ChannelClosed):
    """The broker sent Channel.Close (for example 404 NOT_FOUND, 406 PRECONDITION_FAILED)."""


class ChannelClosedByClient(ChannelClosed):
    """This client closed the channel."""


class ConsumerCancelled(AMQPChannelError):
    """The consumer ended: the broker cancelled it (its queue was deleted, or a node
    failed), or, with ``by_client``, this client's ``cancel()`` did."""

    def __init__(self, text: str, by_client: bool = False) -> None:
        super().__init__(text)
        self.by_client = by_client


class DuplicateConsumerTag(AMQPChannelError):
    """A consumer with this tag already exists on the channel."""


class UnroutableError(AMQPChannelError):
    """A mandatory message was returned by the broker (Basic.Return) instead of routed.

    :ivar reply_code: the Basic.Return reply code (312 NO_ROUTE, 313 NO_CONSUMERS).
    :ivar reply_text: the broker's explanation.
    :ivar message: the returned message, when it is known.
    :ivar messages: pika's shape, filled by :mod:`txamqp091.blocking`: a list of
        ``ReturnedMessage(method, properties, body)``; empty elsewhere.
    """

    messages: Sequence[Any] = ()

    def __init__(self, reply_code: int, reply_text: str, message: object = None) -> None:
        super().__init__(reply_code, reply_text)
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.message = message

    def __str__(self) -> str:
        return f"message returned: ({self.reply_code}) {self.reply_text!r}"


class NackError(AMQPChannelError):
    """The broker nacked a published message in confirm mode: it does not have it.

    :ivar messages: pika's name; always empty (pika lists a nacked message only when
        it was also returned).
    """

    messages: Sequence[Any] = ()


class PublishTimeout(AMQPError):
    """A publish could not be handed to a connection within ``publish_timeout``."""
