"""pika's connection blocked / unblocked callbacks and ``blocked_connection_timeout``,
against a real memory alarm (``rabbitmqctl set_vm_memory_high_watermark``).

The broker is shared: the alarm is raised for as short a time as the test can make
it (until both connections have seen it) and the watermark is always restored.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import Any

import pytest

from tests.blocking_adapter.support import AMQP_URL, Names
from txamqp091 import blocking
from txamqp091.blocking import exceptions

pytestmark = pytest.mark.skipif(
    shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl to raise a memory alarm"
)


def set_watermark(fraction: str) -> None:
    subprocess.run(
        ["rabbitmqctl", "set_vm_memory_high_watermark", fraction],
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_blocked_callbacks_and_blocked_connection_timeout(names: Names) -> None:
    queue = names.queue()
    heard: list[tuple[str, Any, Any]] = []
    watcher = blocking.BlockingConnection(AMQP_URL, timeout=10)
    doomed = blocking.BlockingConnection(
        blocking.URLParameters(AMQP_URL).replace(blocked_connection_timeout=0.3), timeout=10
    )
    try:
        watcher.add_on_connection_blocked_callback(
            lambda conn, frame: heard.append(("blocked", conn, frame.method.reason))
        )
        watcher.add_on_connection_unblocked_callback(
            lambda conn, frame: heard.append(("unblocked", conn, frame.method))
        )
        ch = watcher.channel()
        ch.queue_declare(queue)
        doomed_ch = doomed.channel()
        lost: BaseException | None = None
        try:
            set_watermark("0.0000001")
            # The broker blocks a connection when it publishes during the alarm.
            deadline = time.monotonic() + 15
            while (not heard or lost is None) and time.monotonic() < deadline:
                if not heard:
                    ch.basic_publish("", queue, b"during the alarm")
                if lost is None:
                    try:
                        doomed_ch.basic_publish("", queue, b"during the alarm")
                        doomed.process_data_events(0.05)
                    except exceptions.ConnectionBlockedTimeout as exc:
                        lost = exc
                watcher.process_data_events(0.05)
        finally:
            set_watermark("0.4")
        assert heard and heard[0][0] == "blocked" and heard[0][1] is watcher
        assert isinstance(heard[0][2], str)  # the broker's reason, e.g. "low on memory"
        assert isinstance(lost, exceptions.ConnectionBlockedTimeout)
        assert doomed.is_closed
        with pytest.raises(exceptions.ConnectionBlockedTimeout):
            doomed.process_data_events(0)
        deadline = time.monotonic() + 15
        while len(heard) < 2 and time.monotonic() < deadline:
            watcher.process_data_events(0.1)
        assert [h[0] for h in heard] == ["blocked", "unblocked"]
        assert heard[1][2].NAME == "Connection.Unblocked"
        # The publishes held while blocked went out once unblocked.
        ch.confirm_delivery()
        ch.basic_publish("", queue, b"after")
        assert ch.queue_declare(queue, passive=True).method.message_count >= 2
    finally:
        set_watermark("0.4")  # even if the test failed before its own finally
        if watcher.is_open:
            watcher.close()
        if doomed.is_open:
            doomed.close()
