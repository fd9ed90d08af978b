"""The ``twistd amqp-consumer`` service against a pika consumer loop, on the real broker.

Three figures, each from fresh processes (default ``127.0.0.1:5672``, guest/guest):

1. ``throughput``: ``--count`` pre-loaded 64 B messages (published with pika,
   outside the timed part) consumed with a no-op handler, prefetch 1,000, one ack
   per message. The service runs as ``twistd -n amqp-consumer``; the reference is
   the textbook ``pika.BlockingConnection`` loop (``basic_consume`` callback that
   ``basic_ack``\\ s, ``start_consuming``) in its own interpreter. Both time from the
   first delivery to the last one handled: messages per second.
2. ``shutdown``: 1,001 pre-loaded messages, prefetch 1,001, ``--concurrency 1`` and
   a 50 ms handler, so about 1,000 wait buffered in the service when SIGTERM
   arrives. Reported: seconds from SIGTERM to the process's exit, its exit
   status, and how many messages are back in the queue.
3. ``poison``: one message whose handler always fails, ``--max-redeliveries 3``
   and a dead-letter exchange: how many handler calls (and so redeliveries) it
   saw before it reached the dead-letter queue.

Usage::

    python benchmarks/consumer_service.py [--count 50000] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pika

ROOT = Path(__file__).resolve().parent.parent
URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

HANDLERS = """
import os, sys, time
from twisted.internet import reactor, task

COUNT = int(os.environ.get("BENCH_COUNT", "0"))
seen = 0
started = 0.0


def noop(message):
    global seen, started
    seen += 1
    if seen == 1:
        started = time.perf_counter()
    elif seen == COUNT:
        print(f"BENCH done {time.perf_counter() - started:.6f}", flush=True)


def slow(message):
    global seen
    seen += 1
    if seen == 1:
        print("BENCH started", flush=True)
    return task.deferLater(reactor, 0.05, lambda: None)


def poison(message):
    print("BENCH call", flush=True)
    raise ValueError("poison")
"""

PIKA_LOOP = """
import sys, time
import pika

url, queue, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
channel.basic_qos(prefetch_count=1000)
state = {"seen": 0, "started": 0.0}


def on_message(ch, method, properties, body):
    ch.basic_ack(method.delivery_tag)
    state["seen"] += 1
    if state["seen"] == 1:
        state["started"] = time.perf_counter()
    elif state["seen"] == count:
        print(f"BENCH done {time.perf_counter() - state['started']:.6f}", flush=True)
        ch.stop_consuming()


