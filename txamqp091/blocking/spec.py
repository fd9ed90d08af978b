"""The few ``pika.spec`` names blocking code uses."""

from __future__ import annotations

from ..core.spec import BasicProperties

__all__ = ["PERSISTENT_DELIVERY_MODE", "TRANSIENT_DELIVERY_MODE", "BasicProperties"]

TRANSIENT_DELIVERY_MODE = 1
PERSISTENT_DELIVERY_MODE = 2
