"""pika's ``BlockingConnection`` over txamqp091, safe to call from any thread.

::

    from txamqp091 import blocking as pika

    connection = pika.BlockingConnection(pika.ConnectionParameters(host="localhost"))
    channel = connection.channel()
    channel.queue_declare(queue="hello")
    channel.basic_publish(exchange="", routing_key="hello", body=b"Hello World!")
    connection.close()

Code written for pika's blocking adapter runs after changing its imports. The
AMQP work runs on one private asyncio loop thread per process, shared by every
blocking connection, through :mod:`txamqp091.tornado`; no global loop or reactor
is installed and an application's own asyncio loop is left alone. Every call has
a deadline (``BlockingConnection(timeout=30.0)``, or ``timeout=`` on a call).
"""

from __future__ import annotations

from .. import ExternalCredentials, PlainCredentials, URLParameters
from ..constants import DeliveryMode, ExchangeType
from ..core.spec import BasicProperties
from ..message import Message
from ..params import SSLOptions
from . import credentials, exceptions, spec
from .channel import BlockingChannel
from .connection import BlockingConnection
from .exceptions import CallTimeout
from .params import ConnectionParameters

__all__ = [
    "BasicProperties",
    "BlockingChannel",
    "BlockingConnection",
    "CallTimeout",
    "ConnectionParameters",
    "DeliveryMode",
    "ExchangeType",
    "ExternalCredentials",
    "Message",
    "PlainCredentials",
    "SSLOptions",
    "URLParameters",
    "credentials",
    "exceptions",
    "spec",
]
