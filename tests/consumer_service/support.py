"""Run ``twistd -n amqp-consumer`` as a subprocess and look at the broker with pika."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pika

ROOT = Path(__file__).resolve().parents[2]
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def unique(prefix: str) -> str:
    return f"txamqp091-test-{prefix}-{uuid.uuid4().hex[:8]}"


@contextmanager
def pika_channel() -> Iterator[Any]:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        yield connection.channel()
    finally:
        connection.close()


def publish(queue_name: str, bodies: list[bytes], exchange: str = "", **props: Any) -> None:
    with pika_channel() as channel:
        channel.confirm_delivery()
        for index, body in enumerate(bodies):
            properties = pika.BasicProperties(
                message_id=props.get("message_id") or f"m{index}", delivery_mode=2,
                headers=props.get("headers"), content_type=props.get("content_type"),
            )  # fmt: skip
            channel.basic_publish(exchange, queue_name, body, properties)


def dead_letter_queue(dlx: str, dlq: str) -> None:
    """A fanout dead-letter exchange ``dlx`` with the queue ``dlq`` bound to it."""
    with pika_channel() as channel:
        channel.exchange_declare(dlx, "fanout", durable=True)
        channel.queue_declare(dlq, durable=True)
        channel.queue_bind(dlq, dlx)


def message_count(queue_name: str) -> int:
    with pika_channel() as channel:
        return int(channel.queue_declare(queue_name, passive=True).method.message_count)


def drain(queue_name: str) -> list[bytes]:
    """Every message left in the queue (acked: the queue ends empty)."""
    bodies = []
    with pika_channel() as channel:
        while True:
            method, _, body = channel.basic_get(queue_name, auto_ack=True)
            if method is None:
                return bodies
            bodies.append(body)


def delete(queues: list[str] = (), exchanges: list[str] = ()) -> None:  # type: ignore[assignment]
    with pika_channel() as channel:
        for name in queues:
            channel.queue_delete(name)
        for name in exchanges:
            channel.exchange_delete(name)


class ConsumerProcess:
    """``twistd -n amqp-consumer ARGS`` with ``handler_dir`` on the path; lines in ``self.lines``."""

    def __init__(self, args: list[str], handler_dir: Path, env: dict[str, str] | None = None):
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        path = os.pathsep.join([str(handler_dir), str(ROOT), os.environ.get("PYTHONPATH", "")])
        full_env = dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED="1", **(env or {}))
        self.cmd = [
            sys.executable, twistd, "--nodaemon", "--pidfile=", "--logfile=-", "amqp-consumer",
            *args,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            self.cmd, cwd=handler_dir, env=full_env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._new.put(line)

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, needle: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(needle in line for line in self.lines):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                time.sleep(0.2)
                raise AssertionError(f"no {needle!r} within {timeout}s:\n{self.output()}")
            try:
                self._new.get(timeout=0.1)
            except queue.Empty:
                pass

    def terminate(self, timeout: float = 30.0) -> tuple[int, float]:
        """SIGTERM; return the exit status and the seconds it took to exit."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextmanager
def consumer(args: list[str], handler_dir: Path, **kwargs: Any) -> Iterator[ConsumerProcess]:
    process = ConsumerProcess(args, handler_dir, **kwargs)
    try:
        yield process
    finally:
        process.kill()


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what() if callable(what) else what}"
            )
        time.sleep(interval)
