"""Built-in handlers for ``twistd amqp-consumer --handler``.

``txamqp091.handlers:http_forward`` is the AMQP-to-webhook bridge: it POSTs each
message to ``--forward-url`` (see :mod:`txamqp091.handlers.http_forward`).
"""

from __future__ import annotations

from .http_forward import HTTPForwarder, http_forward

__all__ = ["HTTPForwarder", "http_forward"]
