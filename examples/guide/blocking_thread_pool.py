"""Blocking: a consumer handing messages to a thread pool that acks from the workers.

It publishes ``N`` tasks (``sys.argv[1]``, default 8), consumes them with 8 worker
threads and stops once all are handled; ``threadsafe`` as ``sys.argv[2]`` acks as
pika requires, through ``connection.add_callback_threadsafe``.
``docs/blocking.rst`` includes this file; ``tests/guide`` runs it both ways.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import sys
import threading

from txamqp091 import blocking as pika
from txamqp091.blocking import BlockingChannel

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost/")
TASKS = int(sys.argv[1]) if len(sys.argv) > 1 else 8
THREADSAFE = sys.argv[2:] == ["threadsafe"]

handled: list[bytes] = []
lock = threading.Lock()
output = threading.Lock()


def handle(body: bytes) -> None:
    """The slow, blocking work (here one line of output at a time)."""
    with output:
        print(f"handled {body.decode()}")


def stop_after_the_last_task(body: bytes) -> None:
    with lock:
        handled.append(body)
        if len(handled) == TASKS:
            connection.add_callback_threadsafe(channel.stop_consuming)


with pika.BlockingConnection(pika.URLParameters(URL)) as setup:
    tasks = setup.channel()
    tasks.queue_declare("tasks")
    for number in range(TASKS):
        tasks.basic_publish("", "tasks", f"task {number}".encode())

# -- the consumer --
pool = concurrent.futures.ThreadPoolExecutor(8)
connection = pika.BlockingConnection(pika.URLParameters(URL))
channel = connection.channel()
channel.basic_qos(prefetch_count=32)


def work(tag: int, body: bytes) -> None:
    handle(body)
    if THREADSAFE:  # as pika requires
        connection.add_callback_threadsafe(functools.partial(channel.basic_ack, tag))
    else:  # txamqp091 also takes the call from any thread
        channel.basic_ack(tag)
    stop_after_the_last_task(body)


def on_message(
    ch: BlockingChannel, method: pika.Message, properties: pika.BasicProperties, body: bytes
) -> None:
    pool.submit(work, method.delivery_tag, body)


channel.basic_consume("tasks", on_message)
channel.start_consuming()
# -- end of the consumer --

pool.shutdown()
connection.close()  # a message left unacked goes back to the queue

with pika.BlockingConnection(pika.URLParameters(URL)) as check:
    left = check.channel().queue_delete("tasks").method.message_count
print(f"{len(handled)} handled, {left} left in the queue")
