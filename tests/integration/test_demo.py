"""The README's main job, end to end: twistd amqp-consumer handles published messages."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.broker


def test_demo_consumer_service_handles_every_published_message() -> None:
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "demo.py"), "--count", "300"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "published 300 messages, all confirmed by the broker" in out
    assert "the consumer service handled all 300 messages" in out
    assert "stopped after 300 handled, 0 failed" in out
    assert "exited with status 0 after SIGTERM" in out
