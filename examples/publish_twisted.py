"""Publish ``--count`` messages to ``--queue`` with publisher confirms (Twisted, inlineCallbacks).

Every publish returns a Deferred that fires when the broker has confirmed the
message; the script waits for all of them and exits 0, or prints the error and
exits 1 (a refused login, an unreachable broker, a nacked or returned message).

    python examples/publish_twisted.py --url amqp://guest:guest@127.0.0.1:5672/ \\
        --queue demo --count 10
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Generator
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from twisted.internet import defer, task  # noqa: E402

from txamqp091 import BasicProperties, DeliveryMode  # noqa: E402
from txamqp091.twisted import connect  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--queue", default="txamqp091.example")
    parser.add_argument("--count", type=int, default=10)
    return parser.parse_args(argv)


@defer.inlineCallbacks
def publish(reactor: Any, url: str, queue: str, count: int) -> Generator[Any, Any, None]:
    conn = yield connect(reactor, url)
    try:
        ch = yield conn.channel()
        yield ch.queue_declare(queue)
        yield ch.confirm_delivery()
        confirmations = [
            ch.basic_publish(
                "",
                queue,
                f"message {n} of {count}".encode(),
                BasicProperties(
                    content_type="text/plain",
                    delivery_mode=DeliveryMode.Persistent,
                    message_id=str(n),
                ),
                mandatory=True,
            )
            for n in range(1, count + 1)
        ]
        yield defer.gatherResults(confirmations, consumeErrors=True)
        print(f"published {count} messages to {queue!r}, all confirmed by the broker")
    finally:
        yield conn.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    task.react(lambda reactor: publish(reactor, args.url, args.queue, args.count))


if __name__ == "__main__":
    main()
