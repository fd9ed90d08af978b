"""The main job: a ``twistd amqp-consumer`` service receiving messages published to RabbitMQ.

Starts the consumer service as ``twistd -n amqp-consumer`` (found through
the ``twisted/plugins`` folder of this checkout), publishes ``--count`` messages with publisher confirms
through txamqp091's Twisted client, waits until the service has handled every
one, then stops it with SIGTERM (a graceful drain) and checks it exited 0.

    python examples/demo.py [--url amqp://guest:guest@127.0.0.1:5672/%2F] [--count 100]
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from twisted.internet import defer, task  # noqa: E402

from txamqp091 import BasicProperties, DeliveryMode  # noqa: E402
from txamqp091.twisted import connect  # noqa: E402


def start_consumer(url: str, queue_name: str) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    cmd = [
        sys.executable, twistd, "--nodaemon", "--pidfile=", "--logfile=-", "amqp-consumer",
        "--url", url, "--queue", queue_name, "--declare", "--prefetch", "50",
        "--handler", "examples.demo_handler:handle",
    ]  # fmt: skip
    print("$", " ".join(cmd[1:]), flush=True)
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def wait_for(lines: queue.Queue[str], needle: str, timeout: float, echo: bool = True) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if echo:
            print("  consumer |", line, flush=True)
        if needle in line:
            return line
    raise SystemExit(f"demo: timed out after {timeout}s waiting for {needle!r}")


async def publish(reactor: Any, url: str, queue_name: str, count: int) -> None:
    conn = await connect(reactor, url)
    try:
        channel = await conn.channel()
        await channel.confirm_delivery()
        props = BasicProperties(content_type="text/plain", delivery_mode=DeliveryMode.Persistent)
        started = time.monotonic()
        await defer.gatherResults(
            [
                channel.basic_publish("", queue_name, f"order {i}".encode(), props)
                for i in range(1, count + 1)
            ]
        )
        elapsed = time.monotonic() - started
        print(f"published {count} messages, all confirmed by the broker, in {elapsed:.3f}s")
    finally:
        await conn.close()


async def delete_queue(reactor: Any, url: str, queue_name: str) -> None:
    conn = await connect(reactor, url)
    channel = await conn.channel()
    await channel.queue_delete(queue_name)
    await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()
    queue_name = f"txamqp091-demo-{uuid.uuid4().hex[:8]}"
    proc, lines = start_consumer(args.url, queue_name)
    try:
        wait_for(lines, "consuming", timeout=30)
        task.react(lambda r: defer.ensureDeferred(publish(r, args.url, queue_name, args.count)))
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    try:
        wait_for(lines, f"handled {args.count}:", timeout=60, echo=False)
        print(f"the consumer service handled all {args.count} messages")
        proc.send_signal(signal.SIGTERM)
        wait_for(lines, "stopped after", timeout=30)
        code = proc.wait(timeout=30)
        print(f"consumer service exited with status {code} after SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run([sys.executable, "-c", _DELETE, args.url, queue_name], cwd=ROOT, check=False)
    return code


_DELETE = """
import sys
from twisted.internet import defer, task
sys.path.insert(0, ".")
from examples.demo import delete_queue
task.react(lambda r: defer.ensureDeferred(delete_queue(r, sys.argv[1], sys.argv[2])))
"""

if __name__ == "__main__":
    sys.exit(main())
