"""AFTER: pika_twisted.py ported to txamqp091 (Twisted): the same output.

What changed: ``connect()`` replaces ``ClientCreator`` + ``ready``; declare results
have ``.queue`` (not ``.method.queue``); ``basic_consume`` fires with a ``Consumer``
(not a ``(queue, tag)`` pair) whose ``get()`` gives one ``Message`` (not a
``(channel, method, properties, body)`` tuple); ``message.ack()`` replaces
``basic_ack(method.delivery_tag)``; ``consumer.cancel()`` hands back what it
buffered; ``basic_get`` gives a ``Message`` or ``None``.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

from twisted.internet import defer, task

from txamqp091 import BasicProperties
from txamqp091.twisted import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


@defer.inlineCallbacks
def main(reactor: Any) -> Generator[Any, Any, None]:
    connection = yield connect(reactor, URL)
    channel = yield connection.channel()
    declared = yield channel.queue_declare("", exclusive=True)
    queue = declared.queue
    for n in range(3):
        yield channel.basic_publish(
            exchange="",
            routing_key=queue,
            body=f"message {n}".encode(),
            properties=BasicProperties(headers={"x-n": n}),
        )
    consumer = yield channel.basic_consume(queue, auto_ack=False)
    for _ in range(3):
        message = yield consumer.get()
        print(f"got {message.body.decode()} (header x-n={message.properties.headers['x-n']})")
        message.ack()
    yield consumer.cancel()
    got = yield channel.basic_get(queue)
    print("queue empty" if got is None else f"unexpected {got!r}")
    yield connection.close()


if __name__ == "__main__":
    task.react(main)
