"""Tutorial 4, "Routing": send a log line with its severity as the routing key.

python emit_log_direct.py error "Run. Run. Or it will explode."
"""

from __future__ import annotations

import asyncio
import os
import sys

from txamqp091.tornado import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


async def main(severity: str, message: str) -> None:
    connection = await connect(URL)
    channel = await connection.channel()
    await channel.exchange_declare("direct_logs", exchange_type="direct")
    await channel.basic_publish(exchange="direct_logs", routing_key=severity, body=message.encode())
    print(f" [x] Sent {severity}:{message}")
    await connection.close()


if __name__ == "__main__":
    severity = sys.argv[1] if len(sys.argv) > 1 else "info"
    text = " ".join(sys.argv[2:]) or "Hello World!"
    asyncio.run(main(severity, text))
