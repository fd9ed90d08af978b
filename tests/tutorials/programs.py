"""Run example programs as a user would, and read what they print, line by line.

Each program runs in its own process with ``AMQP_URL`` pointing at a private
virtual host, so the tutorials' fixed queue and exchange names (``hello``,
``task_queue``, ``logs`` ...) never meet another test's, and deleting the vhost
afterwards removes everything they declared.
"""

from __future__ import annotations

import os
import queue
import re
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def ctrl_c_as_in_a_terminal() -> None:
    """A ``preexec_fn``: in the child, before exec, SIGINT at its default, so that Python
    turns it into KeyboardInterrupt as in a terminal. A test run started in the
    background by a non-interactive shell (a CI runner, ``cmd &``) has SIGINT ignored,
    which every child inherits: the program would never see the Ctrl+C a test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Program:
    """A running example: its output lines arrive on a queue, read with ``expect``."""

    def __init__(self, path: Path, args: list[str], url: str) -> None:
        env = dict(os.environ, AMQP_URL=url, PYTHONUNBUFFERED="1")
        self.path = path
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            [sys.executable, str(path), *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=ctrl_c_as_in_a_terminal,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """The first new line matching ``pattern``; fails with everything read so far."""
        regex = re.compile(pattern)
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"{self.path.name}: no line matching {pattern!r} within {timeout} s; "
                    f"output so far: {self.lines!r}"
                ) from None
            if line is None:
                raise AssertionError(
                    f"{self.path.name} ended (exit {self.process.wait()}) before a line "
                    f"matching {pattern!r}; output: {self.lines!r}"
                )
            self.lines.append(line)
            match = regex.search(line)
            if match:
                return match

    def finish(self, timeout: float = 30.0) -> int:
        """Wait for a program that ends by itself; its exit status."""
        try:
            return self.process.wait(timeout)
        finally:
            self._drain()

    def interrupt(self) -> None:
        """CTRL+C, as the tutorials tell the reader to do; kill it if that is not enough."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._drain()

    def _drain(self) -> None:
        self._reader.join(5)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return
            if line is not None:
                self.lines.append(line)


def run(path: Path, args: list[str], url: str, timeout: float = 60.0) -> list[str]:
    """Run a program to its end; its output lines (it must exit 0)."""
    program = Program(path, args, url)
    status = program.finish(timeout)
    assert status == 0, f"{path.name} exited {status}: {program.lines!r}"
    return program.lines


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


def private_vhost(host: str = "127.0.0.1", port: int = 5672) -> Iterator[str]:
    """A fresh vhost guest may use, as an AMQP URL; deleted with everything in it."""
    name = f"txamqp091-examples-{secrets.token_hex(4)}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{host}:{port}/{quote(name, safe='')}"
    finally:
        rabbitmqctl("delete_vhost", name)
