"""Twisted: ``AMQPClientService`` publishing through whichever cluster node answers.

Run it with the nodes' URLs as arguments (``AMQP_URL`` or localhost without any);
a node that refuses the connection is skipped for the next one.
``docs/twisted.rst`` includes this file; ``tests/guide`` runs it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet import defer, task

from txamqp091.twisted import AMQPClientService

NODES = sys.argv[1:] or [os.environ.get("AMQP_URL", "amqp://guest:guest@localhost/")]


@defer.inlineCallbacks
def main(reactor: Any) -> Any:
    service = AMQPClientService(reactor, NODES)  # e.g. ["amqp://node1/", "amqp://node2/"]
    service.startService()
    ch = yield service.channel()
    yield ch.queue_declare("orders", durable=True)
    yield ch.confirm_delivery()
    yield ch.basic_publish("", "orders", b"order 1")  # waits out outages
    print("the broker has order 1")
    msg = yield ch.basic_get("orders")
    print("got", msg.body)
    msg.ack()
    yield ch.queue_delete("orders")
    yield service.stopService()


if __name__ == "__main__":
    task.react(main)
