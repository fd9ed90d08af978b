"""``--health-port``: /healthz, /readyz and /metrics fetched with treq from a
``twistd amqp-consumer`` subprocess, before and after a broker-side connection kill."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor, task

from tests.consumer_service.support import (
    AMQP_URL,
    ConsumerProcess,
    delete,
    message_count,
    pika_channel,
    publish,
    unique,
)
from tests.integration.faults import close_named_connections, free_port

pytestmark = pytest.mark.broker

HANDLER = """
def handle(message):
    if message.body == b"poison":
        raise ValueError("poison")
"""


async def get(port: int, path: str) -> tuple[int, bytes]:
    response = await treq.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    return response.code, await response.content()


async def health(port: int, path: str = "/healthz") -> tuple[int, dict[str, Any]]:
    code, body = await get(port, path)
    return code, json.loads(body)


async def metrics(port: int) -> dict[str, float]:
    code, body = await get(port, "/metrics")
    assert code == 200, body
    values = {}
    for line in body.decode().splitlines():
        if line.startswith("txamqp091_consumer_") and "{" not in line:
            name, value = line.split()
            values[name.removeprefix("txamqp091_consumer_")] = float(value)
    return values


async def eventually(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await task.deferLater(reactor, 0.1, lambda: None)


def adds_up(values: dict[str, float]) -> bool:
    settled = values["acked_total"] + values["requeued_total"] + values["rejected_total"]
    return values["received_total"] == settled + values["in_flight"]


@pytest_twisted.ensureDeferred
async def test_health_and_metrics_across_a_broker_side_kill(tmp_path: Path) -> None:
    (tmp_path / "health_handlers.py").write_text(textwrap.dedent(HANDLER))
    queue, name, port = unique("health"), unique("conn"), free_port()
    process = ConsumerProcess(
        ["--url", AMQP_URL, "--queue", queue, "--handler", "health_handlers:handle",
         "--health-port", str(port), "--health-interface", "127.0.0.1",
         "--connection-name", name, "--max-redeliveries", "1"],
        tmp_path,
    )  # fmt: skip
    try:
        # The queue does not exist yet: connected, not consuming, and /healthz says why.
        async def connected() -> Any:
            try:
                code, state = await health(port)
            except Exception:  # not listening yet
                return None
            return state["connected"] and (code, state)

        code, state = await eventually(connected, 30, "a connection")
        assert code == 503 and state["ok"] is False and not state["consuming"], state
        assert queue in state["reason"] or state["reason"] == "starting", state
        assert (await health(port, "/readyz"))[0] == 503

        with pika_channel() as channel:
            channel.queue_declare(queue, durable=True)

        async def healthy() -> Any:
            code, state = await health(port)
            return code == 200 and state

        state = await eventually(healthy, 30, "/healthz 200")
        assert state["connected"] and state["consuming"] and state["ready"]
        assert (await health(port, "/readyz"))[0] == 200

        publish(queue, [b"poison"], message_id="poison")
        publish(queue, [f"fine {i}".encode() for i in range(50)])

        async def first_batch() -> Any:
            values = await metrics(port)
            return values["acked_total"] == 50 and values["rejected_total"] == 1 and values

        values = await eventually(first_batch, 30, "51 messages settled")
        assert values["received_total"] == 52  # the poison message came back once
        assert values["requeued_total"] == 1 and values["handler_errors_total"] == 2
        assert values["handler_duration_seconds_count"] == 52
        assert values["connected"] == 1 and values["reconnects_total"] == 0
        assert values["blocked"] == 0 and adds_up(values)

        assert close_named_connections(name, "health test kill") == 1

        async def reconnected() -> Any:
            values = await metrics(port)
            code, _ = await health(port)
            return code == 200 and values["reconnects_total"] == 1 and values

        values = await eventually(reconnected, 30, "a reconnect")
        assert values["connected"] == 1
        publish(queue, [f"after {i}".encode() for i in range(20)])

        async def second_batch() -> Any:
            values = await metrics(port)
            return values["acked_total"] == 70 and values

        values = await eventually(second_batch, 30, "the consumer to survive the kill")
        assert adds_up(values) and values["received_total"] == 72
        assert (await health(port, "/readyz"))[0] == 200
        assert message_count(queue) == 0
        code, seconds = process.terminate()
        assert code == 0, process.output()
    finally:
        process.kill()
        delete([queue])
    out = process.output()
    assert "lost the connection" in out and "recovered, consuming" in out, out
