"""Sample each core's speed while a benchmark runs, to tell which runs a slow core hit.

On the 2-vCPU VM these benchmarks were tuned on, a core's speed is bimodal: a
fixed pure-Python loop costs ~25 or ~44 ns per iteration of *CPU* time, in
stretches of 0.1 s to seconds, per vCPU. The host slows the vCPU (the guest has
no PMU to see it) and the guest's clocks count the slow stretch as CPU time, so a
run that falls in one reports up to ~1.7x the CPU per message, and its latency
grows (the broker slows alike). It is one of two machine effects; the other, which
sets the C client's rpc p50 at ~230 or ~110 µs, is whether the vCPUs halt when idle
(see benchmarks/README.rst, compare.py).

``compare.py --speed-probe`` starts one probe process per core (this file run as
a script: ``_speedprobe.py CPU INTERVAL_S OUT``), pinned to it, that times the loop
every ``INTERVAL_S`` and appends ``epoch ns_per_iteration`` lines to ``OUT``. A
sample costs ~0.6 ms of CPU (1% of a core at the default 0.05 s); the probes run at
normal priority so that a sample is taken while the benchmark runs, not only when
the core is idle. :func:`slow_share` then says, for any (start, stop) window, which
share of the samples taken in it found the core slow.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

LOOP = 25_000
#: A sample slower than this multiple of the probe's fast speed counts as slow (the
#: modes are ~1.75x apart; their midpoint).
SLOW_FACTOR = 1.35


def sample() -> float:
    """CPU ns per iteration of a fixed loop (``time.thread_time``: preemption does not count)."""
    t0 = time.thread_time()
    x = 0
    for i in range(LOOP):
        x += i
    return (time.thread_time() - t0) / LOOP * 1e9


def probe(cpu: int, interval: float, out: Path) -> None:
    """Sample forever (until killed), pinned to ``cpu``, one line per sample, flushed."""
    os.sched_setaffinity(0, {cpu})
    with out.open("a", buffering=1) as f:
        while True:
            f.write(f"{time.time():.4f} {sample():.2f}\n")
            time.sleep(interval)


def read(path: Path) -> list[tuple[float, float]]:
    """A probe file's (epoch, ns) samples; a torn last line is skipped."""
    samples: list[tuple[float, float]] = []
    try:
        text = path.read_text()
    except OSError:
        return samples
    lines = text.split("\n")[:-1]  # the last piece is empty, or a line still being written
    for line in lines:
        parts = line.split()
        if len(parts) == 2:
            try:
                samples.append((float(parts[0]), float(parts[1])))
            except ValueError:
                continue
    return samples


def fast_speed(samples: list[tuple[float, float]]) -> float | None:
    """The fast mode's speed: the 10th percentile of all samples (robust to a few very fast
    outliers and to a core that was slow most of the time)."""
    values = sorted(v for _, v in samples)
    return values[len(values) // 10] if values else None


def slow_share(
    samples: list[tuple[float, float]], start: float, stop: float, fast: float | None
) -> float | None:
    """Share of the samples in [start, stop] slower than ``SLOW_FACTOR`` x ``fast``
    (None when no sample fell in the window)."""
    if fast is None:
        return None
    inside = [v for t, v in samples if start <= t <= stop]
    if not inside:
        return None
    return sum(v > SLOW_FACTOR * fast for v in inside) / len(inside)


if __name__ == "__main__":
    probe(int(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3]))
