"""txamqp091: an AMQP 0-9-1 (RabbitMQ) client for Twisted and Tornado over a sans-IO core."""

from __future__ import annotations

from ._version import __version__

__all__ = ["__version__"]
