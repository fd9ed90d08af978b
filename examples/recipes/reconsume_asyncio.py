"""Consuming again after the broker cancels a consumer (asyncio).

RabbitMQ cancels a consumer itself when its queue is deleted or a quorum queue's
replica on the consumer's node goes away. A surviving channel tells the
application by default; with ``reconsume_on_cancel`` it subscribes again once the
queue is back, retrying with a doubling delay, and the consumer object goes on.
Here a second connection deletes the queue under the consumer; the surviving
channel declared that queue itself, so its retry declares it again and the next
message arrives on the same consumer.
"""

from __future__ import annotations

import asyncio
import os

from txamqp091.exceptions import ChannelClosed
from txamqp091.tornado import AMQPClient, Connection, connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
QUEUE = "orders-reconsume"


async def wait_for_consumer(admin: Connection) -> None:
    """Until the queue exists again with one consumer (a passive declare of a
    missing queue closes its channel, so each try takes a fresh one)."""
    for _ in range(100):
        channel = await admin.channel()
        try:
            ok = await channel.queue_declare(QUEUE, passive=True)
        except ChannelClosed:
            ok = None
        else:
            await channel.close()
        if ok is not None and ok.consumer_count == 1:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("the consumer did not come back within 10 s")


async def main() -> None:
    async with AMQPClient([URL]) as client:
        channel = await client.channel()
        channel.reconsume_on_cancel = True  # off by default
        channel.reconsume_attempts = 10  # then the consumer ends (ConsumerCancelled)
        channel.reconsume_delay = 0.2  # seconds before the first try, doubling...
        channel.reconsume_max_delay = 5.0  # ...up to this
        await channel.queue_declare(QUEUE)
        cancelled = asyncio.Event()
        channel.add_on_cancel_callback(lambda tag: cancelled.set())
        consumer = await channel.basic_consume(QUEUE)

        await channel.basic_publish("", QUEUE, b"order 1")
        message = await consumer.get(timeout=10)
        assert message is not None
        print("got", message.body.decode())
        message.ack()

        admin = await connect(URL)  # someone else deletes the queue
        admin_channel = await admin.channel()
        await admin_channel.queue_delete(QUEUE)
        await asyncio.wait_for(cancelled.wait(), 10)
        print("the broker cancelled the consumer")

        # The retry declares the queue again and subscribes the same consumer.
        await wait_for_consumer(admin)
        await admin_channel.basic_publish("", QUEUE, b"order 2")
        message = await consumer.get(timeout=10)
        assert message is not None
        print("got", message.body.decode(), "on the same consumer")
        message.ack()
        await consumer.cancel()
        await admin_channel.queue_delete(QUEUE)
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
