"""``twistd -n amqp-consumer`` in a subprocess against the real broker: restarts lose
nothing, a poison message ends in the dead-letter queue, a stuck handler cannot
hold SIGTERM past the grace."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.consumer_service.support import (
    AMQP_URL,
    consumer,
    dead_letter_queue,
    delete,
    drain,
    message_count,
    pika_channel,
    publish,
    unique,
    wait_until,
)

pytestmark = pytest.mark.broker

RECORDING_HANDLER = """
import os
import threading
import time
from twisted.internet import reactor, task

RECORD = open(os.environ["RECORD_FILE"], "a")


def record(message, what="handled"):
    RECORD.write(f"{what} {message.properties.message_id}\\n")
    RECORD.flush()


async def slow(message):
    await task.deferLater(reactor, 0.02, lambda: None)
    record(message)


def poison(message):
    if message.body == b"poison":
        record(message, "failed")
        raise ValueError("this message always fails")
    record(message)


LOCK = threading.Lock()


def threaded(message):
    # A blocking handler: --threads runs it off the reactor thread.
    assert threading.current_thread() is not threading.main_thread()
    time.sleep(0.005)
    with LOCK:
        if message.body == b"poison":
            RECORD.write(f"failed-at {time.monotonic()}\\n")
            RECORD.flush()
            raise ValueError("this message always fails")
        record(message)


def stuck(message):
    record(message, "started")
    return task.deferLater(reactor, 60, lambda: None)
