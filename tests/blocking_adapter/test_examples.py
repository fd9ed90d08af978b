"""The RabbitMQ tutorials in examples/blocking/, run with pika and with txamqp091.

Each program is run as written (``from txamqp091 import blocking as pika``) and
once more with that line changed to ``import pika``; both runs must print the
same lines, and those lines must be the tutorial's. The runs use a virtual host
of their own, deleted afterwards, since the tutorials use fixed names
("hello", "task_queue", "logs"...).
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.blocking_adapter.support import AMQP_URL
from tests.integration.faults import rabbitmqctl
from tests.tutorials.programs import ctrl_c_as_in_a_terminal
from txamqp091 import blocking

pytestmark = pytest.mark.broker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "blocking"
OURS = "from txamqp091 import blocking as pika"
IMPLEMENTATIONS = ("txamqp091", "pika")


@pytest.fixture(scope="module")
def vhost_url() -> Iterator[str]:
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is needed to make a virtual host for the tutorials")
    vhost = f"txamqp091-blocking-tutorials-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield AMQP_URL.rstrip("/") + "/" + quote(vhost, safe="")
    finally:
        rabbitmqctl("delete_vhost", vhost, check=False)


@pytest.fixture(scope="module")
def pika_copies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/blocking/ with the import line changed to pika's."""
    target = tmp_path_factory.mktemp("pika_tutorials")
    for source in EXAMPLES.glob("*.py"):
        text = source.read_text()
        if source.name != "__init__.py":
            assert text.count(OURS) == 1, source
        (target / source.name).write_text(text.replace(OURS, "import pika"))
    return target


