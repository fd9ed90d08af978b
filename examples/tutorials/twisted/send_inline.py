"""Tutorial 1, "Hello World!": send one message to the queue ``hello``.

Twisted, written with ``@defer.inlineCallbacks``: each ``yield`` waits for a Deferred.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

from twisted.internet import defer, task

from txamqp091.twisted import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


@defer.inlineCallbacks
def main(reactor: Any) -> Generator[defer.Deferred[Any], Any, None]:
    connection = yield connect(reactor, URL)
    channel = yield connection.channel()
    yield channel.queue_declare("hello")
    yield channel.basic_publish(exchange="", routing_key="hello", body=b"Hello World!")
    print(" [x] Sent 'Hello World!'")
    yield connection.close()


if __name__ == "__main__":
    task.react(main)