"""


@pytest.fixture
def handler_dir(tmp_path: Path) -> Path:
    (tmp_path / "e2e_handlers.py").write_text(textwrap.dedent(RECORDING_HANDLER))
    return tmp_path


def records(path: Path, what: str = "handled") -> list[str]:
    if not path.exists():
        return []
    prefix = what + " "
    return [
        line[len(prefix) :] for line in path.read_text().splitlines() if line.startswith(prefix)
    ]


def declare_queue(name: str, **arguments: object) -> None:
    with pika_channel() as channel:
        channel.queue_declare(name, durable=True, arguments=arguments or None)


def test_sigterm_halfway_then_restart_handles_every_message(handler_dir: Path) -> None:
    queue = unique("restart")
    record_file = handler_dir / "records"
    env = {"RECORD_FILE": str(record_file)}
    args = ["--url", AMQP_URL, "--queue", queue, "--handler", "e2e_handlers:slow",
            "--prefetch", "50", "--shutdown-grace", "10"]  # fmt: skip
    declare_queue(queue)
    try:
        publish(queue, [f"body {i}".encode() for i in range(2000)])
        with consumer(args, handler_dir, env=env) as first:
            wait_until(lambda: len(records(record_file)) >= 1000, 60, "1,000 handled")
            code, _ = first.terminate()
            assert code == 0, first.output()
            assert "stopped after" in first.output()
        handled_first = len(records(record_file))
        assert handled_first < 2000, "the first run was to be stopped halfway"
        assert message_count(queue) >= 2000 - handled_first
        with consumer(args, handler_dir, env=env) as second:
            wait_until(lambda: set(records(record_file)) >= {f"m{i}" for i in range(2000)},
                       60, "every message handled")  # fmt: skip
            wait_until(lambda: message_count(queue) == 0, 30, "an empty queue")
            assert second.terminate()[0] == 0, second.output()
        assert message_count(queue) == 0
    finally:
        delete([queue])


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_a_poison_message_is_dead_lettered_after_max_redeliveries(
    handler_dir: Path, queue_type: str
) -> None:
    queue, dlx, dlq = unique("poison"), unique("dlx"), unique("dlq")
    record_file = handler_dir / "records"
    dead_letter_queue(dlx, dlq)
    args = ["--url", AMQP_URL, "--queue", queue, "--handler", "e2e_handlers:poison",
            "--declare", "--queue-type", queue_type, "--dead-letter-exchange", dlx,
            "--max-redeliveries", "3"]  # fmt: skip
    try:
        with consumer(args, handler_dir, env={"RECORD_FILE": str(record_file)}) as service:
            service.wait_for("consuming")
            publish(queue, [b"poison"], message_id="bad-message")
            publish(queue, [f"fine {i}".encode() for i in range(200)])
            wait_until(lambda: message_count(dlq) == 1, 30, "the poison message in the DLQ")
            wait_until(lambda: len(records(record_file)) >= 200, 30, "the other messages")
            assert service.terminate()[0] == 0, service.output()
        calls = records(record_file, "failed")
        assert calls == ["bad-message"] * len(calls) and 1 <= len(calls) <= 4, calls
        assert len(calls) == 4  # one delivery and three redeliveries
        lines = [line for line in service.lines if "message bad-message " in line]
        assert len(lines) == len(calls) < 50, service.output()
        assert "more than --max-redeliveries 3: rejected" in lines[-1]
        assert "ValueError: this message always fails" in lines[-1]
        assert message_count(queue) == 0
        assert drain(dlq) == [b"poison"]
    finally:
        delete([queue, dlq], [dlx])


def test_threads_and_requeue_delay(handler_dir: Path) -> None:
    queue, dlx, dlq = unique("threads"), unique("dlx"), unique("dlq")
    record_file = handler_dir / "records"
    dead_letter_queue(dlx, dlq)
    args = ["--url", AMQP_URL, "--queue", queue, "--handler", "e2e_handlers:threaded",
            "--threads", "4", "--declare", "--dead-letter-exchange", dlx,
            "--max-redeliveries", "2", "--requeue-delay", "0.5"]  # fmt: skip
    try:
        with consumer(args, handler_dir, env={"RECORD_FILE": str(record_file)}) as service:
            service.wait_for("consuming")
            publish(queue, [b"poison"], message_id="bad-message")
            publish(queue, [f"fine {i}".encode() for i in range(100)])
            wait_until(lambda: len(records(record_file)) == 100, 30, service.output)
            # Held unacked during the delay: never back in the queue (ready) meanwhile.
            assert message_count(queue) == 0
            wait_until(lambda: message_count(dlq) == 1, 30, "the poison message in the DLQ")
            assert service.terminate()[0] == 0, service.output()
        times = [float(t) for t in records(record_file, "failed-at")]
        assert len(times) == 3, times  # one delivery, two redeliveries
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert all(gap >= 0.45 for gap in gaps), gaps
        assert sorted(records(record_file)) == sorted(f"m{i}" for i in range(100))
    finally:
        delete([queue, dlq], [dlx])


def test_shutdown_grace_bounds_a_stuck_handler(handler_dir: Path) -> None:
    queue = unique("stuck")
    record_file = handler_dir / "records"
    args = ["--url", AMQP_URL, "--queue", queue, "--handler", "e2e_handlers:stuck",
            "--shutdown-grace", "2", "--log-format", "json"]  # fmt: skip
    declare_queue(queue)
    try:
        with consumer(args, handler_dir, env={"RECORD_FILE": str(record_file)}) as service:
            service.wait_for("consuming")
            publish(queue, [b"stuck"])
            wait_until(lambda: records(record_file, "started") == ["m0"], 30, "the handler")
            code, seconds = service.terminate()
            assert code == 0, service.output()
        assert 2.0 <= seconds < 4.0, (seconds, service.output())
        # --log-format json: one JSON object per line, the service's fields kept.
        events = [json.loads(line) for line in service.lines]
        assert any(e.get("queue") == queue and "consuming" in e["message"] for e in events)
        late = [e for e in events if "still running after --shutdown-grace" in e["message"]]
        assert len(late) == 1 and late[0]["n"] == 1 and late[0]["level"] == "warn", events
        wait_until(lambda: message_count(queue) == 1, 10, "the message back in the queue")
    finally:
        delete([queue])


def test_a_refused_login_ends_the_process_with_status_1(handler_dir: Path) -> None:
    url = urlsplit(AMQP_URL)
    wrong = f"amqp://guest:not-the-password@{url.hostname}:{url.port or 5672}/%2F"
    args = ["--url", wrong, "--queue", unique("refused"), "--handler", "e2e_handlers:poison"]
    with consumer(args, handler_dir, env={"RECORD_FILE": str(handler_dir / "r")}) as service:
        code = service.proc.wait(timeout=60)
    assert code == 1, service.output()
    assert "giving up on" in service.output()
    assert "not-the-password" not in service.output()


def test_a_stream_queue_skips_a_failed_message_without_losing_the_connection(
    handler_dir: Path,
) -> None:
    queue = unique("stream")
    record_file = handler_dir / "records"
    args = ["--url", AMQP_URL, "--queue", queue, "--handler", "e2e_handlers:poison",
            "--declare", "--queue-type", "stream", "--prefetch", "10"]  # fmt: skip
    try:
        with consumer(args, handler_dir, env={"RECORD_FILE": str(record_file)}) as service:
            service.wait_for("consuming")
            publish(queue, [b"before", b"poison", b"after"])
            wait_until(lambda: records(record_file) == ["m0", "m2"], 30, service.output)
            time.sleep(0.5)  # a nack would have closed the connection by now
            assert service.terminate()[0] == 0, service.output()
        assert records(record_file, "failed") == ["m1"]
        out = service.output()
        assert "a stream cannot requeue: skipped" in out
        assert "lost the connection" not in out and "NOT_IMPLEMENTED" not in out, out
    finally:
        delete([queue])


def test_urls_from_the_environment_are_cluster_nodes_tried_in_turn(handler_dir: Path) -> None:
    from tests.integration.faults import free_port

    queue = unique("nodes")
    record_file = handler_dir / "records"
    port = free_port()
    dead = f"amqp://guest:guest@127.0.0.1:{port}/%2F"  # nothing listens there
    env = {"RECORD_FILE": str(record_file), "TXAMQP091_URL": f"{dead}, {AMQP_URL}"}
    declare_queue(queue)
    try:
        # No --url: the credentials stay out of argv.
        with consumer(["--queue", queue, "--handler", "e2e_handlers:poison"], handler_dir,
                      env=env) as service:  # fmt: skip
            assert not any("guest" in arg for arg in service.cmd)
            service.wait_for("consuming")
            publish(queue, [b"hello"])
            wait_until(lambda: records(record_file) == ["m0"], 30, service.output)
            assert service.terminate()[0] == 0, service.output()
        assert f"127.0.0.1:{port}" in service.output()  # the dead node was tried first
    finally:
        delete([queue])


def test_a_deleted_queue_is_declared_again_and_consumed(handler_dir: Path) -> None:
    """A broker-side cancel (the queue deleted under the consumer) is not a silent end:
    the service logs it and subscribes again, declaring the queue again with --declare."""
    queue = unique("cancelled")
    record_file = handler_dir / "records"
    args = ["--url", AMQP_URL, "--queue", queue, "--handler", "e2e_handlers:poison",
            "--declare"]  # fmt: skip
    try:
        with consumer(args, handler_dir, env={"RECORD_FILE": str(record_file)}) as service:
            service.wait_for("consuming")
            publish(queue, [b"before"], message_id="before")
            wait_until(lambda: records(record_file) == ["before"], 30, service.output)
            delete([queue])
            service.wait_for("the broker cancelled the consumer")
            wait_until(
                lambda: sum("consuming" in line and queue in line for line in service.lines) == 2,
                30,
                service.output,
            )
            publish(queue, [b"after"], message_id="after")
            wait_until(lambda: records(record_file) == ["before", "after"], 30, service.output)
            assert service.terminate()[0] == 0, service.output()
    finally:
        delete([queue])
