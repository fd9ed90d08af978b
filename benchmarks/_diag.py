"""What else happened during a worker's timed section: for telling a slow repeat's cause.

The client scripts' ``Meter`` measures wall clock and process CPU. On a shared
2-core machine a repeat can be much slower than the next one for reasons that are
not the client's code; these figures, taken around the same timed section, say
which (all are reported in the worker's result; none is part of the table):

* ``ctx_voluntary`` / ``ctx_involuntary``: context switches of the process
  (``getrusage``): involuntary ones mean another runnable task took the core;
* ``gc_collections``: collections per generation (``gc.get_stats()`` deltas) and,
  with ``BENCH_GC_TIMING=1``, ``gc_pause_s``, the time spent in them
  (``gc.callbacks``; off by default so that the timed code is not changed);
* ``epoch_start`` / ``epoch_stop``: the timed section in ``time.time()``, to line a run
  up with samples taken outside it;
* ``cpu_first`` / ``cpu_last``: the core the process ran on at start and stop, and
  ``broker_sched_cpus``: the cores the broker's ``N_scheduler`` threads are bound to;
* ``broker_cpu_us_per_msg``: CPU the broker (``beam.smp``) used per message meanwhile;
* ``machine_busy_pct``: the whole machine's non-idle share of both cores
  (``/proc/stat``), from which the broker's and the client's own shares can be
  taken to see what the rest of the machine did.
* ``speed_ns_before`` / ``speed_ns_after``: the core's speed just before and just
  after the timed section, as CPU time (``time.thread_time``) per iteration of a
  fixed pure-Python loop, best of three. On this machine (a 2-vCPU VM) it is
  bimodal, ~25 or ~44 ns, in stretches of 0.1 s to seconds, per vCPU: the host
  slows the vCPU down, and the guest's CPU clocks count the slowdown as CPU time.

Linux only; every figure that cannot be read is left out.
"""

from __future__ import annotations

import gc
import os
import resource
import time
from typing import Any

CLOCK_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def broker_pid() -> int | None:
    """The one ``beam.smp`` process, found in /proc (no subprocess inside a worker)."""
    found = []
    try:
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/comm") as f:
                        if f.read().strip() == "beam.smp":
                            found.append(int(name))
                except OSError:
                    continue
    except OSError:
        return None
    return found[0] if len(found) == 1 else None


def _stat_fields(path: str) -> list[str]:
    with open(path) as f:
        text = f.read()
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on


def process_cpu_s(pid: int) -> float:
    fields = _stat_fields(f"/proc/{pid}/stat")
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK  # utime, stime


def current_cpu() -> int | None:
    try:
        return int(_stat_fields("/proc/self/stat")[36])  # field 39: processor
    except (OSError, ValueError, IndexError):
        return None


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


def scheduler_cpus(pid: int) -> dict[str, list[int]]:
    """The affinity of the broker's ``N_scheduler`` threads (bound schedulers, if any)."""
    out: dict[str, list[int]] = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
            if comm.endswith("_scheduler") and comm[0].isdigit():
                out[comm] = sorted(os.sched_getaffinity(int(tid)))
    except OSError:
        pass
    return out


SPEED_LOOP = 50_000


def speed_ns(tries: int = 3) -> float:
    """CPU ns per iteration of a fixed loop, best of ``tries`` (~1.3 ms each)."""
    best = float("inf")
    for _ in range(tries):
        t0 = time.thread_time()
        x = 0
        for i in range(SPEED_LOOP):
            x += i
        best = min(best, time.thread_time() - t0)
    return best / SPEED_LOOP * 1e9


class Diagnostics:
    """Snapshots taken just outside the timed section (``start`` before the clock starts,
    ``stop`` after it stops), so that reading /proc costs the measurement nothing."""

    def __init__(self) -> None:
        self.beam = broker_pid()
        self.gc_timing = os.environ.get("BENCH_GC_TIMING") == "1"
        self.gc_pause = 0.0
        self._gc_t0 = 0.0
        self.before: dict[str, Any] | None = None
        self.after: dict[str, Any] | None = None

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_t0 = time.perf_counter()
        else:
            self.gc_pause += time.perf_counter() - self._gc_t0

    def _snap(self) -> dict[str, Any]:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        snap: dict[str, Any] = {
            "nvcsw": ru.ru_nvcsw,
            "nivcsw": ru.ru_nivcsw,
            "gc": [s["collections"] for s in gc.get_stats()],
            "cpu": current_cpu(),
        }
        try:
            snap["machine"] = machine_ticks()
        except (OSError, ValueError):
            pass
        if self.beam is not None:
            try:
                snap["broker_cpu_s"] = process_cpu_s(self.beam)
            except (OSError, ValueError, IndexError):
                pass
        return snap

    def start(self) -> None:
        self.speed_before = speed_ns()
        self.before = self._snap()
        self.epoch_start = time.time()
        if self.gc_timing:
            gc.callbacks.append(self._on_gc)

    def stop(self) -> None:
        if self.gc_timing and self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        self.epoch_stop = time.time()
        self.after = self._snap()
        self.speed_after = speed_ns()

    def result(self, n: int) -> dict[str, Any]:
        b, a = self.before, self.after
        if a is None or b is None:  # not started and stopped: nothing to say
            return {}
        out: dict[str, Any] = {
            "ctx_voluntary": a["nvcsw"] - b["nvcsw"],
            "ctx_involuntary": a["nivcsw"] - b["nivcsw"],
            "gc_collections": [y - x for x, y in zip(b["gc"], a["gc"])],
            "cpu_first": b["cpu"],
            "cpu_last": a["cpu"],
            "speed_ns_before": self.speed_before,
            "speed_ns_after": self.speed_after,
            "epoch_start": self.epoch_start,
            "epoch_stop": self.epoch_stop,
        }
        if self.gc_timing:
            out["gc_pause_s"] = self.gc_pause
        if "machine" in a and "machine" in b:
            busy = a["machine"][0] - b["machine"][0]
            total = a["machine"][1] - b["machine"][1]
            if total > 0:
                out["machine_busy_pct"] = 100.0 * busy / total
        if "broker_cpu_s" in a and "broker_cpu_s" in b:
            out["broker_cpu_us_per_msg"] = (a["broker_cpu_s"] - b["broker_cpu_s"]) / n * 1e6
        if self.beam is not None:
            out["broker_sched_cpus"] = scheduler_cpus(self.beam)
        return out
