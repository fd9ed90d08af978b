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


def test_rpc_path_runs_on_tornado_too() -> None:
    harness = _harness()
    assert harness.run_tornado(50) > 0


def test_rpc_path_main_reports(capsys: object) -> None:
    harness = _harness()
    assert harness.main(["--calls", "20", "--repeats", "1", "--adapter", "both"]) == 0
    assert harness.main(["--calls", "20", "--profile", "--lines", "5", "--adapter", "both"]) == 0


def test_a_read_of_one_delivery_is_routed_without_dispatch_read() -> None:
    """ConnectionLogic routes a lone delivery itself when the runtime says dispatch_read
    would only dispatch it (Twisted's does), and through dispatch_read otherwise; the
    RPC goes on the same either way."""
    harness = _harness()
    rpc = harness.TwistedRPC()
    rpc.setup()
    rpc.start(4)
    protocol = rpc.protocol
    calls: list[int] = []
    real = protocol.dispatch_read

    def counting(dispatch: object, events: list[object]) -> None:
        calls.append(len(events))
        real(dispatch, events)  # type: ignore[arg-type]

    protocol.dispatch_read = counting  # type: ignore[method-assign]
    reads = rpc.reads(4)
    assert protocol.lone_delivery_dispatched_plainly
    for data in reads[:4]:
        rpc.receive(data)
    assert calls == [] and len(rpc.latencies) == 2
    protocol.lone_delivery_dispatched_plainly = False
    for data in reads[4:]:
        rpc.receive(data)
    assert calls == [1, 1, 1, 1] and len(rpc.latencies) == 4
    assert rpc.loop is not None and rpc.loop.called