channel.basic_consume(queue, on_message)
channel.start_consuming()
connection.close()
"""


def channel() -> tuple[Any, Any]:
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    return connection, connection.channel()


def preload(queue: str, count: int, size: int = 64) -> None:
    connection, ch = channel()
    ch.queue_declare(queue, durable=False)
    body = b"x" * size
    for i in range(count):
        ch.basic_publish("", queue, body, pika.BasicProperties(message_id=f"m{i}"))
    while ch.queue_declare(queue, passive=True).method.message_count < count:
        time.sleep(0.05)
    connection.close()


def message_count(queue: str) -> int:
    connection, ch = channel()
    try:
        return int(ch.queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def delete(queues: list[str], exchanges: list[str] = ()) -> None:  # type: ignore[assignment]
    connection, ch = channel()
    for name in queues:
        ch.queue_delete(name)
    for name in exchanges:
        ch.exchange_delete(name)
    connection.close()


def twistd(handler_dir: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "twistd")
    path = os.pathsep.join([handler_dir, str(ROOT), os.environ.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, exe, "--nodaemon", "--pidfile=", "--logfile=-", "amqp-consumer",
         "--url", URL, *args],
        cwd=handler_dir, env=dict(os.environ, PYTHONPATH=path, **env),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def read_until(proc: subprocess.Popen[str], needle: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        if needle in line:
            return line
        if time.monotonic() > deadline:
            break
    raise RuntimeError(f"no {needle!r} from the consumer within {timeout}s")


def service_throughput(handler_dir: str, count: int) -> float:
    queue = f"bench-svc-{uuid.uuid4().hex[:8]}"
    preload(queue, count)
    proc = twistd(handler_dir, ["--queue", queue, "--handler", "bench_handlers:noop",
                                "--prefetch", "1000"], {"BENCH_COUNT": str(count)})  # fmt: skip
    try:
        line = read_until(proc, "BENCH done", 300)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        delete([queue])
    return (count - 1) / float(line.split()[-1])


def pika_throughput(count: int) -> float:
    queue = f"bench-pika-{uuid.uuid4().hex[:8]}"
    preload(queue, count)
    try:
        out = subprocess.run(
            [sys.executable, "-c", PIKA_LOOP, URL, queue, str(count)],
            capture_output=True, text=True, timeout=300, check=True,
        ).stdout  # fmt: skip
    finally:
        delete([queue])
    line = next(line for line in out.splitlines() if line.startswith("BENCH done"))
    return (count - 1) / float(line.split()[-1])


def shutdown(handler_dir: str, buffered: int = 1000) -> dict[str, float]:
    queue = f"bench-stop-{uuid.uuid4().hex[:8]}"
    total = buffered + 1
    preload(queue, total)
    proc = twistd(handler_dir, ["--queue", queue, "--handler", "bench_handlers:slow",
                                "--prefetch", str(total), "--concurrency", "1"], {})  # fmt: skip
    try:
        read_until(proc, "BENCH started", 60)
        # Let the broker push every message (prefetch covers them all).
        deadline = time.monotonic() + 30
        while message_count(queue) > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        started = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        seconds = time.perf_counter() - started
        time.sleep(0.3)
        back = message_count(queue)
    finally:
        if proc.poll() is None:
            proc.kill()
        delete([queue])
    return {"seconds": seconds, "exit_status": code, "requeued": back, "total": total}


def poison(handler_dir: str) -> dict[str, int]:
    queue, dlx, dlq = (f"bench-{k}-{uuid.uuid4().hex[:8]}" for k in ("poison", "dlx", "dlq"))
    connection, ch = channel()
    ch.exchange_declare(dlx, "fanout", durable=True)
    ch.queue_declare(dlq, durable=True)
    ch.queue_bind(dlq, dlx)
    proc = twistd(handler_dir, ["--queue", queue, "--handler", "bench_handlers:poison",
                                "--declare", "--dead-letter-exchange", dlx,
                                "--max-redeliveries", "3"], {})  # fmt: skip
    calls = 0
    try:
        read_until(proc, "consuming", 60)
        ch.basic_publish("", queue, b"poison", pika.BasicProperties(message_id="poison"))
        deadline = time.monotonic() + 30
        while ch.queue_declare(dlq, passive=True).method.message_count < 1:
            if time.monotonic() > deadline:
                raise RuntimeError("the poison message never reached the dead-letter queue")
            time.sleep(0.05)
        time.sleep(0.5)  # any call after the reject would show up now
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        calls = out.count("BENCH call")
    finally:
        if proc.poll() is None:
            proc.kill()
        connection.close()
        delete([queue, dlq], [dlx])
    return {"handler_calls": calls, "redeliveries": calls - 1, "in_dead_letter_queue": 1}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    count = max(1000, int(args.count * args.scale))
    with tempfile.TemporaryDirectory(prefix="txamqp091-bench-") as handler_dir:
        (Path(handler_dir) / "bench_handlers.py").write_text(textwrap.dedent(HANDLERS))
        service, reference = [], []
        for _ in range(args.repeats):
            service.append(service_throughput(handler_dir, count))
            reference.append(pika_throughput(count))
        stop = shutdown(handler_dir)
        bad = poison(handler_dir)
    results = {
        "count": count,
        "repeats": args.repeats,
        "service_msgs_per_s": statistics.median(service),
        "pika_blocking_msgs_per_s": statistics.median(reference),
        "service_runs": service,
        "pika_runs": reference,
        "shutdown": stop,
        "poison": bad,
    }
    print(f"no-op handler, {count:,} messages, median of {args.repeats}:")
    print(f"  twistd amqp-consumer      {results['service_msgs_per_s']:>10,.0f} msg/s")
    print(f"  pika BlockingConnection   {results['pika_blocking_msgs_per_s']:>10,.0f} msg/s")
    print(
        f"SIGTERM with {stop['total'] - 1:,} buffered: exit {stop['exit_status']} after "
        f"{stop['seconds']:.3f} s, {stop['requeued']:,} of {stop['total']:,} back in the queue"
    )
    print(
        f"poison message, --max-redeliveries 3: {bad['handler_calls']} handler calls "
        f"({bad['redeliveries']} redeliveries), then the dead-letter queue"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
