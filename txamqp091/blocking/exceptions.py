"""pika's ``pika.exceptions`` names for blocking code: ``except pika.exceptions.X`` ports as is.

Every error of :mod:`txamqp091.exceptions` is here under the same name, plus the
two the blocking facade adds: :class:`CallTimeout`, raised when a call's deadline
passes, and pika's :class:`ReentrancyError`.
"""

from __future__ import annotations

from ..exceptions import (
    AMQPChannelError,
    AMQPConnectionError,
    AMQPError,
    AMQPHeartbeatTimeout,
    AuthenticationError,
    ChannelClosed,
    ChannelClosedByBroker,
    ChannelClosedByClient,
    ChannelWrongStateError,
    ConnectionBlockedTimeout,
    ConnectionClosed,
    ConnectionClosedByBroker,
    ConnectionClosedByClient,
    ConnectionWrongStateError,
    ConsumerCancelled,
    DuplicateConsumerTag,
    NackError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    ProtocolError,
    PublishTimeout,
    StreamLostError,
    UnroutableError,
)

__all__ = [
    "AMQPChannelError",
    "AMQPConnectionError",
    "AMQPError",
    "AMQPHeartbeatTimeout",
    "AuthenticationError",
    "CallTimeout",
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
    "NackError",
    "ProbableAccessDeniedError",
    "ProbableAuthenticationError",
    "ProtocolError",
    "PublishTimeout",
    "ReentrancyError",
    "StreamLostError",
    "UnroutableError",
]


class CallTimeout(AMQPError, TimeoutError):
    """A blocking call did not complete within its deadline.

    The operation may still take effect later (a publish may still reach the
    broker); a reply that arrives late is consumed and dropped, so the channel stays
    usable.

    :ivar operation: what was being waited for, e.g. ``"queue_declare"``.
    :ivar timeout: the deadline in seconds.
    """

    def __init__(self, operation: str, timeout: float | None) -> None:
        super().__init__(f"{operation} did not complete within {timeout} s")
        self.operation = operation
        self.timeout = timeout


class ReentrancyError(AMQPError):
    """``start_consuming()`` (or ``consume()``) was called from inside a callback it would
    dispatch, in the same thread (pika's name)."""
