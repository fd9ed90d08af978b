"""AFTER: pika_asyncio.py ported to txamqp091 (asyncio and Tornado): the same output.

Each pika callback becomes an ``await``; the consumer is an async iterator of
``Message`` objects.
"""

from __future__ import annotations

import asyncio
import os

from txamqp091 import BasicProperties
from txamqp091.tornado import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


async def main() -> None:
    connection = await connect(URL)
    channel = await connection.channel()
    declared = await channel.queue_declare("", exclusive=True)
    for n in range(3):
        await channel.basic_publish(
            exchange="",
            routing_key=declared.queue,
            body=f"message {n}".encode(),
            properties=BasicProperties(headers={"x-n": n}),
        )
    consumer = await channel.basic_consume(declared.queue, auto_ack=False)
    received = 0
    async for message in consumer:
        print(
            f"got {message.body.decode()} (header x-n={(message.properties.headers or {})['x-n']})"
        )
        message.ack()
        received += 1
        if received == 3:
            break
    await consumer.cancel()
    got = await channel.basic_get(declared.queue)
    print("queue empty" if got is None else f"unexpected {got!r}")
    await connection.close()


if __name__ == "__main__":
    asyncio.run(main())
