"""Consume ``--count`` messages from ``--queue``, ack each, then exit (Twisted, inlineCallbacks).

The consumer buffers what the broker pushes (up to ``--prefetch`` unacked
messages) and ``consumer.get()`` hands them out one Deferred at a time. After
``--count`` messages it cancels the subscription, which hands anything still
buffered back to the broker, closes the connection and exits 0. With
``--timeout`` it gives up (exit 1) when no message arrives for that long.

    python examples/consume_twisted.py --url amqp://guest:guest@127.0.0.1:5672/ \\
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

from txamqp091.twisted import connect  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--queue", default="txamqp091.example")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--prefetch", type=int, default=50)
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds to wait for each message"
    )
    return parser.parse_args(argv)


@defer.inlineCallbacks
def consume(
    reactor: Any, url: str, queue: str, count: int, prefetch: int, timeout: float | None
) -> Generator[Any, Any, None]:
    conn = yield connect(reactor, url)
    try:
        ch = yield conn.channel()
        yield ch.queue_declare(queue)
        yield ch.basic_qos(prefetch_count=prefetch)
        consumer = yield ch.basic_consume(queue)
        print(f"waiting for {count} message(s) on {queue!r}", flush=True)
        for n in range(1, count + 1):
            message = yield consumer.get(timeout=timeout)
            if message is None:
                raise SystemExit(f"no message within {timeout} s after {n - 1} of {count}")
            print(f"received {n}/{count}: {message.body.decode(errors='replace')}", flush=True)
            message.ack()
        handed_back = yield consumer.cancel()
        print(f"consumed {count} messages from {queue!r} ({handed_back} handed back)")
    finally:
        yield conn.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    task.react(
        lambda reactor: consume(
            reactor, args.url, args.queue, args.count, args.prefetch, args.timeout
        )
    )


if __name__ == "__main__":
    main()
