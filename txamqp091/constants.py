"""Enumerations users pass to channel methods and properties (pika's names)."""

from __future__ import annotations

import enum

__all__ = ["DeliveryMode", "ExchangeType"]


class DeliveryMode(enum.IntEnum):
    """``BasicProperties.delivery_mode``: 2 asks the broker to write the message to disk."""

    Transient = 1
    Persistent = 2


class ExchangeType(str, enum.Enum):
    """``exchange_declare(exchange_type=...)``; plain strings work too (plugins add more)."""

    direct = "direct"
    fanout = "fanout"
    headers = "headers"
    topic = "topic"

    def __str__(self) -> str:
        return self.value
