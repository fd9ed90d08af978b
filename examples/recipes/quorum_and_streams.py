"""Quorum queues and streams: replicated queues, redelivery counts and offsets (asyncio).

A *quorum queue* (``x-queue-type: quorum``) is replicated across the cluster's nodes
and counts redeliveries: each redelivered message carries ``x-delivery-count``,
exposed as ``message.delivery_count``, so a consumer can stop retrying a message that
keeps failing. A *stream* (``x-queue-type: stream``) is an append-only log: consuming
does not remove messages, and a consumer chooses where to start with
``x-stream-offset`` (``"first"``, ``"last"``, ``"next"``, a numeric offset, or a
timestamp). A stream consumer needs a prefetch (``basic_qos``) and must ack, which is
how it asks for more. Both kinds are durable.
"""

from __future__ import annotations

import asyncio
import os

from txamqp091 import Message
from txamqp091.tornado import Channel, connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


async def quorum_queue(channel: Channel) -> None:
    await channel.queue_declare("orders", durable=True, arguments={"x-queue-type": "quorum"})
    await channel.basic_publish("", "orders", b"order 1")
    consumer = await channel.basic_consume("orders")
    async for message in consumer:
        print(f"{message.body.decode()}: delivery_count={message.delivery_count}")
        if message.delivery_count is None:  # the first delivery: fail it once
            message.nack(requeue=True)
            continue
        message.ack()
        break
    await consumer.cancel()


async def stream(channel: Channel) -> None:
    await channel.queue_declare("events", durable=True, arguments={"x-queue-type": "stream"})
    for n in range(5):
        await channel.basic_publish("", "events", f"event {n}".encode())
    await channel.basic_qos(prefetch_count=100)  # a stream consumer needs one
    for offset in ("first", 3):
        consumer = await channel.basic_consume("events", arguments={"x-stream-offset": offset})
        seen: list[Message] = []
        async for message in consumer:
            message.ack()  # on a stream, acks give the consumer credit for more
            seen.append(message)
            if message.body == b"event 4":
                break
        await consumer.cancel()
        read = ", ".join(f"{m.stream_offset}:{m.body.decode()}" for m in seen)
        print(f"from offset {offset!r}: {read}")


async def main() -> None:
    connection = await connect(URL)
    channel = await connection.channel()
    await channel.confirm_delivery()  # each publish returns once the queue has it
    try:
        await quorum_queue(channel)
        await stream(channel)
    finally:
        await channel.queue_delete("orders")
        await channel.queue_delete("events")
        await connection.close()


if __name__ == "__main__":
    asyncio.run(main())
