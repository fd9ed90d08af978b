"""examples/publish_twisted.py and examples/consume_twisted.py against the local broker."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pika
import pytest

pytestmark = pytest.mark.broker

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def example(name: str, *args: str) -> list[str]:
    return [sys.executable, os.path.join(ROOT, "examples", name), "--url", AMQP_URL, *args]


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"txamqp091.test.examples.{uuid.uuid4().hex}"
    yield name
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        connection.channel().queue_delete(name)
    finally:
        connection.close()


def test_publish_then_consume(queue: str) -> None:
    published = subprocess.run(
        example("publish_twisted.py", "--queue", queue, "--count", "25"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert published.returncode == 0, published.stdout + published.stderr
    assert f"published 25 messages to {queue!r}, all confirmed by the broker" in published.stdout

    consumed = subprocess.run(
        example("consume_twisted.py", "--queue", queue, "--count", "25", "--timeout", "10"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert consumed.returncode == 0, consumed.stdout + consumed.stderr
    lines = consumed.stdout.splitlines()
    assert [line for line in lines if line.startswith("received ")] == [
        f"received {n}/25: message {n} of 25" for n in range(1, 26)
    ]
    assert f"consumed 25 messages from {queue!r} (0 handed back)" in consumed.stdout


def test_consumer_started_first_waits_for_the_publisher(queue: str) -> None:
    consumer = subprocess.Popen(
        example("consume_twisted.py", "--queue", queue, "--count", "10", "--timeout", "20"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert consumer.stdout is not None
        first = consumer.stdout.readline()  # printed once it is subscribed
        assert first.startswith("waiting for 10 message(s)"), first
        published = subprocess.run(
            example("publish_twisted.py", "--queue", queue, "--count", "10"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert published.returncode == 0, published.stdout + published.stderr
        output, _ = consumer.communicate(timeout=60)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    assert consumer.returncode == 0, output
    assert "received 10/10: message 10 of 10" in output
    assert f"consumed 10 messages from {queue!r}" in output


def test_consumer_gives_up_after_its_timeout(queue: str) -> None:
    result = subprocess.run(
        example("consume_twisted.py", "--queue", queue, "--count", "1", "--timeout", "0.3"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "no message within 0.3 s after 0 of 1" in result.stderr
