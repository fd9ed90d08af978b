"""The benchmark scripts run their txamqp091 rows without the ``bench`` extra.

``benchmarks/tornado_client.py`` and ``benchmarks/twisted_client.py`` compare
txamqp091 with pika and aio-pika, which only the ``bench`` extra installs. Asking
for ``--client txamqp091`` alone must not need them: the third-party clients are
imported by their own workers only, and the untimed setup (pre-load, cleanup) falls
back to txamqp091's pika-compatible blocking adapter when pika is missing.

Each test runs the script in a fresh interpreter whose ``sitecustomize`` makes
pika and aio-pika unimportable (``sys.modules[name] = None``), as on a machine
without the extra; the workers it starts inherit that.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
BLOCKED = ("pika", "aio_pika")

#: Imported by the interpreter at start-up, in the parent and in every worker.
SITECUSTOMIZE = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # "import name" now raises ImportError
"""

#: Runs a script's main() with run_one() replaced, so that no broker is needed: what is
#: left is the parent's own imports and its table.
FAKE_RUN = """
import json, sys
sys.path.insert(0, {bench!r})
import {module} as m

def run_one(a, scenario, client, rep):
    return dict(scenario=scenario, client=client, repeat=rep, n=1, wall_s=1.0, cpu_s=0.0,
                msgs_per_s=1.0, cpu_us_per_msg=1.0, p50_us=1.0, p99_us=1.0, mean_us=1.0)

m.run_one = run_one
sys.exit(m.main(sys.argv[1:]))
"""


def _env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE.format(blocked=BLOCKED))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(site), str(ROOT), env.get("PYTHONPATH", "")) if p
    )
    return env


def _run(args: list[str], tmp_path: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_blocker_works(tmp_path: Path) -> None:
    """The premise: under the test's sitecustomize pika and aio-pika cannot be imported."""
    proc = _run(["-c", "import aio_pika"], tmp_path, 60)
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr or "ModuleNotFoundError" in proc.stderr


@pytest.mark.parametrize(
    ("module", "only"),
    [("tornado_client", "rpc"), ("twisted_client", "confirm")],
)
def test_parent_imports_no_other_client(tmp_path: Path, module: str, only: str) -> None:
    """main() with --client txamqp091 runs to its table without pika or aio-pika."""
    out = tmp_path / "out.json"
    script = FAKE_RUN.format(bench=str(BENCH), module=module)
    args = ["--only", only, "--client", "txamqp091", "--json", str(out)]
    proc = _run(["-c", script, *args], tmp_path, 120)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(out.read_text())["meta"]
    assert meta["txamqp091"]
    # Versions are read from the installed metadata, not by importing the packages.
    assert isinstance(meta["pika"], str)


@pytest.mark.broker
@pytest.mark.parametrize("module", ["tornado_client", "twisted_client"])
def test_txamqp091_rows_run_without_the_bench_extra(tmp_path: Path, module: str) -> None:
    """A real (tiny) consume run: pre-load and cleanup in the parent, the txamqp091
    worker in a child, none of them able to import pika or aio-pika."""
    out = tmp_path / "out.json"
    args = [str(BENCH / f"{module}.py"), "--only", "consume", "--client", "txamqp091"]
    args += ["--scale", "0.005", "--timeout", "60", "--json", str(out)]
    if module == "twisted_client":
        args.append("--no-floor")
    proc = _run(args, tmp_path, 180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = json.loads(out.read_text())["runs"]
    assert [(r["scenario"], r["client"]) for r in runs] == [("consume", "txamqp091")]
    assert "error" not in runs[0]
    assert runs[0]["n"] == 500
