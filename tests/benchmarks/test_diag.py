"""``benchmarks/_diag.py``: the figures taken around a worker's timed section.

They explain slow repeats (context switches, GC, the core's speed, the broker's
CPU); what is checked here is that each one counts what it says, never a timing.
"""

from __future__ import annotations

import gc
import importlib.util
import time
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def diag() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_diag", BENCH / "_diag.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_result_counts_what_happened_in_between(
    diag: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_GC_TIMING", "1")
    d = diag.Diagnostics()
    d.start()
    gc.collect()  # one full collection: generation 2 counts it
    time.sleep(0.01)  # blocks: at least one voluntary context switch
    d.stop()
    r = d.result(100)
    assert r["gc_collections"][2] >= 1
    assert r["gc_pause_s"] > 0
    assert r["ctx_voluntary"] >= 1
    assert r["ctx_involuntary"] >= 0
    assert r["speed_ns_before"] > 0 and r["speed_ns_after"] > 0
    assert r["epoch_start"] <= r["epoch_stop"]
    assert gc.callbacks.count(d._on_gc) == 0  # removed at stop


def test_gc_callback_only_when_asked(diag: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_GC_TIMING", raising=False)
    d = diag.Diagnostics()
    d.start()
    assert d._on_gc not in gc.callbacks
    d.stop()
    assert "gc_pause_s" not in d.result(1)


def test_nothing_to_say_before_a_stop(diag: ModuleType) -> None:
    d = diag.Diagnostics()
    assert d.result(1) == {}
    d.start()
    assert d.result(1) == {}


def test_broker_figures_follow_its_process(
    diag: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a broker pid the broker's CPU is read from /proc (here: this process's own)."""
    import os

    monkeypatch.setattr(diag, "broker_pid", lambda: os.getpid())
    d = diag.Diagnostics()
    d.start()
    end = time.thread_time() + 0.1
    while time.thread_time() < end:  # burn CPU the /proc counters will see
        pass
    d.stop()
    r = d.result(1)
    assert r["broker_cpu_us_per_msg"] > 0  # 0.1 s of CPU is ~10 clock ticks
    assert isinstance(r["broker_sched_cpus"], dict)
