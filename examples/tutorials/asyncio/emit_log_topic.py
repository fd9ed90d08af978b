"""Tutorial 5, "Topics": send a log line with a dotted routing key such as ``kern.critical``.

python emit_log_topic.py kern.critical "A critical kernel error"
"""

from __future__ import annotations

import asyncio
import os
import sys

from txamqp091.tornado import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


async def main(routing_key: str, message: str) -> None:
    connection = await connect(URL)
    channel = await connection.channel()
    await channel.exchange_declare("topic_logs", exchange_type="topic")
    await channel.basic_publish(
        exchange="topic_logs", routing_key=routing_key, body=message.encode()
    )
    print(f" [x] Sent {routing_key}:{message}")
    await connection.close()


if __name__ == "__main__":
    routing_key = sys.argv[1] if len(sys.argv) > 1 else "anonymous.info"
    text = " ".join(sys.argv[2:]) or "Hello World!"
    asyncio.run(main(routing_key, text))