class Program:
    """A tutorial program in a subprocess, its stdout read line by line."""

    def __init__(self, path: Path, args: tuple[str, ...], url: str) -> None:
        env = {
            **os.environ,
            "AMQP_URL": url,
            "PYTHONUNBUFFERED": "1",
            "SECONDS_PER_DOT": "0.05",
            "PYTHONFAULTHANDLER": "1",  # SIGABRT prints every thread's stack (finish())
        }
        self.process = subprocess.Popen(
            [sys.executable, str(path), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=ctrl_c_as_in_a_terminal,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, count: int = 1, timeout: float = 30.0) -> None:
        """Until ``count`` lines containing ``text`` were printed."""
        deadline = time.monotonic() + timeout
        while sum(text in line for line in self.lines) < count:
            remaining = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                raise AssertionError(f"no {text!r} within {timeout} s; got {self.lines}") from None
            if line is None:
                raise AssertionError(f"ended before {text!r}: {self.lines} {self.stderr()}")
            self.lines.append(line)

    def stderr(self) -> str:
        return self.process.stderr.read() if self.process.stderr else ""

    def finish(self, timeout: float = 30.0) -> list[str]:
        """Wait for the program to end by itself; its output. One that does not end is
        a hang: fail with every thread's stack (faulthandler, on SIGABRT), which says
        where it waits."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            raise AssertionError(
                f"{self.process.args[1]} did not end within {timeout} s; "
                f"output {self.lines}; stderr:\n{self.stderr()}"
            ) from None
        self._reader.join(timeout)
        while True:
            line = self._queue.get()
            if line is None:
                break
            self.lines.append(line)
        assert self.process.returncode == 0, self.stderr()
        return self.lines

    def interrupt(self) -> list[str]:
        """Ctrl+C, as the tutorials say; its output."""
        self.process.send_signal(signal.SIGINT)
        return self.finish()


Run = Callable[..., Program]


def tutorial_runs(
    url: str, pika_dir: Path, scenario: Callable[[Run], dict[str, list[str]]]
) -> dict[str, dict[str, list[str]]]:
    """The scenario's output with each implementation."""
    outputs = {}
    for implementation in IMPLEMENTATIONS:
        directory = EXAMPLES if implementation == "txamqp091" else pika_dir

        def start(name: str, *args: str, directory: Path = directory) -> Program:
            return Program(directory / name, args, url)

        outputs[implementation] = scenario(start)
        forget_tutorial_names(url)
    return outputs


def forget_tutorial_names(url: str) -> None:
    """Delete what the tutorials declare, so the next run starts afresh (a worker
    interrupted right after printing "Done" may not have acked: that task is requeued)."""
    with blocking.BlockingConnection(url, timeout=10) as conn:
        ch = conn.channel()
        for name in ("hello", "task_queue", "rpc_queue"):
            ch.queue_delete(name)
        for name in ("logs", "direct_logs", "topic_logs"):
            ch.exchange_delete(name)


def check(outputs: dict[str, dict[str, list[str]]], expected: dict[str, list[str]]) -> None:
    assert outputs["txamqp091"] == outputs["pika"]
    assert outputs["txamqp091"] == expected


def test_hello_world(vhost_url: str, pika_copies: Path) -> None:
    def scenario(start: Run) -> dict[str, list[str]]:
        receiver = start("receive.py")
        receiver.wait_for("Waiting")
        send = start("send.py").finish()
        receiver.wait_for("Received")
        return {"send": send, "receive": receiver.interrupt()}

    check(
        tutorial_runs(vhost_url, pika_copies, scenario),
        {
            "send": [" [x] Sent 'Hello World!'"],
            "receive": [
                " [*] Waiting for messages. To exit press CTRL+C",
                " [x] Received b'Hello World!'",
                "Interrupted",
            ],
        },
    )


def test_work_queues(vhost_url: str, pika_copies: Path) -> None:
    def scenario(start: Run) -> dict[str, list[str]]:
        worker = start("worker.py")
        worker.wait_for("Waiting")
        first = start("new_task.py", "First", "message.").finish()
        second = start("new_task.py", "Second", "message..").finish()
        worker.wait_for("Done", count=2)
        return {"tasks": first + second, "worker": worker.interrupt()}

    check(
        tutorial_runs(vhost_url, pika_copies, scenario),
        {
            "tasks": [" [x] Sent First message.", " [x] Sent Second message.."],
            "worker": [
                " [*] Waiting for messages. To exit press CTRL+C",
                " [x] Received First message.",
                " [x] Done",
                " [x] Received Second message..",
                " [x] Done",
                "Interrupted",
            ],
        },
    )


def test_publish_subscribe(vhost_url: str, pika_copies: Path) -> None:
    def scenario(start: Run) -> dict[str, list[str]]:
        listeners = [start("receive_logs.py") for _ in range(2)]
        for listener in listeners:
            listener.wait_for("Waiting")
        emitted = start("emit_log.py", "info: a log line").finish()
        for listener in listeners:
            listener.wait_for("a log line")
        return {
            "emit": emitted,
            "first": listeners[0].interrupt(),
            "second": listeners[1].interrupt(),
        }

    heard = [
        " [*] Waiting for logs. To exit press CTRL+C",
        " [x] b'info: a log line'",
        "Interrupted",
    ]
    check(
        tutorial_runs(vhost_url, pika_copies, scenario),
        {"emit": [" [x] Sent info: a log line"], "first": heard, "second": heard},
    )


def test_routing(vhost_url: str, pika_copies: Path) -> None:
    def scenario(start: Run) -> dict[str, list[str]]:
        errors = start("receive_logs_direct.py", "error")
        everything = start("receive_logs_direct.py", "info", "warning", "error")
        errors.wait_for("Waiting")
        everything.wait_for("Waiting")
        sent = start("emit_log_direct.py", "error", "Run. Run.").finish()
        sent += start("emit_log_direct.py", "info", "just so you know").finish()
        everything.wait_for("info:")
        errors.wait_for("error:")
        return {"sent": sent, "errors": errors.interrupt(), "everything": everything.interrupt()}

    check(
        tutorial_runs(vhost_url, pika_copies, scenario),
        {
            "sent": [" [x] Sent error:Run. Run.", " [x] Sent info:just so you know"],
            "errors": [
                " [*] Waiting for logs. To exit press CTRL+C",
                " [x] error:b'Run. Run.'",
                "Interrupted",
            ],
            "everything": [
                " [*] Waiting for logs. To exit press CTRL+C",
                " [x] error:b'Run. Run.'",
                " [x] info:b'just so you know'",
                "Interrupted",
            ],
        },
    )


def test_topics(vhost_url: str, pika_copies: Path) -> None:
    def scenario(start: Run) -> dict[str, list[str]]:
        everything = start("receive_logs_topic.py", "#")
        kernel = start("receive_logs_topic.py", "kern.*", "*.critical")
        everything.wait_for("Waiting")
        kernel.wait_for("Waiting")
        sent = start("emit_log_topic.py", "kern.critical", "A critical kernel error").finish()
        sent += start("emit_log_topic.py", "anonymous.info", "hello").finish()
        everything.wait_for("anonymous.info")
        kernel.wait_for("kern.critical")
        return {"sent": sent, "everything": everything.interrupt(), "kernel": kernel.interrupt()}

    check(
        tutorial_runs(vhost_url, pika_copies, scenario),
        {
            "sent": [
                " [x] Sent kern.critical:A critical kernel error",
                " [x] Sent anonymous.info:hello",
            ],
            "everything": [
                " [*] Waiting for logs. To exit press CTRL+C",
                " [x] kern.critical:b'A critical kernel error'",
                " [x] anonymous.info:b'hello'",
                "Interrupted",
            ],
            "kernel": [
                " [*] Waiting for logs. To exit press CTRL+C",
                " [x] kern.critical:b'A critical kernel error'",
                "Interrupted",
            ],
        },
    )


def test_rpc(vhost_url: str, pika_copies: Path) -> None:
    def scenario(start: Run) -> dict[str, list[str]]:
        server = start("rpc_server.py")
        server.wait_for("Awaiting")
        client = start("rpc_client.py", "20").finish()
        server.wait_for("fib(20)")
        return {"client": client, "server": server.interrupt()}

    check(
        tutorial_runs(vhost_url, pika_copies, scenario),
        {
            "client": [" [x] Requesting fib(20)", " [.] Got 6765"],
            "server": [" [x] Awaiting RPC requests", " [.] fib(20)", "Interrupted"],
        },
    )
