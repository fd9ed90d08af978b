"""txamqp091: an AMQP 0-9-1 (RabbitMQ) client for Twisted and Tornado over a sans-IO core.

This package imports neither Twisted nor Tornado; ``txamqp091.twisted`` and
``txamqp091.tornado`` hold the adapters.
"""

from __future__ import annotations

from ._version import __version__
from .constants import DeliveryMode, ExchangeType
from .core.spec import BasicProperties
from .message import Message
from .params import ConnectionParameters, ExternalCredentials, PlainCredentials, URLParameters

__all__ = [
    "BasicProperties",
    "ConnectionParameters",
    "DeliveryMode",
    "ExchangeType",
    "ExternalCredentials",
    "Message",
    "PlainCredentials",
    "URLParameters",
    "__version__",
]
