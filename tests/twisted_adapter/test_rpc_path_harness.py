"""benchmarks/rpc_path.py, the broker-less RPC harness, still runs against this client.

It drives the Twisted adapter through the benchmark's RPC shape and checks the
writes itself (requests, replies, one write per half): a change that breaks that
shape makes it raise. No time is asserted.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HARNESS = Path(__file__).resolve().parents[2] / "benchmarks" / "rpc_path.py"


def _harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rpc_path_harness", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_rpc_path_runs_and_checks_its_writes() -> None:
    harness = _harness()
    assert harness.run_twisted(50) > 0


def test_rpc_path_main_reports(capsys: object) -> None:
    harness = _harness()
    assert harness.main(["--calls", "20", "--repeats", "1"]) == 0
    assert harness.main(["--calls", "20", "--profile", "--lines", "5"]) == 0
