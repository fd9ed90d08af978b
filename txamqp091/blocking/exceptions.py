"""pika's ``pika.exceptions`` names for blocking code: ``except pika.exceptions.X`` ports as is.

Every error of :mod:`txamqp091.exceptions` is here under the same name, plus the
two the blocking facade adds: :class:`CallTimeout`, raised when a call's deadline
passes, and pika's :class:`ReentrancyError`.
"""

from __future__ import annotations

from .. import exceptions as _core_errors
from ..exceptions import *  # noqa: F403  (every error, by the list that module keeps)
from ..exceptions import AMQPError

# Derived, not copied: a new error in txamqp091.exceptions is here the day it is added.
__all__ = [*_core_errors.__all__, "CallTimeout", "ReentrancyError"]


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
