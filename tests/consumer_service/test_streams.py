"""``twistd amqp-consumer`` on a stream queue of the real broker: it reads from
``--stream-offset`` and, after a broker-side connection kill, resumes at the oldest
offset it had not handled (no gap), reading again at most ``--concurrency`` messages.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import pytest

from tests.consumer_service.support import (
    AMQP_URL,
    consumer,
    delete,
    pika_channel,
    publish,
    unique,
    wait_until,
)
from tests.integration.faults import close_named_connections

pytestmark = pytest.mark.broker

COUNT = 500
PREFETCH = 20
CONCURRENCY = 4

HANDLER = """
import os
from twisted.internet import reactor, task

RECORD = open(os.environ["RECORD_FILE"], "a")


async def slow(message):
    # Slow enough (500 take 2.5 s) that the kill, which takes a rabbitmqctl start,
    # lands with messages running and waiting.
    await task.deferLater(reactor, 0.02, lambda: None)
    RECORD.write(f"{message.stream_offset} {message.body.decode()}\\n")
    RECORD.flush()
"""


@pytest.fixture
def handler_dir(tmp_path: Path) -> Path:
    (tmp_path / "stream_handlers.py").write_text(textwrap.dedent(HANDLER))
    return tmp_path


def handled(path: Path) -> list[tuple[int, str]]:
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(int(offset), body) for offset, body in rows]


def declare_stream(name: str) -> None:
    with pika_channel() as channel:
        channel.queue_declare(name, durable=True, arguments={"x-queue-type": "stream"})


def test_a_stream_resumes_after_the_last_handled_offset_across_a_connection_kill(
    handler_dir: Path,
) -> None:
    queue = unique("stream-resume")
    name = f"{queue}-conn"
    record_file = handler_dir / "records"
    declare_stream(queue)
    publish(queue, [f"b{n}".encode() for n in range(COUNT)])
    args = ["--url", AMQP_URL, "--queue", queue, "--handler", "stream_handlers:slow",
            "--declare", "--queue-type", "stream", "--stream-offset", "first",
            "--prefetch", str(PREFETCH), "--concurrency", str(CONCURRENCY),
            "--connection-name", name]  # fmt: skip
    try:
        with consumer(args, handler_dir, env={"RECORD_FILE": str(record_file)}) as service:
            service.wait_for("consuming")
            wait_until(lambda: len(handled(record_file)) >= COUNT // 10, 30, service.output)
            assert close_named_connections(name) == 1
            service.wait_for("resumes at offset")
            bodies = lambda: {body for _, body in handled(record_file)}  # noqa: E731
            wait_until(lambda: len(bodies()) == COUNT, 60, service.output)
            assert service.terminate()[0] == 0, service.output()
        rows = handled(record_file)
        offsets = Counter(offset for offset, _ in rows)
        first = min(offsets)
        # No gap: every offset from the first one read to the last one published.
        assert sorted(offsets) == list(range(first, first + COUNT))
        reread = sum(offsets.values()) - len(offsets)
        # At most the handlers that were running at the kill are handled twice (not
        # everything from "first" again, and not the whole prefetch window).
        assert reread <= CONCURRENCY, (reread, service.output())
        assert {body for _, body in rows} == {f"b{n}" for n in range(COUNT)}
        resumed = [line.split("amqp-consumer: ")[-1] for line in service.lines if "resumes" in line]
        print(f"\nstream resume: {len(rows)} handled, {reread} read again (<= {CONCURRENCY}); "
              f"{resumed[0]}")  # fmt: skip
    finally:
        delete([queue])


def test_a_stream_consumer_starts_at_the_offset_it_is_given(handler_dir: Path) -> None:
    queue = unique("stream-offset")
    record_file = handler_dir / "records"
    declare_stream(queue)
    publish(queue, [b"old0", b"old1"])
    args = ["--url", AMQP_URL, "--queue", queue, "--handler", "stream_handlers:slow",
            "--stream-offset", "next", "--prefetch", "5"]  # fmt: skip
    try:
        with consumer(args, handler_dir, env={"RECORD_FILE": str(record_file)}) as service:
            service.wait_for("consuming")
            publish(queue, [b"new0"])
            wait_until(lambda: len(handled(record_file)) >= 1, 30, service.output)
            assert service.terminate()[0] == 0, service.output()
        assert [body for _, body in handled(record_file)] == ["new0"]
    finally:
        delete([queue])
