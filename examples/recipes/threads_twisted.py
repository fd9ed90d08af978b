"""Blocking work in threads, acks from the reactor (Twisted).

``basic_consume(..., run_in_thread=True)`` runs a *blocking* handler in the reactor's
thread pool, one call per message, so a slow database call or a CPU-bound step does
not stall the reactor (and with it heartbeats and other consumers). When the handler
returns, the message is acked; when it raises, the message is nacked and requeued.
Both happen in the reactor thread, where pika would have had you arrange it by hand.
``basic_qos(prefetch_count=...)`` bounds how many messages are in threads at once.

    python threads_twisted.py jobs
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from twisted.internet import defer, task

from txamqp091 import Message
from txamqp091.twisted import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
print_lock = threading.Lock()  # one line at a time from several threads


def blocking_handler(message: Message) -> None:
    """Runs in a worker thread: blocking calls are fine here, Twisted APIs are not."""
    time.sleep(0.05)  # stands for a blocking database call
    in_reactor = threading.current_thread() is threading.main_thread()
    with print_lock:
        print(f"{message.body.decode()} handled (in the reactor thread: {in_reactor})")


async def main(reactor: Any, queue: str) -> None:
    reactor.suggestThreadPoolSize(4)
    connection = await connect(reactor, URL)
    channel = await connection.channel()
    await channel.queue_declare(queue)
    await channel.basic_qos(prefetch_count=4)
    await channel.basic_consume(queue, on_message_callback=blocking_handler, run_in_thread=True)
    print(" [*] Waiting for messages. To exit press CTRL+C")
    await connection.closed


if __name__ == "__main__":
    queue = sys.argv[1] if len(sys.argv) > 1 else "jobs"
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, queue)))
