"""Blocking work in threads, acked from those threads (asyncio and Tornado).

Each message goes to a thread pool with ``loop.run_in_executor``; the worker thread
acks it itself when done. ``message.ack()`` is safe from any thread: called outside
the event loop's thread, it hands the ack to the loop (``call_soon_threadsafe``)
instead of touching the connection. ``basic_qos(prefetch_count=...)`` bounds how
many messages are in threads at once.

    python threads_asyncio.py jobs
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from txamqp091 import Message
from txamqp091.tornado import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
print_lock = threading.Lock()  # one line at a time from several threads


def blocking_work(message: Message) -> None:
    """Runs in a worker thread: blocking calls are fine here."""
    time.sleep(0.05)  # stands for a blocking database call
    in_loop = threading.current_thread() is threading.main_thread()
    with print_lock:
        print(f"{message.body.decode()} handled (in the loop thread: {in_loop})")
    message.ack()  # thread-safe: the ack is handed to the event loop


async def main(queue: str) -> None:
    loop = asyncio.get_running_loop()
    connection = await connect(URL)
    channel = await connection.channel()
    await channel.queue_declare(queue)
    await channel.basic_qos(prefetch_count=4)
    consumer = await channel.basic_consume(queue)
    print(" [*] Waiting for messages. To exit press CTRL+C")
    with ThreadPoolExecutor(max_workers=4) as pool:
        async for message in consumer:
            loop.run_in_executor(pool, blocking_work, message)


if __name__ == "__main__":
    queue = sys.argv[1] if len(sys.argv) > 1 else "jobs"
    with contextlib.suppress(KeyboardInterrupt):  # CTRL+C ends it quietly
        asyncio.run(main(queue))
