"""Helpers shared by the blocking facade's tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import os
import time
import uuid

from txamqp091 import blocking

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


class Names:
    """Unique queue and exchange names, remembered for clean-up."""

    def __init__(self) -> None:
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def queue(self, label: str = "q") -> str:
        name = f"txamqp091.test.blocking.{label}.{uuid.uuid4().hex}"
        self.queues.append(name)
        return name

    def exchange(self, label: str = "x") -> str:
        name = f"txamqp091.test.blocking.{label}.{uuid.uuid4().hex}"
        self.exchanges.append(name)
        return name

    def delete_all(self) -> None:
        if not self.queues and not self.exchanges:
            return
        with blocking.BlockingConnection(AMQP_URL, timeout=10) as conn:
            ch = conn.channel()
            for queue in self.queues:
                ch.queue_delete(queue)
            for exchange in self.exchanges:
                ch.exchange_delete(exchange)


def message_count(
    ch: blocking.BlockingChannel, queue: str, expected: int, within: float = 5.0
) -> int:
    """The queue's message count once it equals ``expected`` (or after ``within`` seconds).

    RabbitMQ hands a publish to the queue process asynchronously, so a passive
    declare right after a publish may not count it yet.
    """
    deadline = time.monotonic() + within
    while True:
        count: int = ch.queue_declare(queue, passive=True).method.message_count
        if count == expected or time.monotonic() > deadline:
            return count
        time.sleep(0.02)
