"""Retries with a delay, then a parking queue, built from dead-lettering alone (asyncio).

A message whose handler fails is rejected without requeue. Its queue dead-letters it
into a retry queue with a message TTL, which dead-letters it back when the TTL
expires: that is the delay, and no message waits in the consumer's memory. The
broker counts the round trips in the ``x-death`` header; after ``MAX_ATTEMPTS`` the
consumer moves the message to a parking queue for a human to look at, instead of
retrying it forever.

    work --(reject)--> work.retry --(TTL expires)--> work
      \\--(attempts exhausted: publish + ack)--> work.parked
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from txamqp091 import Message
from txamqp091.tornado import Channel, connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
MAX_ATTEMPTS = 3
RETRY_DELAY_MS = 200


def attempts(message: Message) -> int:
    """How many times this message has been rejected from ``work`` already, plus this one."""
    deaths: list[dict[str, Any]] = (message.properties.headers or {}).get("x-death", [])
    rejected = sum(
        int(death["count"])
        for death in deaths
        if death.get("queue") == "work" and death.get("reason") == "rejected"
    )
    return rejected + 1


def handle(body: bytes) -> None:
    """The application's work: anything mentioning "fail" fails."""
    if b"fail" in body:
        raise ValueError(f"cannot process {body.decode()}")


async def declare(channel: Channel) -> None:
    await channel.queue_declare(
        "work",
        durable=True,
        arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "work.retry"},
    )
    await channel.queue_declare(
        "work.retry",
        durable=True,
        arguments={
            "x-message-ttl": RETRY_DELAY_MS,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "work",
        },
    )
    await channel.queue_declare("work.parked", durable=True)


async def main() -> None:
    connection = await connect(URL)
    channel = await connection.channel()
    await declare(channel)
    await channel.confirm_delivery()
    for body in (b"order 1", b"fail order 2"):
        await channel.basic_publish("", "work", body)
    consumer = await channel.basic_consume("work")
    done = 0
    async for message in consumer:
        attempt = attempts(message)
        try:
            handle(message.body)
        except ValueError as exc:
            if attempt < MAX_ATTEMPTS:
                print(f"attempt {attempt} failed ({exc}); retrying in {RETRY_DELAY_MS} ms")
                message.reject(requeue=False)  # dead-lettered to work.retry
                continue
            await channel.basic_publish(
                "", "work.parked", message.body, properties=message.properties
            )
            message.ack()  # only once the parking queue has it (confirm mode)
            print(f"parked {message.body.decode()} after {attempt} attempts")
        else:
            message.ack()
            print(f"processed {message.body.decode()}")
        done += 1
        if done == 2:
            break
    await connection.close()


if __name__ == "__main__":
    asyncio.run(main())
