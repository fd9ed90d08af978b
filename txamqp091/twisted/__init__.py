"""txamqp091 for Twisted: every operation returns a Deferred.

::

    conn = yield connect(reactor, "amqp://guest:guest@localhost/")
    ch = yield conn.channel()
    yield ch.basic_publish("", "q", b"body")
"""

from __future__ import annotations

from .channel import Channel, Connection, Consumer
from .connect import connect
from .protocol import AMQPProtocol
from .service import AMQPClientService, RecoveringChannel, RecoveringConsumer

__all__ = [
    "AMQPClientService",
    "AMQPProtocol",
    "Channel",
    "Connection",
    "Consumer",
    "RecoveringChannel",
    "RecoveringConsumer",
    "connect",
]
