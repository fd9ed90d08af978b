"""The quick start's first message: declare, publish, get and ack, with Twisted.

``docs/quickstart.rst`` includes this file; ``tests/guide`` runs it.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, task

from txamqp091.twisted import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost/")


@defer.inlineCallbacks
def main(reactor: Any) -> Any:
    conn = yield connect(reactor, URL)
    ch = yield conn.channel()
    yield ch.queue_declare("hello")
    yield ch.basic_publish("", "hello", b"Hello, world")
    msg = yield ch.basic_get("hello")
    print(msg.body if msg is not None else "queue was empty")
    if msg is not None:
        msg.ack()
    yield conn.close()


if __name__ == "__main__":
    task.react(main)
