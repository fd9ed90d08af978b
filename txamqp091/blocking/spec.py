"""The ``pika.spec`` names blocking code uses: properties, delivery modes, and the
method classes it annotates with or tests with ``isinstance``.

A delivery's ``method`` is the :class:`~txamqp091.Message` itself (it carries every
field of pika's ``Basic.Deliver`` and ``Basic.GetOk``), so ``Basic.Deliver`` and
``Basic.GetOk`` name that class: ``def on_message(ch, method: Basic.Deliver, ...)``
and ``isinstance(method, Basic.Deliver)`` keep working after the import changes.
"""

from __future__ import annotations

from typing import TypeAlias

from ..core.spec import BasicProperties
from ..message import Message
from .frames import BasicCancel, BasicReturn, ConnectionBlocked, ConnectionUnblocked

__all__ = [
    "PERSISTENT_DELIVERY_MODE",
    "TRANSIENT_DELIVERY_MODE",
    "Basic",
    "BasicProperties",
    "Connection",
]

TRANSIENT_DELIVERY_MODE = 1
PERSISTENT_DELIVERY_MODE = 2


class Basic:
    """``pika.spec.Basic``: the method classes blocking callbacks receive."""

    Deliver: TypeAlias = Message
    GetOk: TypeAlias = Message
    Return: TypeAlias = BasicReturn
    Cancel: TypeAlias = BasicCancel
    Properties: TypeAlias = BasicProperties


class Connection:
    """``pika.spec.Connection``: what blocked/unblocked callbacks receive."""

    Blocked: TypeAlias = ConnectionBlocked
    Unblocked: TypeAlias = ConnectionUnblocked
