"""The C ceiling: build and run ``../shared/bench/c-ceiling/amqp_bench.c`` (rabbitmq-c).

It is what the broker allows when the client costs almost nothing, the
reference row of ``compare.py``. The program is built into ``benchmarks/_build/``
(never into ``../shared``, which is read-only in CI) with::

    cc -O2 -o benchmarks/_build/amqp_bench ../shared/bench/c-ceiling/amqp_bench.c -lrabbitmq

which needs ``librabbitmq-dev``: when its headers are missing, :func:`build`
installs it with ``apt-get`` if it runs as root on Debian, and otherwise returns
None (and says why), so the comparison still runs without the row.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUILD = HERE / "_build"
BINARY = BUILD / "amqp_bench"


def source() -> Path | None:
    """amqp_bench.c: $TXAMQP091_C_CEILING_SRC, ../shared next to the checkout, or /work/shared."""
    candidates = [
        os.environ.get("TXAMQP091_C_CEILING_SRC", ""),
        str(ROOT.parent / "shared" / "bench" / "c-ceiling" / "amqp_bench.c"),
        "/work/shared/bench/c-ceiling/amqp_bench.c",
    ]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    return None


def build() -> tuple[Path | None, str]:
    """The built program (rebuilt when its source is newer), or None and the reason."""
    src = source()
    if src is None:
        return None, "amqp_bench.c not found (set TXAMQP091_C_CEILING_SRC)"
    if BINARY.exists() and BINARY.stat().st_mtime >= src.stat().st_mtime:
        return BINARY, "cached"
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None, "no C compiler"
    BUILD.mkdir(parents=True, exist_ok=True)
    command = [cc, "-O2", "-o", str(BINARY), str(src), "-lrabbitmq"]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode and install_librabbitmq():
        proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode:
        return None, f"build failed (apt-get install librabbitmq-dev?): {proc.stderr[-500:]}"
    return BINARY, "built"


def install_librabbitmq() -> bool:
    """Install rabbitmq-c's headers with apt-get, as the C ceiling's README says, when
    they are missing and this runs as root on Debian (scripts/ensure-broker installs
    RabbitMQ the same way); whether it did. Opt out with TXAMQP091_NO_APT=1."""
    if Path("/usr/include/amqp.h").exists() or os.environ.get("TXAMQP091_NO_APT") == "1":
        return False
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "librabbitmq-dev"],
    ):
        if subprocess.run(command, capture_output=True, env=env, timeout=600).returncode:
            return False
    return True


def broker_pid() -> int | None:
    """The local broker's beam.smp, for the program's broker-CPU figure (optional)."""
    try:
        out = subprocess.run(["pidof", "beam.smp"], capture_output=True, text=True).stdout.split()
    except OSError:
        return None
    return int(out[0]) if len(out) == 1 else None


def run(
    binary: Path,
    scenario: str,
    queue: str,
    n: int,
    *,
    size: int = 64,
    window: int = 1000,
    prefetch: int = 1000,
    reply_queue: str | None = None,
    warmup: int = 100,
    timeout: float = 180.0,
    host: str = "127.0.0.1",
    port: int = 5672,
    user: str = "guest",
    password: str = "guest",
) -> dict[str, Any]:
    """One run; the program's JSON plus msgs_per_s, cpu_us_per_msg and, for rpc, p50/p99."""
    cmd = [
        str(binary), scenario, "-q", queue, "-n", str(n), "-s", str(size),
        "-W", str(window), "-P", str(prefetch), "-m", str(warmup), "-t", str(int(timeout)),
        "-H", host, "-p", str(port), "-u", user, "-w", password,
    ]  # fmt: skip
    if reply_queue:
        cmd += ["-r", reply_queue]
    pid = broker_pid()
    if pid:
        cmd += ["-b", str(pid)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30)
        ended = time.time()
    except subprocess.TimeoutExpired:
        return {"error": f"amqp_bench {scenario} killed after {timeout + 30} s"}
    try:
        out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"amqp_bench exited {proc.returncode}: {proc.stderr[-500:]}"}
    if not out.get("ok"):
        return {"error": out.get("error", "failed")}
    if "wall_s" not in out:  # fill: untimed
        return out
    wall = out["wall_s"]
    cpu = out["cpu_user_s"] + out["cpu_sys_s"]
    result: dict[str, Any] = {
        "n": n,
        "wall_s": wall,
        "cpu_s": cpu,
        "msgs_per_s": n / wall if wall > 0 else 0.0,
        "cpu_us_per_msg": cpu / n * 1e6,
        # The timed section in time.time(), as the Python workers give it; approximate: the
        # program's exit (closing its connection) falls between the end of it and `ended`.
        "epoch_start": ended - wall,
        "epoch_stop": ended,
    }
    if out.get("broker_cpu_s") is not None:
        result["broker_cpu_us_per_msg"] = out["broker_cpu_s"] / n * 1e6
    if size >= 1 << 20:
        result["mb_per_s"] = n * size / 1e6 / wall
    lat = sorted(out.get("latencies_ns") or [])
    if lat:
        result["p50_us"] = lat[len(lat) // 2] / 1e3
        result["p99_us"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1e3
    return result
