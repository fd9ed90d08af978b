"""Tutorial 1, "Hello World!": print every message that arrives on the queue ``hello``.

asyncio (and so Tornado): run with ``asyncio.run``. The callback gets one
:class:`~txamqp091.Message` per delivery; it runs until the connection ends or CTRL+C.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from txamqp091 import Message
from txamqp091.tornado import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


def callback(message: Message) -> None:
    print(f" [x] Received {message.body!r}")


async def main() -> None:
    connection = await connect(URL)
    channel = await connection.channel()
    await channel.queue_declare("hello")
    await channel.basic_consume("hello", on_message_callback=callback, auto_ack=True)
    print(" [*] Waiting for messages. To exit press CTRL+C")
    await connection.closed


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # CTRL+C ends it quietly
        asyncio.run(main())
