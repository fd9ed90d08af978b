"""What a worker measures around its timed section, the same in both client scripts
(``twisted_client.py``, ``tornado_client.py``) and in ``rpc_timeline.py``: wall
clock, process CPU and minor faults, ``_diag.py``'s diagnostics, and the latency
percentiles of a run of round trips."""

from __future__ import annotations

import math
import resource
import statistics
import time
from typing import Any

import _diag


def cpu_split() -> tuple[float, float, int]:
    """The process's user and system CPU seconds and its minor page faults so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime, ru.ru_minflt


class Meter:
    """Wall clock and process CPU around the timed section (and cProfile, if asked)."""

    def __init__(self, profiler: Any = None) -> None:
        self.profiler = profiler
        self.t0 = self.t1 = 0.0
        self.diag = _diag.Diagnostics()

    def start(self) -> None:
        self.diag.start()
        self.user0, self.sys0, self.flt0 = cpu_split()
        self.t0 = time.perf_counter()
        if self.profiler is not None:
            self.profiler.enable()

    def stop(self) -> None:
        if self.profiler is not None:
            self.profiler.disable()
        self.t1 = time.perf_counter()
        self.user1, self.sys1, self.flt1 = cpu_split()
        self.diag.stop()

    def result(self, n: int, **extra: Any) -> dict[str, Any]:
        wall = self.t1 - self.t0
        user = self.user1 - self.user0
        sys_ = self.sys1 - self.sys0
        cpu = user + sys_
        out = {
            "n": n,
            "wall_s": wall,
            "cpu_s": cpu,
            "cpu_user_s": user,
            "cpu_sys_s": sys_,
            "minor_faults_per_msg": (self.flt1 - self.flt0) / n,
            "msgs_per_s": n / wall if wall > 0 else 0.0,
            "cpu_us_per_msg": cpu / n * 1e6,
        }
        out.update(self.diag.result(n))
        out.update(extra)
        return out


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


def latency(lat: list[float]) -> dict[str, float]:
    """p50, p99 and mean of round trips given in seconds, in µs."""
    s = sorted(lat)
    return {
        "p50_us": percentile(s, 50) * 1e6,
        "p99_us": percentile(s, 99) * 1e6,
        "mean_us": statistics.fmean(s) * 1e6,
    }
