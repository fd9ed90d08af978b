"""Tutorial 6, "RPC": ask the ``rpc_server`` for ``fib(n)`` and wait for the answer.

It uses RabbitMQ's direct reply-to: consuming from the pseudo-queue
``amq.rabbitmq.reply-to`` (with ``auto_ack=True``, which direct reply-to requires)
before publishing the request, with ``reply_to`` set to the same name. No reply queue
is declared, and the answer comes straight back on this channel.

    python rpc_client.py 30
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

from txamqp091 import BasicProperties
from txamqp091.tornado import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
REPLY_TO = "amq.rabbitmq.reply-to"


async def call(n: int, timeout: float = 10.0) -> int:
    connection = await connect(URL)
    try:
        channel = await connection.channel()
        replies = await channel.basic_consume(REPLY_TO, auto_ack=True)
        correlation_id = str(uuid.uuid4())
        await channel.basic_publish(
            exchange="",
            routing_key="rpc_queue",
            body=str(n).encode(),
            properties=BasicProperties(reply_to=REPLY_TO, correlation_id=correlation_id),
        )
        while True:
            reply = await replies.get(timeout=timeout)
            if reply is None:
                raise TimeoutError(f"no answer to fib({n}) within {timeout} s")
            if reply.properties.correlation_id == correlation_id:
                return int(reply.body)
    finally:
        await connection.close()


async def main(n: int) -> None:
    print(f" [x] Requesting fib({n})")
    response = await call(n)
    print(f" [.] Got {response}")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    asyncio.run(main(n))
