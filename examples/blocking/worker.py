"""Tutorial 2, Work queues: take one task at a time, work, then ack it."""

from __future__ import annotations

import os
import sys
import time

from txamqp091 import blocking as pika

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")
#: Seconds of work per dot in a task (the tutorial's is 1).
SECONDS_PER_DOT = float(os.environ.get("SECONDS_PER_DOT", "1"))


def main():
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()

    channel.queue_declare(queue="task_queue", durable=True)
    print(" [*] Waiting for messages. To exit press CTRL+C")

    def callback(ch, method, properties, body):
        print(f" [x] Received {body.decode()}")
        time.sleep(body.count(b".") * SECONDS_PER_DOT)
        print(" [x] Done")
        ch.basic_ack(delivery_tag=method.delivery_tag)

    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue="task_queue", on_message_callback=callback)

    channel.start_consuming()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted")
        sys.exit(0)
