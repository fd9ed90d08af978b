"""Tutorial 2, "Work queues": take tasks from ``task_queue`` one at a time, ack when done.

``basic_qos(prefetch_count=1)`` makes the broker hand a worker a new task only once it
has acked the previous one, so a slow worker is not handed a backlog. Several workers
share the queue round-robin. The ack after the work means a task whose worker dies
mid-way is delivered to another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from txamqp091.tornado import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


async def main() -> None:
    connection = await connect(URL)
    channel = await connection.channel()
    await channel.queue_declare("task_queue", durable=True)
    await channel.basic_qos(prefetch_count=1)
    consumer = await channel.basic_consume("task_queue")
    print(" [*] Waiting for messages. To exit press CTRL+C")
    async for message in consumer:
        print(f" [x] Received {message.body.decode()}")
        await asyncio.sleep(message.body.count(b"."))
        print(" [x] Done")
        message.ack()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # CTRL+C ends it quietly
        asyncio.run(main())
