"""What a reconnecting client tells you, through its hooks and its log (asyncio).

``AMQPClient`` (and Twisted's ``AMQPClientService``) has lists of hooks, each called
with one argument: ``on_connected(connection)`` after every connect,
``on_disconnected(reason)`` after every disconnect (``None`` when you asked for it),
``on_recovered(channel)`` each time a surviving channel is open on a connection with
its topology replayed: once at the start, then after every reconnect. The same events
go to the log, under the ``txamqp091.tornado`` logger on asyncio (stdlib
``logging``) and the ``txamqp091`` namespace on Twisted (``twisted.logger``).

This program connects, declares a queue on a surviving channel, and waits until that
channel has been recovered once: break its connection (``rabbitmqctl
close_connection``, a broker restart, a network cut) to watch it come back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

from txamqp091.tornado import AMQPClient, Connection, RecoveringChannel

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


async def main() -> None:
    recovered = asyncio.Event()
    opened = 0

    def connected(connection: Connection) -> None:
        print(f"hook: connected (heartbeat {connection.negotiated.heartbeat} s)")

    def disconnected(reason: BaseException | None) -> None:
        print(f"hook: disconnected ({'asked for' if reason is None else type(reason).__name__})")

    def channel_recovered(channel: RecoveringChannel) -> None:
        nonlocal opened
        opened += 1
        if opened == 1:
            print(f"hook: channel {channel.channel_number} open")
        else:
            print(f"hook: channel {channel.channel_number} recovered")
            recovered.set()

    client = AMQPClient(URL)
    client.on_connected.append(connected)
    client.on_disconnected.append(disconnected)
    client.on_recovered.append(channel_recovered)
    async with client:  # start() ... stop()
        channel = await client.channel()
        await channel.queue_declare("", exclusive=True)  # replayed on each new connection
        print(" [*] Ready. Break the connection to see the client recover")
        await recovered.wait()


def show_logs(level: Any = logging.INFO) -> None:
    """INFO: connects and disconnects; WARNING: a lost connection, a blocked one;
    ERROR: a refused login; CRITICAL: the client gave up."""
    logging.basicConfig(
        level=level, stream=sys.stdout, format="%(levelname)s %(name)s: %(message)s"
    )


if __name__ == "__main__":
    show_logs()
    asyncio.run(main())
