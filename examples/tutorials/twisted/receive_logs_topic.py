"""Tutorial 5, "Topics": print the log lines whose routing key matches a binding pattern.

    python receive_logs_topic.py "kern.*" "*.critical"

In a binding key, ``*`` stands for exactly one dot-separated word and ``#`` for zero or
more words.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet import defer, task

from txamqp091.twisted import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


async def main(reactor: Any, binding_keys: list[str]) -> None:
    connection = await connect(reactor, URL)
    channel = await connection.channel()
    await channel.exchange_declare("topic_logs", exchange_type="topic")
    declared = await channel.queue_declare("", exclusive=True)
    for binding_key in binding_keys:
        await channel.queue_bind(declared.queue, "topic_logs", routing_key=binding_key)
    consumer = await channel.basic_consume(declared.queue, auto_ack=True)
    print(" [*] Waiting for logs. To exit press CTRL+C")
    async for message in consumer:
        print(f" [x] {message.routing_key}:{message.body.decode()}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(f"Usage: {sys.argv[0]} [binding_key]...")
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, sys.argv[1:])))
