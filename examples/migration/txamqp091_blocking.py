"""After: ``pika_blocking.py`` ported to ``txamqp091.blocking``.

What differs: the imports (pika's submodules become names of
``txamqp091.blocking``), the parameters (immutable: ``replace()`` instead of
assignment) and the ``method`` annotation (a ``Message``). ``docs/migration.rst`` includes both files;
``tests/tutorials/test_migration.py`` runs both and compares what they print.
"""

from __future__ import annotations

import json
import os

from txamqp091 import blocking as pika
from txamqp091.blocking import BasicProperties, BlockingChannel, ExchangeType, Message

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")

parameters = pika.URLParameters(URL).replace(heartbeat=30, blocked_connection_timeout=60)
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
    ch: BlockingChannel, method: Message, properties: BasicProperties, body: bytes
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
