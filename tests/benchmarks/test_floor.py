"""``benchmarks/_floor.py``: the rpc scenario's reference rows.

Against the broker, with a few calls: both floors run the round trip on one connection
(channels 1 and 2, as the C program), time only the calls after the warm-up, and leave
no queue behind; through a client script's worker they give the row the scripts'
tables and ``compare.py`` read. No time is asserted beyond "positive".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest

from tests.benchmarks.support import BENCH, CountingMeter, bench_module, queue_exists
from tests.conftest import broker_address


@pytest.fixture
def floor() -> ModuleType:
    module: ModuleType = bench_module("_floor")
    return module


def test_rows_add_the_floors_to_rpc_only(floor: ModuleType) -> None:
    clients = ["txamqp091", "pika"]
    assert floor.rows("publish", clients, None, False) == clients
    assert floor.rows("rpc", clients, None, False) == [*clients, *floor.FLOORS]
    assert floor.rows("rpc", clients, None, False, ("twisted",)) == [
        *clients, "py-floor", "core-floor", "twisted-floor",
    ]  # fmt: skip
    assert floor.rows("rpc", clients, None, True) == clients
    assert floor.rows("rpc", clients, ["pika", "core-floor"], False) == [*clients, "core-floor"]
    with pytest.raises(ValueError, match="unknown floor"):
        floor.floor_rpc(
            "floor", host="h", port=1, user="u", password="p", queue="q", n=1, warmup=0,
            meter=CountingMeter(),
        )  # fmt: skip


@pytest.mark.broker
@pytest.mark.parametrize("client", ["py-floor", "core-floor"])  # the loop floors: below
def test_floor_runs_the_round_trip_and_cleans_up(floor: ModuleType, client: str) -> None:
    host, port = broker_address()
    queue = f"test.floor.{client}.{uuid.uuid4().hex[:8]}"
    meter = CountingMeter()
    lat = floor.floor_rpc(
        client, host=host, port=port, user="guest", password="guest", queue=queue,
        n=30, warmup=5, meter=meter, timeout=20.0,
    )  # fmt: skip
    assert len(lat) == 30 and all(t > 0 for t in lat)
    assert (meter.started, meter.stopped) == (1, 1)
    assert not queue_exists(queue)


@pytest.mark.broker
@pytest.mark.parametrize(
    ("script", "loop_floor"),
    [("twisted_client", "twisted-floor"), ("tornado_client", "asyncio-floor")],
)
def test_scripts_run_the_floors_as_rows(tmp_path: Path, script: str, loop_floor: str) -> None:
    """Both client scripts' rpc rows include the floors, run by the same worker code; each
    script's own loop floor runs its framework's loop in the worker (a reactor runs once
    per process, so not in this one) on the floors' connection, which must stay usable
    after it, since the queue is deleted through it (else the row is an error)."""
    out = tmp_path / "out.json"
    host, port = broker_address()
    args = [sys.executable, str(BENCH / f"{script}.py"), "--only", "rpc"]
    args += ["--client", "py-floor", "--client", "core-floor", "--client", loop_floor]
    args += ["--scale", "0.02"]
    args += ["--timeout", "60", "--host", host, "--port", str(port), "--json", str(out)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = json.loads(out.read_text())["runs"]
    assert [r["client"] for r in runs] == ["py-floor", "core-floor", loop_floor]
    for r in runs:
        assert "error" not in r
        assert r["n"] == 40 and r["p50_us"] > 0 and r["cpu_us_per_msg"] > 0


def test_worker_reports_a_failure_as_an_error(floor: ModuleType) -> None:
    """A broker that is not there is a row's error, as for the other clients."""
    a = argparse.Namespace(
        client="core-floor", host="127.0.0.1", port=1, user="guest", password="guest",
        queue="q", n=1, timeout=2.0,
    )  # fmt: skip
    result = floor.worker(a, CountingMeter(), lambda lat: {}, 0)
    assert "ConnectionRefusedError" in result["error"]
