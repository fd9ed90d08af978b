"""What a consumer handler can tell the service that runs it, beyond success or failure.

A handler (``twistd amqp-consumer --handler module:callable``) acks by returning
and fails by raising. Raising one of these picks the outcome explicitly, whatever
``--on-error`` says: the HTTP bridge rejects a message its endpoint refused (4xx)
and requeues one it could not deliver (5xx). Standard library only, so any
adapter's consumer can use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["RejectMessage", "RequeueMessage", "handler_factory", "is_handler_factory"]

F = TypeVar("F", bound=Callable[..., Any])

_FACTORY_MARK = "__txamqp091_handler_factory__"


class RejectMessage(Exception):
    """Reject the message without requeueing it (so it is dead-lettered if the queue has a DLX)."""


class RequeueMessage(Exception):
    """Requeue the message; still subject to ``--max-redeliveries``."""


def handler_factory(factory: F) -> F:
    """Mark ``factory(options)`` as building the handler from the service's options.

    ``--handler`` normally names the handler itself. A configurable handler (like
    ``txamqp091.handlers:http_forward``, which needs ``--forward-url``) is named
    through a factory instead: the service calls it once, at start, with the parsed
    options (a mapping of option names to values), and uses what it returns.
    """
    setattr(factory, _FACTORY_MARK, True)
    return factory


def is_handler_factory(obj: object) -> bool:
    return bool(getattr(obj, _FACTORY_MARK, False))
