"""A fake RabbitMQ broker for tests, sans-IO, with thin shims for Twisted and asyncio.

:class:`~txamqp091.testing.FakeBroker` models one virtual host: exchanges (default, direct, fanout,
topic, headers, exchange-to-exchange), queues and bindings, consumers with QoS,
acks, nacks, rejects and redelivery, ``basic_get``, publisher confirms, returns,
transactions, channel and connection errors with RabbitMQ's reply codes, and
scripted faults (:meth:`~txamqp091.testing.FakeBroker.script`). It takes bytes and gives bytes; the
shims carry them:

* :mod:`txamqp091.testing.twisted`: an in-memory :class:`~.twisted.Pump` on a
  ``task.Clock`` and a :class:`~.twisted.FakeEndpoint`, or a Twisted ``Factory``
  for ``listenTCP``;
* :mod:`txamqp091.testing.asyncio`: the broker served on a loopback port.

This package imports no adapter of txamqp091, and this module imports neither
Twisted nor asyncio: import the shim you need.
"""

from __future__ import annotations

from ._connection import FAULTS, BrokerConnection
from ._model import Binding, FakeExchange, StoredMessage
from ._state import BrokerChannel, BrokerConsumer, FakeQueue, VirtualHost
from .broker import FakeBroker

__all__ = [
    "FAULTS",
    "Binding",
    "BrokerChannel",
    "BrokerConnection",
    "BrokerConsumer",
    "FakeBroker",
    "FakeExchange",
    "FakeQueue",
    "StoredMessage",
    "VirtualHost",
]
