"""Twisted: every channel operation of a publisher and a consumer, in one program.

``docs/twisted.rst`` includes this file; ``tests/guide`` runs it.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, task

from txamqp091 import BasicProperties
from txamqp091.twisted import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost/")


@defer.inlineCallbacks
def main(reactor: Any) -> Any:
    conn = yield connect(reactor, URL)
    ch = yield conn.channel()
    yield ch.exchange_declare("logs", exchange_type="fanout", durable=True)
    ok = yield ch.queue_declare("", exclusive=True)
    yield ch.queue_bind(ok.queue, "logs", routing_key="")
    yield ch.basic_qos(prefetch_count=100)
    yield ch.confirm_delivery()
    yield ch.basic_publish(
        "logs",
        "",
        b"body",
        properties=BasicProperties(content_type="text/plain"),
        mandatory=True,
    )
    consumer = yield ch.basic_consume(ok.queue)
    msg = yield consumer.get()
    print(msg.body, msg.properties.content_type, msg.exchange)
    msg.ack()
    yield consumer.cancel()
    yield ch.close()
    yield conn.close()


if __name__ == "__main__":
    task.react(main)
