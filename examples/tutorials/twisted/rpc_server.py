"""Tutorial 6, "RPC": answer ``fib(n)`` requests arriving on ``rpc_queue``.

The reply goes to the queue the request names in ``reply_to`` (with direct reply-to,
the pseudo-queue ``amq.rabbitmq.reply-to``) and carries the request's
``correlation_id``, so the client can match it to its question. The request is acked
only after the reply is published.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, task

from txamqp091 import BasicProperties
from txamqp091.twisted import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


def fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


async def main(reactor: Any) -> None:
    connection = await connect(reactor, URL)
    channel = await connection.channel()
    await channel.queue_declare("rpc_queue")
    await channel.basic_qos(prefetch_count=1)
    requests = await channel.basic_consume("rpc_queue")
    print(" [x] Awaiting RPC requests")
    async for request in requests:
        n = int(request.body)
        print(f" [.] fib({n})")
        await channel.basic_publish(
            exchange="",
            routing_key=request.properties.reply_to or "",
            body=str(fib(n)).encode(),
            properties=BasicProperties(correlation_id=request.properties.correlation_id),
        )
        request.ack()


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
