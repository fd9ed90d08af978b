"""Heartbeats and blocked connections: the two settings that bound how long you wait (asyncio).

``heartbeat`` is the interval both sides promise to send something in; the lower of
the client's and the broker's wins. After two silent intervals the client declares
the peer dead (``AMQPHeartbeatTimeout``) instead of waiting on a half-open TCP
connection for as long as the kernel likes.

``blocked_connection_timeout`` bounds a different wait: during a resource alarm
(memory or disk) RabbitMQ *blocks* publishing connections. Publishes are held, not
lost; a publish still held after the timeout fails with ``ConnectionBlockedTimeout``
and the connection stays up, so consumers on it keep working.
"""

from __future__ import annotations

import asyncio
import os

from txamqp091 import URLParameters
from txamqp091.exceptions import ConnectionBlockedTimeout
from txamqp091.tornado import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


async def main() -> None:
    parameters = URLParameters(URL).replace(heartbeat=10, blocked_connection_timeout=30.0)
    connection = await connect(parameters)
    print(f"heartbeat: {connection.negotiated.heartbeat} s")
    channel = await connection.channel()
    await channel.confirm_delivery()
    declared = await channel.queue_declare("", exclusive=True)
    try:
        await channel.basic_publish("", declared.queue, b"hello")
    except ConnectionBlockedTimeout:
        print("the broker blocked publishers for 30 s (a resource alarm); try again later")
    else:
        print(f"published and confirmed (blocked now: {connection.is_blocked})")
    await connection.close()


if __name__ == "__main__":
    asyncio.run(main())
