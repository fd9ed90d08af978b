"""BEFORE: a pika 1.x Twisted program (the "after" is txamqp091_twisted.py).

It publishes three messages to a server-named queue, consumes them, acks each, then
shows what ``basic_get`` gives on an empty queue.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pika
from pika.adapters.twisted_connection import TwistedProtocolConnection
from twisted.internet import defer, protocol, task

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


@defer.inlineCallbacks
def main(reactor: Any) -> Generator[Any, Any, None]:
    parameters = pika.URLParameters(URL)
    creator = protocol.ClientCreator(reactor, TwistedProtocolConnection, parameters)
    connection = yield creator.connectTCP(parameters.host, parameters.port)
    yield connection.ready
    channel = yield connection.channel()
    declared = yield channel.queue_declare(queue="", exclusive=True)
    queue = declared.method.queue
    for n in range(3):
        yield channel.basic_publish(
            exchange="",
            routing_key=queue,
            body=f"message {n}".encode(),
            properties=pika.BasicProperties(headers={"x-n": n}),
        )
    queue_object, consumer_tag = yield channel.basic_consume(queue=queue, auto_ack=False)
    for _ in range(3):
        ch, method, properties, body = yield queue_object.get()
        print(f"got {body.decode()} (header x-n={properties.headers['x-n']})")
        ch.basic_ack(delivery_tag=method.delivery_tag)
    yield channel.basic_cancel(consumer_tag)
    got = yield channel.basic_get(queue=queue)
    print("queue empty" if got is None else f"unexpected {got!r}")
    yield connection.close()


if __name__ == "__main__":
    task.react(main)
