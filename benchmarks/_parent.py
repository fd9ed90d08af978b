"""What both client scripts' parents use to set up and describe a run without importing
the other clients: they run without the ``bench`` extra when only txamqp091 is asked for."""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from _floor import FLOORS
from _rpc import BODY_64


def setup_client() -> Any:
    """pika's blocking adapter for the untimed setup (pre-load, cleanup), or, when pika is
    not installed (no ``bench`` extra), txamqp091's pika-compatible one, so that the
    txamqp091 rows run without the other clients' packages. pika comes first: with it
    installed the setup is what it always was, and no txamqp091 loop thread is left
    polling in the parent while workers are timed."""
    try:
        import pika
    except ImportError:
        from txamqp091 import blocking as pika
    return pika


def installed(distribution: str) -> str:
    """The version of ``distribution`` without importing it, or ``"absent"``."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"


def add_broker_arguments(parser: Any) -> None:
    """``--host``, ``--port``, ``--user``, ``--password``: the broker every script talks
    to, defaulting to ``AMQP_HOST`` etc., else the local guest broker."""
    parser.add_argument("--host", default=os.environ.get("AMQP_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("AMQP_PORT", "5672")))
    parser.add_argument("--user", default=os.environ.get("AMQP_USER", "guest"))
    parser.add_argument("--password", default=os.environ.get("AMQP_PASSWORD", "guest"))


def source_state(root: Path) -> dict[str, Any]:
    """Which txamqp091 code was measured: git HEAD, dirty flag, digest of the package
    sources, of the checkout at ``root`` (this one, or compare.py's --baseline)."""
    digest = hashlib.sha1()
    for path in sorted((root / "txamqp091").rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    state: dict[str, Any] = {"source_sha1": digest.hexdigest()[:12]}
    try:
        state["git_head"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "txamqp091"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
        state["git_dirty"] = bool(dirty)
    except OSError:
        pass
    return state


def worker(a: Any, root: Path, script: str) -> tuple[list[str], Path]:
    """The start of a worker's command line (interpreter, script) and the tree it runs
    in: this checkout's ``root``, or the one compare.py's --baseline names
    (``a.worker_root``, run by ``a.worker_python``, the same script name there)."""
    tree = Path(getattr(a, "worker_root", None) or root)
    python = getattr(a, "worker_python", None) or sys.executable
    return [python, str(tree / "benchmarks" / script)], tree


def parse_only(values: list[str] | None, scenarios: dict[str, tuple[str, int, str]]) -> list[str]:
    """The scenarios ``--only`` names (by name or number, comma-separated, repeatable),
    in the script's order; all of them when it names none."""
    if not values:
        return list(scenarios)
    by_number = {num: name for name, (num, _, _) in scenarios.items()}
    chosen = []
    for value in values:
        for item in value.split(","):
            item = item.strip()
            name = by_number.get(item, item)
            if name not in scenarios:
                raise SystemExit(f"unknown scenario {item!r}; choose from {', '.join(scenarios)}")
            if name not in chosen:
                chosen.append(name)
    return [s for s in scenarios if s in chosen]


def add_run_arguments(
    parser: Any,
    scenarios: dict[str, tuple[str, int, str]],
    clients: tuple[str, ...],
    loop: str,
    floor: str,
) -> None:
    """The options both client scripts take, and their workers' internal ones: ``loop``
    names the framework's turn ("reactor", "loop"), ``floor`` what its own floor row
    runs (see _floor.py)."""
    parser.add_argument(
        "--only",
        action="append",
        metavar="SCENARIO",
        help=f"run only these scenarios ({', '.join(scenarios)} or 1-5, 3b); repeatable",
    )
    parser.add_argument(
        "--client",
        choices=(*clients, *FLOORS),
        action="append",
        help=f"run only this client (repeatable; default: {', '.join(clients)})",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply message counts (default 1)"
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs per pair; the table shows medians"
    )
    parser.add_argument("--json", metavar="PATH", help="write every run and the medians as JSON")
    parser.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        help="seconds a worker may take before it is stopped (default 180)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=1000,
        help=f"publishes per {loop} turn in the 'publish' scenario (default 1000)",
    )
    parser.add_argument(
        "--rpc-responder",
        choices=("channel", "connection"),
        default="channel",
        help="rpc responder on another channel of the client's connection (default, as "
        "the C program does) or on a second connection",
    )
    add_idle_arguments(parser, "run", 60.0)
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help=f"skip the rpc scenario's reference rows (py-floor, core-floor: no {loop}; {floor})",
    )
    parser.add_argument("--profile", metavar="DIR", help="cProfile each worker into DIR/*.prof")
    add_broker_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true")
    # worker mode (internal)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--queue", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)


def add_idle_arguments(parser: Any, what: str, max_wait: float, why: str = "") -> None:
    """``--wait-idle`` and ``--wait-idle-max`` (see wait_for_idle): before each ``what``
    (a run, a row), wait at most ``max_wait`` s by default; ``why`` ends the help."""
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="PCT",
        help=f"before each {what} wait until the machine is PCT%% idle (0 = don't wait){why}",
    )
    parser.add_argument(
        "--wait-idle-max",
        type=float,
        default=max_wait,
        metavar="S",
        help=f"wait at most S seconds for --wait-idle, then run anyway (default {max_wait:g})",
    )


