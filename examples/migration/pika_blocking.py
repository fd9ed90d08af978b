"""Before: a typical pika ``BlockingConnection`` script, as pika's users write it.

Topic exchange, server-named queue, QoS, publisher confirms, a mandatory publish that
comes back, a ``(ch, method, properties, body)`` callback, ``basic_get``.
``docs/migration.rst`` includes it next to its port, ``txamqp091_blocking.py``;
``tests/tutorials/test_migration.py`` runs both and compares what they print.
"""

from __future__ import annotations

import json
import os

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exchange_type import ExchangeType
from pika.spec import Basic, BasicProperties

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")

parameters = pika.URLParameters(URL)
parameters.heartbeat = 30
parameters.blocked_connection_timeout = 60
connection = pika.BlockingConnection(parameters)
channel = connection.channel()
channel.exchange_declare(exchange="orders", exchange_type=ExchangeType.topic, auto_delete=True)
queue = channel.queue_declare(queue="", exclusive=True).method.queue
channel.queue_bind(exchange="orders", queue=queue, routing_key="order.*")
channel.basic_qos(prefetch_count=10)
channel.confirm_delivery()

for n in range(3):
    channel.basic_publish(
        exchange="orders",
        routing_key=f"order.{n}",
        body=json.dumps({"n": n}),
        properties=pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            headers={"x-n": n},
        ),
        mandatory=True,
    )
try:
    channel.basic_publish(exchange="orders", routing_key="invoice.1", body="{}", mandatory=True)
except pika.exceptions.UnroutableError as error:
    returned = error.messages[0].method
    print(f"returned: {returned.reply_code} {returned.reply_text}")

received: list[dict[str, int]] = []


def on_message(
    ch: BlockingChannel, method: Basic.Deliver, properties: BasicProperties, body: bytes
) -> None:
    order = json.loads(body)
    headers = properties.headers or {}
    print(f"got order {order['n']} via {method.routing_key} (x-n={headers['x-n']})")
    ch.basic_ack(delivery_tag=method.delivery_tag)
    received.append(order)
    if len(received) == 3:
        ch.stop_consuming()


channel.basic_consume(queue=queue, on_message_callback=on_message)
channel.start_consuming()
method, properties, body = channel.basic_get(queue=queue)
print("queue empty" if method is None else f"unexpected {body!r}")
connection.close()
