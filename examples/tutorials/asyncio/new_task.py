"""Tutorial 2, "Work queues": send a task (the command line) to the durable ``task_queue``.

Each dot in the message stands for one second of work. The message is persistent, so
it survives a broker restart together with its durable queue.
"""

from __future__ import annotations

import asyncio
import os
import sys

from txamqp091 import BasicProperties, DeliveryMode
from txamqp091.tornado import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


async def main(message: str) -> None:
    connection = await connect(URL)
    channel = await connection.channel()
    await channel.queue_declare("task_queue", durable=True)
    await channel.basic_publish(
        exchange="",
        routing_key="task_queue",
        body=message.encode(),
        properties=BasicProperties(delivery_mode=DeliveryMode.Persistent),
    )
    print(f" [x] Sent {message}")
    await connection.close()


if __name__ == "__main__":
    text = " ".join(sys.argv[1:]) or "Hello World!"
    asyncio.run(main(text))