def print_run(
    rep: int, repeats: int, scenario: str, client: str, r: dict[str, Any], verbose: bool
) -> None:
    """One worker's result (or error) as it comes, on one line."""
    prefix = f"[{rep + 1}/{repeats}] {scenario:<10} {client:<9}"
    if "error" in r:
        err = r["error"].strip()
        print(f"{prefix} ERROR: {err.splitlines()[-1] if err else r['error']}", flush=True)
        if verbose:
            print(r["error"], r.get("stderr", ""), file=sys.stderr)
        return
    extra = ""
    if "p50_us" in r:
        extra = f"  p50 {r['p50_us']:.0f} µs  p99 {r['p99_us']:.0f} µs"
    if "mb_per_s" in r:
        extra = f"  {r['mb_per_s']:.0f} MB/s"
    print(
        f"{prefix} {r['msgs_per_s']:>10,.0f} msg/s  {r['cpu_us_per_msg']:6.2f} µs CPU/msg{extra}",
        flush=True,
    )


def setup_connection(a: Any, name: str) -> Any:
    """A blocking connection for the untimed setup (see setup_client), named ``name``."""
    pika = setup_client()
    return pika.BlockingConnection(
        pika.ConnectionParameters(
            host=a.host,
            port=a.port,
            credentials=pika.PlainCredentials(a.user, a.password),
            client_properties={"connection_name": name},
            blocked_connection_timeout=a.timeout,
            socket_timeout=30,
        )
    )


def preload(a: Any, queue: str, n: int, name: str) -> float:
    """Fill ``queue`` with ``n`` 64-byte messages (not timed); return seconds taken."""
    t0 = time.perf_counter()
    conn = setup_connection(a, name)
    try:
        ch = conn.channel()
        ch.queue_declare(queue)
        ch.queue_purge(queue)
        for _ in range(n):
            ch.basic_publish("", queue, BODY_64)
        deadline = time.monotonic() + a.timeout
        while ch.queue_declare(queue, passive=True).method.message_count < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"pre-load of {queue} did not reach {n} messages")
            conn.sleep(0.01)
    finally:
        conn.close()
    return time.perf_counter() - t0


def cleanup(a: Any, queues: list[str], name: str) -> None:
    """Delete ``queues``, best effort: a run that failed may have left any of them."""
    try:
        conn = setup_connection(a, name)
    except Exception as exc:
        print(f"  cleanup: cannot connect: {exc}", file=sys.stderr)
        return
    try:
        for q in queues:
            ch = conn.channel()
            try:
                ch.queue_delete(q)
            except Exception:  # a closed channel is fine
                pass
            if ch.is_open:
                ch.close()
    finally:
        if conn.is_open:
            conn.close()


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return idle, sum(fields)


def idle_percent(interval: float = 0.5) -> float | None:
    """Machine-wide idle CPU over ``interval`` seconds (Linux), or None."""
    try:
        i0, t0 = _cpu_times()
        time.sleep(interval)
        i1, t1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    return 100.0 * (i1 - i0) / max(1, t1 - t0)


def wait_for_idle(threshold: float, max_wait: float) -> float | None:
    """Wait (at most ``max_wait`` s) until the machine is at least ``threshold`` % idle."""
    deadline = time.monotonic() + max_wait
    while True:
        idle = idle_percent()
        if idle is None or idle >= threshold or time.monotonic() >= deadline:
            return idle


def fmt(v: Any, spec: str) -> str:
    """``v`` formatted with ``spec``, or ``-`` for a missing figure."""
    return "-" if v is None else format(v, spec)
