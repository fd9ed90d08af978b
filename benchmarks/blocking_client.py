"""Blocking benchmark: ``txamqp091.blocking`` against pika 1.4.4's ``BlockingConnection``.

The same program drives both: it imports ``txamqp091.blocking as pika`` or
``pika``, exactly as an application switching libraries would. Every
(scenario, client) pair runs in a *fresh interpreter* (this script re-invoked
with ``--worker``); with ``--repeats N`` the runs are interleaved (scenario by
scenario, client by client) N times and the table shows medians. The broker is
RabbitMQ at ``--url`` (default ``amqp://guest:guest@127.0.0.1:5672/``).

Measured in each worker around the timed section only: wall clock
(``time.perf_counter``) -> messages per second, and the process's CPU
(``getrusage`` user+sys, so txamqp091's loop thread is included) -> CPU µs per
message.

Scenarios (counts are multiplied by ``--scale``):

1. ``publish``   100,000 x 64 B, no confirms, ``basic_publish`` in a loop; the
   clock stops when ``queue_declare(passive=True)`` counts all of them.
2. ``confirm``   20,000 x 64 B after ``confirm_delivery()``: each
   ``basic_publish`` returns once the broker acked it (a window of 1).
3. ``batch``     100,000 x 64 B with confirms, 1,000 per
   ``publish_batch`` (txamqp091 only: pika has no equivalent).
4. ``consume``   100,000 pre-loaded messages, prefetch 1,000,
   ``basic_consume`` + ``start_consuming()``, ``basic_ack`` each.
5. ``consume-gen`` the same through the ``consume()`` generator.
6. ``rpc``       2,000 sequential round trips, as the RabbitMQ RPC tutorial's
   client does it (publish with ``reply_to``/``correlation_id``, then
   ``process_data_events(time_limit=None)`` until the reply); the responder is
   a separate process using the same library. p50/p99 in µs; CPU is the
   client's, per round trip.

Usage::

    python benchmarks/blocking_client.py                    # everything, full size
    python benchmarks/blocking_client.py --scale 0.2 --repeats 3
    python benchmarks/blocking_client.py --only confirm --client txamqp091 --json out.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CLIENTS = ("txamqp091", "pika")
#: name -> (base message count, description, clients that can run it)
SCENARIOS: dict[str, tuple[int, str, tuple[str, ...]]] = {
    "publish": (100_000, "publish 64 B, no confirms, until the queue holds all", CLIENTS),
    "confirm": (20_000, "publish 64 B with confirms, window 1 (blocking basic_publish)", CLIENTS),
    "batch": (100_000, "publish 64 B with confirms, publish_batch of 1,000", ("txamqp091",)),
    "consume": (100_000, "consume pre-loaded, prefetch 1,000, basic_ack each", CLIENTS),
    "consume-gen": (100_000, "the same through the consume() generator", CLIENTS),
    "rpc": (2_000, "sequential RPC round trips (p50/p99 latency)", CLIENTS),
}
BODY = b"x" * 64
PREFETCH = 1000
BATCH = 1000
RPC_WARMUP = 100


def library(client: str) -> Any:
    return importlib.import_module("txamqp091.blocking" if client == "txamqp091" else "pika")


def cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def scaled(name: str, scale: float) -> int:
    return max(1, round(SCENARIOS[name][0] * scale))


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))]


# -- workers: one scenario, one client, in a fresh interpreter ------------------------------


def connect(pika: Any, url: str) -> Any:
    return pika.BlockingConnection(pika.URLParameters(url))


def wait_count(channel: Any, queue: str, n: int) -> None:
    while channel.queue_declare(queue, passive=True).method.message_count < n:
        time.sleep(0.002)


def run_publish(pika: Any, url: str, queue: str, n: int, client: str) -> dict[str, Any]:
    conn = connect(pika, url)
    ch = conn.channel()
    publish = ch.basic_publish
    t0, c0 = time.perf_counter(), cpu()
    for _ in range(n):
        publish("", queue, BODY)
    wait_count(ch, queue, n)
    wall, used = time.perf_counter() - t0, cpu() - c0
    conn.close()
    return {"n": n, "wall_s": wall, "cpu_s": used}


def run_confirm(pika: Any, url: str, queue: str, n: int, client: str) -> dict[str, Any]:
    conn = connect(pika, url)
    ch = conn.channel()
    ch.confirm_delivery()
    publish = ch.basic_publish
    t0, c0 = time.perf_counter(), cpu()
    for _ in range(n):
        publish("", queue, BODY)
    wall, used = time.perf_counter() - t0, cpu() - c0
    conn.close()
    return {"n": n, "wall_s": wall, "cpu_s": used}


def run_batch(pika: Any, url: str, queue: str, n: int, client: str) -> dict[str, Any]:
    conn = connect(pika, url)
    ch = conn.channel()
    ch.confirm_delivery()
    batch = [("", queue, BODY, None, False)] * BATCH
    t0, c0 = time.perf_counter(), cpu()
    sent = 0
    while sent < n:
        size = min(BATCH, n - sent)
        ch.publish_batch(batch[:size])
        sent += size
    wall, used = time.perf_counter() - t0, cpu() - c0
    conn.close()
    return {"n": n, "wall_s": wall, "cpu_s": used}


def run_consume(pika: Any, url: str, queue: str, n: int, client: str) -> dict[str, Any]:
    conn = connect(pika, url)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=PREFETCH)
    count = 0

    def on_message(channel: Any, method: Any, properties: Any, body: bytes) -> None:
        nonlocal count
        channel.basic_ack(method.delivery_tag)
        count += 1
        if count == n:
            channel.stop_consuming()

    t0, c0 = time.perf_counter(), cpu()
    ch.basic_consume(queue, on_message)
    ch.start_consuming()
    wall, used = time.perf_counter() - t0, cpu() - c0
    conn.close()
    return {"n": n, "wall_s": wall, "cpu_s": used}


def run_consume_gen(pika: Any, url: str, queue: str, n: int, client: str) -> dict[str, Any]:
    conn = connect(pika, url)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=PREFETCH)
    count = 0
    t0, c0 = time.perf_counter(), cpu()
    for method, _properties, _body in ch.consume(queue):
        ch.basic_ack(method.delivery_tag)
        count += 1
        if count == n:
            break
    ch.cancel()
    wall, used = time.perf_counter() - t0, cpu() - c0
    conn.close()
    return {"n": n, "wall_s": wall, "cpu_s": used}


def run_rpc(pika: Any, url: str, queue: str, n: int, client: str) -> dict[str, Any]:
    responder = subprocess.Popen(
        [sys.executable, __file__, "--responder", client, "--url", url, "--queue", queue],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert responder.stdout is not None
        assert responder.stdout.readline().strip() == "ready"
        conn = connect(pika, url)
        ch = conn.channel()
        reply_queue = ch.queue_declare("", exclusive=True).method.queue
        state: dict[str, Any] = {"want": None, "reply": None}

        def on_reply(channel: Any, method: Any, properties: Any, body: bytes) -> None:
            if properties.correlation_id == state["want"]:
                state["reply"] = body

        ch.basic_consume(reply_queue, on_reply, auto_ack=True)
        latencies: list[float] = []
        c0 = cpu()
        for i in range(n + RPC_WARMUP):
            if i == RPC_WARMUP:
                c0 = cpu()
            corr = str(i)
            state["want"], state["reply"] = corr, None
            t = time.perf_counter()
            ch.basic_publish(
                "",
                queue,
                BODY,
                properties=pika.BasicProperties(reply_to=reply_queue, correlation_id=corr),
            )
            while state["reply"] is None:
                conn.process_data_events(time_limit=None)
            if i >= RPC_WARMUP:
                latencies.append(time.perf_counter() - t)
        used = cpu() - c0
        conn.close()
    finally:
        responder.terminate()
        responder.wait(10)
    return {
        "n": n,
        "wall_s": sum(latencies),
        "cpu_s": used,
        "p50_us": percentile(latencies, 50) * 1e6,
        "p99_us": percentile(latencies, 99) * 1e6,
    }


def responder_main(client: str, url: str, queue: str) -> None:
    pika = library(client)
    conn = connect(pika, url)
    ch = conn.channel()

    def on_request(channel: Any, method: Any, properties: Any, body: bytes) -> None:
        channel.basic_publish(
            "",
            properties.reply_to,
            body,
            properties=pika.BasicProperties(correlation_id=properties.correlation_id),
        )

    ch.basic_consume(queue, on_request, auto_ack=True)
    print("ready", flush=True)
    ch.start_consuming()


RUNNERS = {
    "publish": run_publish,
    "confirm": run_confirm,
    "batch": run_batch,
    "consume": run_consume,
    "consume-gen": run_consume_gen,
    "rpc": run_rpc,
}


def worker_main(scenario: str, client: str, url: str, queue: str, n: int) -> None:
    result = RUNNERS[scenario](library(client), url, queue, n, client)
    print(json.dumps(result), flush=True)


# -- the parent: queues, pre-loading, interleaving, the table -----------------------------------


def prepare(url: str, scenario: str, n: int) -> str:
    import pika

    queue = f"txamqp091.bench.blocking.{scenario}.{uuid.uuid4().hex[:8]}"
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.queue_declare(queue)
    if scenario.startswith("consume"):
        for _ in range(n):
            ch.basic_publish("", queue, BODY)
        while ch.queue_declare(queue, passive=True).method.message_count < n:
            time.sleep(0.01)
    conn.close()
    return queue


def cleanup(url: str, queue: str) -> None:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    conn.channel().queue_delete(queue)
    conn.close()


def run_one(url: str, scenario: str, client: str, n: int, timeout: float) -> dict[str, Any]:
    queue = prepare(url, scenario, n)
    try:
        out = subprocess.run(
            [
                *(sys.executable, __file__, "--worker", scenario, "--client", client),
                *("--url", url, "--queue", queue, "--n", str(n)),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    finally:
        cleanup(url, queue)
    if out.returncode != 0:
        raise RuntimeError(f"{scenario}/{client} failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["msgs_per_s"] = result["n"] / result["wall_s"]
    result["cpu_us_per_msg"] = result["cpu_s"] / result["n"] * 1e6
    return result


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--only", action="append", default=[])
    parser.add_argument("--client", action="append", default=[])
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--responder", help=argparse.SUPPRESS)
    parser.add_argument("--queue", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.client[0], args.url, args.queue, args.n)
        return 0
    if args.responder:
        responder_main(args.responder, args.url, args.queue)
        return 0
    only = [s for item in args.only for s in item.split(",")] or list(SCENARIOS)
    clients = args.client or list(CLIENTS)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for _ in range(args.repeats):
        for scenario in only:
            n = scaled(scenario, args.scale)
            for client in clients:
                if client not in SCENARIOS[scenario][2]:
                    continue
                run = run_one(args.url, scenario, client, n, args.timeout)
                results.setdefault(scenario, {}).setdefault(client, []).append(run)
    print(
        f"txamqp091.blocking vs pika BlockingConnection — scale {args.scale}, "
        f"{args.repeats} run(s), medians; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"{'scenario':<12} {'client':<10} {'msg/s':>10} {'CPU us/msg':>11} {'p50 us':>8} "
        f"{'p99 us':>8} {'vs pika':>8}"
    )
    table: dict[str, Any] = {}
    for scenario, by_client in results.items():
        pika_rate = median_of(by_client["pika"], "msgs_per_s") if "pika" in by_client else None
        for client, runs in by_client.items():
            rate = median_of(runs, "msgs_per_s")
            row = {
                "msgs_per_s": rate,
                "cpu_us_per_msg": median_of(runs, "cpu_us_per_msg"),
                "runs": runs,
            }
            p50 = p99 = ""
            if scenario == "rpc":
                row["p50_us"] = median_of(runs, "p50_us")
                row["p99_us"] = median_of(runs, "p99_us")
                p50, p99 = f"{row['p50_us']:.0f}", f"{row['p99_us']:.0f}"
            ratio = f"{rate / pika_rate:.2f}x" if pika_rate else "-"
            print(
                f"{scenario:<12} {client:<10} {rate:>10.0f} {row['cpu_us_per_msg']:>11.1f} "
                f"{p50:>8} {p99:>8} {ratio:>8}"
            )
            table.setdefault(scenario, {})[client] = row
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
