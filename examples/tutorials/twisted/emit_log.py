"""Tutorial 3, "Publish/Subscribe": broadcast a log line to every ``receive_logs`` running.

A ``fanout`` exchange copies each message to every queue bound to it; the routing key
is ignored.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet import defer, task

from txamqp091.twisted import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


async def main(reactor: Any, message: str) -> None:
    connection = await connect(reactor, URL)
    channel = await connection.channel()
    await channel.exchange_declare("logs", exchange_type="fanout")
    await channel.basic_publish(exchange="logs", routing_key="", body=message.encode())
    print(f" [x] Sent {message}")
    await connection.close()


if __name__ == "__main__":
    text = " ".join(sys.argv[1:]) or "info: Hello World!"
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, text)))
