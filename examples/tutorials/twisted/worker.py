"""Tutorial 2, "Work queues": take tasks from ``task_queue`` one at a time, ack when done.

``basic_qos(prefetch_count=1)`` makes the broker hand a worker a new task only once it
has acked the previous one, so a slow worker is not handed a backlog. Several workers
share the queue round-robin. The ack after the work means a task whose worker dies
mid-way is delivered to another worker.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, task

from txamqp091.twisted import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


async def main(reactor: Any) -> None:
    connection = await connect(reactor, URL)
    channel = await connection.channel()
    await channel.queue_declare("task_queue", durable=True)
    await channel.basic_qos(prefetch_count=1)
    consumer = await channel.basic_consume("task_queue")
    print(" [*] Waiting for messages. To exit press CTRL+C")
    async for message in consumer:
        print(f" [x] Received {message.body.decode()}")
        await task.deferLater(reactor, message.body.count(b"."), lambda: None)
        print(" [x] Done")
        message.ack()


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
