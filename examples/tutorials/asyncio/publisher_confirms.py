"""Publisher confirms: three ways to know the broker has each message.

After ``confirm_delivery()``, the awaitable of ``basic_publish`` fires only when the
broker acks that message (it is then in every queue it was routed to) and fails with
``NackError`` if the broker refuses it. Waiting for each one in turn is simplest and
slowest; confirming a batch at a time is faster; publishing everything at once and
collecting each message's outcome as it comes is fastest.
"""

from __future__ import annotations

import asyncio
import os
import time

from txamqp091.tornado import Channel, connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
MESSAGE_COUNT = 1_000


async def publish_individually(channel: Channel, queue: str) -> None:
    start = time.perf_counter()
    for i in range(MESSAGE_COUNT):
        await channel.basic_publish("", queue, str(i).encode())  # waits for the ack
    elapsed = time.perf_counter() - start
    print(f"Published {MESSAGE_COUNT:,} messages individually in {elapsed * 1000:,.0f} ms")


async def publish_in_batches(channel: Channel, queue: str, batch_size: int = 100) -> None:
    start = time.perf_counter()
    for first in range(0, MESSAGE_COUNT, batch_size):
        batch = [
            channel.basic_publish("", queue, str(i).encode())
            for i in range(first, min(first + batch_size, MESSAGE_COUNT))
        ]
        await asyncio.gather(*batch)  # every ack of the batch
    elapsed = time.perf_counter() - start
    print(f"Published {MESSAGE_COUNT:,} messages in batches in {elapsed * 1000:,.0f} ms")


async def handle_confirms_asynchronously(channel: Channel, queue: str) -> None:
    start = time.perf_counter()
    outstanding = [
        asyncio.ensure_future(channel.basic_publish("", queue, str(i).encode()))
        for i in range(MESSAGE_COUNT)
    ]
    results = await asyncio.gather(*outstanding, return_exceptions=True)
    nacked = [i for i, result in enumerate(results) if isinstance(result, BaseException)]
    elapsed = time.perf_counter() - start
    print(
        f"Published {MESSAGE_COUNT:,} messages and handled confirms asynchronously "
        f"in {elapsed * 1000:,.0f} ms ({len(nacked)} nacked)"
    )


async def main() -> None:
    connection = await connect(URL)
    channel = await connection.channel()
    await channel.confirm_delivery()
    for strategy in (publish_individually, publish_in_batches, handle_confirms_asynchronously):
        declared = await channel.queue_declare("", exclusive=True)
        await strategy(channel, declared.queue)
    await connection.close()


if __name__ == "__main__":
    asyncio.run(main())
