"""benchmarks/rpc_path.py, the broker-less RPC harness, still runs against this client.

It drives the Twisted adapter through the benchmark's RPC shape and checks the
writes itself (requests, replies, one write per half): a change that breaks that
shape makes it raise. No time is asserted.
"""

from __future__ import annotations

import importlib.util
import operator
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

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


def test_rpc_path_cold_times_only_the_reads_after_each_eviction(
    capsys: Any, monkeypatch: Any
) -> None:
    harness = _harness()
    evictor = harness.Evictor(64)
    copies: list[int] = []
    received: list[bytes] = []
    real = harness.time.perf_counter_ns

    class Counting(bytearray):
        def __setitem__(self, key: Any, value: Any) -> None:
            copies.append(len(received))  # the copy comes before its read
            super().__setitem__(key, value)

    evictor.target = Counting(len(evictor.source))
    clock = iter(range(0, 1000, 5))
    monkeypatch.setattr(harness.time, "perf_counter_ns", lambda: next(clock))
    spent = evictor.timed_feed(received.append, [b"a", b"b", b"c"])
    monkeypatch.setattr(harness.time, "perf_counter_ns", real)
    assert received == [b"a", b"b", b"c"] and copies == [0, 1, 2]
    assert spent == 3 * 5  # the reads only: one tick of the fake clock each
    assert harness.run_twisted(30, None, harness.Evictor(64)) > 0
    assert harness.run_tornado(30, None, harness.Evictor(64)) > 0
    args = ["--calls", "20", "--repeats", "1", "--adapter", "both", "--evict-kib", "64"]
    assert harness.main(args) == 0
    out = capsys.readouterr().out
    assert out.count("64 KiB evicted before each read") == 2


def test_a_read_of_one_delivery_is_routed_by_dispatch_delivery_not_dispatch_read() -> None:
    """ConnectionLogic hands a lone delivery to its channel through the runtime's
    dispatch_delivery (on Twisted the C operator.call where Python has it: no frame of
    its own), never through dispatch_read and _dispatch; a read of two goes through
    dispatch_read; the RPC goes on the same either way."""
    harness = _harness()
    rpc = harness.TwistedRPC()
    rpc.setup()
    rpc.start(4)
    protocol = rpc.protocol
    reads_seen: list[int] = []
    lone_seen: list[object] = []
    real_read = protocol.dispatch_read
    real_lone = protocol.dispatch_delivery

    def counting_read(dispatch: object, events: list[object]) -> None:
        reads_seen.append(len(events))
        real_read(dispatch, events)  # type: ignore[arg-type]

    def counting_lone(deliver: Any, message: object) -> None:
        lone_seen.append(message)
        real_lone(deliver, message)

    if sys.version_info >= (3, 11):
        assert type(protocol).dispatch_delivery is operator.call
    protocol.dispatch_read = counting_read  # type: ignore[method-assign]
    protocol.dispatch_delivery = counting_lone
    reads = rpc.reads(4)
    for data in reads[:4]:
        rpc.receive(data)
    assert reads_seen == [] and len(lone_seen) == 4 and len(rpc.latencies) == 2
    rpc.receive(reads[4] + reads[5])  # a request and its reply in one read
    assert reads_seen == [2] and len(lone_seen) == 4
    for data in reads[6:]:
        rpc.receive(data)
    assert len(lone_seen) == 6 and len(rpc.latencies) == 4
    assert rpc.loop is not None and rpc.loop.called
