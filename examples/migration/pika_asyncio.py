"""BEFORE: a pika 1.x asyncio program, callback style (the "after" is txamqp091_asyncio.py).

pika's ``AsyncioConnection`` takes a callback for every step; this chains them to do
what txamqp091_asyncio.py does in a straight line.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pika
from pika.adapters.asyncio_connection import AsyncioConnection

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


def main() -> None:
    loop = asyncio.new_event_loop()
    state: dict[str, Any] = {"received": 0}

    def on_open(connection: Any) -> None:
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel: Any) -> None:
        state["channel"] = channel
        channel.queue_declare(queue="", exclusive=True, callback=on_declared)

    def on_declared(frame: Any) -> None:
        channel, queue = state["channel"], frame.method.queue
        state["queue"] = queue
        for n in range(3):
            channel.basic_publish(
                exchange="",
                routing_key=queue,
                body=f"message {n}".encode(),
                properties=pika.BasicProperties(headers={"x-n": n}),
            )
        channel.basic_consume(queue=queue, on_message_callback=on_message, auto_ack=False)

    def on_message(channel: Any, method: Any, properties: Any, body: bytes) -> None:
        print(f"got {body.decode()} (header x-n={properties.headers['x-n']})")
        channel.basic_ack(delivery_tag=method.delivery_tag)
        state["received"] += 1
        if state["received"] == 3:
            channel.basic_cancel(method.consumer_tag, callback=on_cancelled)

    def on_cancelled(_frame: Any) -> None:
        state["channel"].basic_get(state["queue"], callback=on_get)
        state["channel"].callbacks.add(
            state["channel"].channel_number, pika.spec.Basic.GetEmpty, on_empty
        )

    def on_get(channel: Any, method: Any, properties: Any, body: bytes) -> None:
        print(f"unexpected {body!r}")
        connection.close()

    def on_empty(_frame: Any) -> None:
        print("queue empty")
        connection.close()

    def on_closed(_connection: Any, _reason: Exception) -> None:
        loop.stop()

    connection = AsyncioConnection(
        pika.URLParameters(URL),
        on_open_callback=on_open,
        on_close_callback=on_closed,
        custom_ioloop=loop,
    )
    loop.run_forever()
    loop.close()


if __name__ == "__main__":
    main()
