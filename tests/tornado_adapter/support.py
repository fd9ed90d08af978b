"""Helpers shared by the asyncio/Tornado adapter tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from txamqp091.tornado import connect

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


class Names:
    """Unique queue and exchange names, remembered for clean-up."""

    def __init__(self) -> None:
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def queue(self, label: str = "q") -> str:
        name = f"txamqp091.test.tornado.{label}.{uuid.uuid4().hex}"
        self.queues.append(name)
        return name

    def exchange(self, label: str = "x") -> str:
        name = f"txamqp091.test.tornado.{label}.{uuid.uuid4().hex}"
        self.exchanges.append(name)
        return name

    async def delete_all(self) -> None:
        if not self.queues and not self.exchanges:
            return
        conn = await connect(AMQP_URL)
        try:
            ch = await conn.channel()
            for queue in self.queues:
                await ch.queue_delete(queue)
            for exchange in self.exchanges:
                await ch.exchange_delete(exchange)
        finally:
            await conn.close()


async def eventually(predicate: Callable[[], Any], timeout: float = 3.0) -> None:
    """Wait until ``predicate()`` is true (polling the loop), or fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


def rabbitmqctl_connection_pid(connection_name: str, attempts: int = 3) -> str | None:
    """The broker's pid of the connection whose client properties carry ``connection_name``.

    Skips the test when ``rabbitmqctl`` is missing or cannot talk to the node.
    Blocking: call it through ``asyncio.to_thread``.
    """
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl not installed")
    needle = f'{{"connection_name","{connection_name}"}}'
    for _ in range(attempts):
        proc = subprocess.run(
            ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if proc.returncode != 0:
            pytest.skip(f"rabbitmqctl list_connections failed: {proc.stderr.strip()[:200]}")
        for line in proc.stdout.splitlines():
            pid, _, properties = line.partition("\t")
            if needle in properties:
                return pid.strip()
        time.sleep(0.2)
    return None
