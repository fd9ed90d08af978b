"""Tutorial 4, "Routing": print the log lines of the severities named on the command line.

    python receive_logs_direct.py warning error

A ``direct`` exchange delivers a message to the queues bound with exactly its routing
key; one queue may be bound with several keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

from txamqp091.tornado import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


async def main(severities: list[str]) -> None:
    connection = await connect(URL)
    channel = await connection.channel()
    await channel.exchange_declare("direct_logs", exchange_type="direct")
    declared = await channel.queue_declare("", exclusive=True)
    for severity in severities:
        await channel.queue_bind(declared.queue, "direct_logs", routing_key=severity)
    consumer = await channel.basic_consume(declared.queue, auto_ack=True)
    print(" [*] Waiting for logs. To exit press CTRL+C")
    async for message in consumer:
        print(f" [x] {message.routing_key}:{message.body.decode()}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(f"Usage: {sys.argv[0]} [info] [warning] [error]")
    with contextlib.suppress(KeyboardInterrupt):  # CTRL+C ends it quietly
        asyncio.run(main(sys.argv[1:]))
