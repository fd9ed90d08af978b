"""Reading a RabbitMQ stream from where you choose: ``x-stream-offset`` (asyncio).

A stream (``x-queue-type: stream``) keeps its messages after they are consumed;
each consumer says where to start reading with the ``x-stream-offset`` consume
argument: ``"first"``, ``"last"`` (the last chunk), ``"next"`` (only what comes
after it subscribes), an offset (``int``), a ``datetime`` or an interval back
from now (``"30m"``, ``"7D"``). RabbitMQ needs a consumer prefetch
(``basic_qos(prefetch_count=N)``) and manual acks for a stream consumer; txamqp091
refuses one without them with a ``ValueError`` before the broker closes the channel.
Each delivery carries its offset in the ``x-stream-offset`` header.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from txamqp091.tornado import Channel, connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
STREAM = "events"


async def read(channel: Channel, offset: Any, count: int) -> list[str]:
    """The first ``count`` events a consumer starting at ``offset`` gets."""
    consumer = await channel.basic_consume(STREAM, arguments={"x-stream-offset": offset})
    events = []
    for _ in range(count):
        message = await consumer.get(timeout=10)
        if message is None:
            raise TimeoutError(f"no event from offset {offset!r} within 10 s")
        headers = message.properties.headers or {}
        events.append(f"{int(headers['x-stream-offset'])}:{message.body.decode()}")
        message.ack()
    await consumer.cancel()
    return events


async def main() -> None:
    conn = await connect(URL)
    try:
        channel = await conn.channel()
        await channel.queue_declare(STREAM, durable=True, arguments={"x-queue-type": "stream"})
        await channel.confirm_delivery()
        for name in ["created", "paid", "packed", "shipped"]:
            await channel.basic_publish("", STREAM, name.encode())
        try:
            await channel.basic_consume(STREAM, arguments={"x-stream-offset": "first"})
        except ValueError as exc:
            print(f"refused: {exc}")
        await channel.basic_qos(prefetch_count=10)
        print("from the first:", " ".join(await read(channel, "first", 4)))
        print("from offset 2:", " ".join(await read(channel, 2, 2)))
        # "next": only what is published after the consumer subscribed.
        consumer = await channel.basic_consume(STREAM, arguments={"x-stream-offset": "next"})
        await channel.basic_publish("", STREAM, b"delivered")
        message = await consumer.get(timeout=10)
        if message is None:
            raise TimeoutError("nothing published after the subscription arrived")
        print("next:", message.body.decode())
        message.ack()
        await consumer.cancel()
        await channel.queue_delete(STREAM)
    finally:
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
