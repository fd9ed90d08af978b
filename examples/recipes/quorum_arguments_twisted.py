"""Quorum queues, single active consumer and consumer priorities (Twisted).

Every argument RabbitMQ documents passes through ``queue_declare`` and
``basic_consume`` untouched: ``x-queue-type``, ``x-single-active-consumer`` and a
consumer's ``x-priority``. The program shows what each does on the broker: the
quorum queue counts redeliveries, only the first of two consumers of a
single-active-consumer queue gets messages, and the higher-priority consumer is
served first.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, task

from txamqp091.twisted import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


@defer.inlineCallbacks
def main(reactor: Any) -> Any:
    conn = yield connect(reactor, URL)
    ch = yield conn.channel()
    yield ch.basic_qos(prefetch_count=10)
    # a replicated queue; redeliveries are counted in the x-delivery-count header
    yield ch.queue_declare("orders", durable=True, arguments={"x-queue-type": "quorum"})
    # one consumer at a time gets the messages, the others wait their turn
    yield ch.queue_declare(
        "ledger",
        durable=True,
        arguments={"x-queue-type": "quorum", "x-single-active-consumer": True},
    )
    yield ch.confirm_delivery()

    yield ch.basic_publish("", "orders", b"order 1")
    consumer = yield ch.basic_consume("orders")
    first = yield consumer.get(timeout=10)
    first.nack(requeue=True)
    again = yield consumer.get(timeout=10)
    print("orders: delivery_count", first.delivery_count, "then", again.delivery_count)
    again.ack()
    yield consumer.cancel()

    active = yield ch.basic_consume("ledger")
    waiting = yield ch.basic_consume("ledger")
    for n in range(3):
        yield ch.basic_publish("", "ledger", b"entry %d" % n)
    for _ in range(3):
        (yield active.get(timeout=10)).ack()
    idle = yield waiting.get(timeout=0.5)
    print("ledger: the active consumer got 3, the waiting one", 0 if idle is None else 1)
    yield active.cancel()
    yield waiting.cancel()

    # a consumer priority: the highest gets the messages while it has room
    low = yield ch.basic_consume("orders", arguments={"x-priority": 1})
    high = yield ch.basic_consume("orders", arguments={"x-priority": 10})
    yield ch.basic_publish("", "orders", b"order 2")
    message = yield high.get(timeout=10)
    print("orders: the priority 10 consumer got", message.body.decode())
    message.ack()
    yield low.cancel()
    yield high.cancel()

    yield ch.queue_delete("orders")
    yield ch.queue_delete("ledger")
    yield conn.close()


if __name__ == "__main__":
    task.react(main)
