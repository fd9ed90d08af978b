"""Every client in one run: the C ceiling, pika (Twisted, Tornado), aio-pika, txamqp091.

One table per run with, for each scenario, each client's median rate, client
CPU µs per message, and its ratio to the C ceiling (rate / C rate; for rpc,
p50 / C p50). Clients alternate within each repeat, in a rotating order, so
that the machine's noise hits all alike; quote the medians.

A repeat of one scenario is a *round*: its rows run back to back, the order
rotated by one each round (and by scenario), so that each row takes every place
in turn. Besides the ratio of medians (a row's median over C's median, which may
come from different rounds), the table gives the *paired* estimator: per round,
the row's figure over the C ceiling's figure of that same round, then the median
(and the range) of those per-round ratios. On this machine the broker switches
between two latency modes from one round to the next, and a pair taken inside
one round sees the same mode on both sides, so the paired ratio is the steadier
of the two. ``--json`` holds every round (its order and per-row ratios).

Last, each of issue 13's targets the run measured (rates >= 90% of C, rpc p50 <=
1.2x C, CPU per message <= 1/3 of pika's), judged on both readings: met, MISSED,
or split when the two disagree (see README.rst).

Rows:

* ``c-ceiling``: rabbitmq-c, ``../shared/bench/c-ceiling/amqp_bench.c``, built into
  ``benchmarks/_build/`` (see ``_cceiling.py``; needs ``librabbitmq-dev``);
* ``pika-twisted``, ``txamqp091-twisted``: ``twisted_client.py``'s workers;
* ``pika-tornado``, ``aio-pika``, ``txamqp091-tornado``: ``tornado_client.py``'s workers;
* ``py-floor``, ``core-floor``, ``twisted-floor``, ``asyncio-floor`` (rpc only): the
  reference rows of ``_floor.py``, the C program's round trip in plain Python, on
  txamqp091's sans-IO core with no event loop, and in plain Python on each framework's
  loop with no txamqp091; every rpc round runs them (``--no-floor`` leaves them out,
  ``--rows`` may name one), so that each rpc table shows what the broker, the kernel,
  Python and each framework allow.

Scenarios are those of both scripts (64 B bodies, window 1,000, prefetch
1,000, one ack per message). ``large`` differs between rows: the Python
clients publish 1 MiB bodies with confirms (window 50) and consume them back;
the C program only publishes them, so its MB/s is an upper bound.

Usage::

    .venv/bin/python benchmarks/compare.py --repeats 3              # ~15 min
    .venv/bin/python benchmarks/compare.py --scale 0.3 --only publish,rpc
    .venv/bin/python benchmarks/compare.py --rows c-ceiling,txamqp091-twisted --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _cceiling  # noqa: E402
import _floor  # noqa: E402
import _speedprobe  # noqa: E402
import tornado_client  # noqa: E402
import twisted_client  # noqa: E402
from _parent import (  # noqa: E402
    add_broker_arguments,
    add_idle_arguments,
    cleanup,
    idle_percent,
    setup_connection,
    wait_for_idle,
)

SCENARIOS = ("publish", "confirm", "consume", "rpc", "large")
#: row -> (module or None for C, client name inside that module)
ROWS: dict[str, tuple[Any, str]] = {
    "c-ceiling": (None, "c"),
    "pika-twisted": (twisted_client, "pika"),
    "pika-tornado": (tornado_client, "pika"),
    "aio-pika": (tornado_client, "aiopika"),
    "txamqp091-twisted": (twisted_client, "txamqp091"),
    "txamqp091-tornado": (tornado_client, "txamqp091"),
    # rpc only: the reference rows (_floor.py); each brings its own loop, if any, so either
    # script runs them: each loop floor by the script of its framework.
    "py-floor": (twisted_client, "py-floor"),
    "core-floor": (twisted_client, "core-floor"),
    "twisted-floor": (twisted_client, "twisted-floor"),
    "asyncio-floor": (tornado_client, "asyncio-floor"),
}
#: The suffix of a row run by another checkout's workers (--baseline): "ROW@baseline".
BASELINE = "@baseline"


def base_row(row: str) -> str:
    """The row of ROWS that ``row`` is, or is the --baseline run of."""
    return row.removesuffix(BASELINE)


C_SCENARIO = {
    "publish": "publish",
    "confirm": "publish_confirm",
    "consume": "consume",
    "rpc": "rpc",
    "large": "large",
}
#: The rows that only the rpc scenario runs.
FLOOR_ROWS = _floor.FLOORS
KEYS = ("msgs_per_s", "cpu_us_per_msg", "p50_us", "p99_us", "mb_per_s", "broker_cpu_us_per_msg")


def namespace(a: argparse.Namespace) -> argparse.Namespace:
    """What the scripts' run_one() reads from their own command line."""
    return argparse.Namespace(
        scale=a.scale,
        timeout=a.timeout,
        batch=1000,
        rpc_responder="channel",
        host=a.host,
        port=a.port,
        user=a.user,
        password=a.password,
        profile=None,
        wait_idle=a.wait_idle,
        wait_idle_max=a.wait_idle_max,
        verbose=False,
    )


def run_c(a: argparse.Namespace, binary: Path, scenario: str) -> dict[str, Any]:
    ns = namespace(a)
    n = twisted_client.scaled(scenario, a.scale)
    tag = uuid.uuid4().hex[:8]
    queue = f"bench.c.{scenario}.{tag}"
    reply = f"bench.c.reply.{tag}"
    queues = [queue, reply] if scenario == "rpc" else [queue]
    common = dict(timeout=a.timeout, host=a.host, port=a.port, user=a.user, password=a.password)
    try:
        conn = setup_connection(ns, twisted_client.SETUP_NAME)
        try:
            ch = conn.channel()
            for q in queues:
                ch.queue_declare(q)
        finally:
            conn.close()
        if scenario == "consume":
            fill = _cceiling.run(binary, "fill", queue, n, **common)
            if "error" in fill:
                return fill
        size = 1 << 20 if scenario == "large" else 64
        return _cceiling.run(
            binary,
            C_SCENARIO[scenario],
            queue,
            n,
            size=size,
            reply_queue=reply if scenario == "rpc" else None,
            **common,
        )
    finally:
        cleanup(ns, queues, twisted_client.SETUP_NAME)


def baseline_namespace(a: argparse.Namespace) -> argparse.Namespace:
    """namespace(a) for a ROW@baseline row: the workers of the --baseline checkout, run
    by its own .venv's interpreter in its own tree."""
    ns = namespace(a)
    root = Path(a.baseline).resolve()
    ns.worker_root = str(root)
    ns.worker_python = str(root / ".venv" / "bin" / "python")
    return ns


def run_row(a: argparse.Namespace, binary: Path | None, row: str, scenario: str, rep: int) -> Any:
    module, client = ROWS[base_row(row)]
    load = os.getloadavg()[0]
    started = time.monotonic()
    epoch = time.time()
    try:
        if module is None:
            if binary is None:
                return None
            # The machine's idle share just before, as the Python rows' run_one() takes it:
            # ~100% means a quiet machine (C's slow rpc mode, idle vCPUs halt), ~50% or less
            # that something else keeps a core busy.
            idle = wait_for_idle(a.wait_idle, a.wait_idle_max) if a.wait_idle else idle_percent()
            result = run_c(a, binary, scenario)
            result["idle_pct_before"] = idle
        else:
            ns = baseline_namespace(a) if row.endswith(BASELINE) else namespace(a)
            result = module.run_one(ns, scenario, client, rep)
    except Exception as exc:  # reported in the table, the other rows still run
        result = {"error": f"{type(exc).__name__}: {exc}"}
    result.update(row=row, scenario=scenario, repeat=rep, loadavg_1m=load)
    result["elapsed_s"] = time.monotonic() - started
    # The whole row (setup, run, cleanup) in time.time(), to line up with outside samples;
    # the Python rows' workers also give their timed section's (epoch_start, epoch_stop).
    result["row_epoch"] = (epoch, time.time())
    return result


#: The figure each scenario's ratio to C is taken of (msgs_per_s unless named here).
FIGURE = {"rpc": "p50_us", "large": "mb_per_s"}


def figure_key(scenario: str) -> str:
    return FIGURE.get(scenario, "msgs_per_s")


def ratio_of(over: dict[str, Any], under: dict[str, Any], key: str) -> float | None:
    """``over[key] / under[key]`` (two rows' medians, or runs), None when either is
    missing or zero."""
    a, b = over.get(key), under.get(key)
    return a / b if a and b else None


def rounds(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every (repeat, scenario) round: its row order and, per row, the figure, the CPU
    per message and both as ratios to the C ceiling's run of the same round (absent
    when C failed or did not run, or the row failed)."""
    by_round: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for r in runs:
        by_round.setdefault((r["repeat"], r["scenario"]), []).append(r)
    out = []
    for (rep, scenario), members in by_round.items():
        key = figure_key(scenario)
        c = next((r for r in members if r["row"] == "c-ceiling" and "error" not in r), None)
        rows: dict[str, dict[str, Any]] = {}
        for r in members:
            if "error" in r:
                rows[r["row"]] = {"error": r["error"][:200]}
                continue
            entry: dict[str, Any] = {
                key: r.get(key),
                "cpu_us_per_msg": r.get("cpu_us_per_msg"),
            }
            if c is not None and r.get(key) and c.get(key):
                entry["ratio_to_c"] = r[key] / c[key]
                if scenario == "rpc":
                    entry["diff_to_c_us"] = r[key] - c[key]
            if c is not None and r.get("cpu_us_per_msg") and c.get("cpu_us_per_msg"):
                entry["cpu_ratio_to_c"] = r["cpu_us_per_msg"] / c["cpu_us_per_msg"]
            if "slow_share" in r:
                entry["slow_share"] = r["slow_share"]
            if r.get("idle_pct_before") is not None:
                entry["idle_pct_before"] = r["idle_pct_before"]
            rows[r["row"]] = entry
        out.append(
            {
                "repeat": rep,
                "scenario": scenario,
                "figure": key,
                "order": [r["row"] for r in members],
                "rows": rows,
            }
        )
    return out


def paired(round_list: list[dict[str, Any]], row: str, scenario: str) -> dict[str, Any]:
    """Median and range of ``row``'s per-round ratios to C (figure and CPU) in ``scenario``."""
    out: dict[str, Any] = {}
    for name in ("ratio_to_c", "cpu_ratio_to_c", "diff_to_c_us"):
        values = [
            rd["rows"][row][name]
            for rd in round_list
            if rd["scenario"] == scenario and name in rd["rows"].get(row, {})
        ]
        if values:
            out[name + "_per_round"] = values
            out[name + "_median"] = statistics.median(values)
    return out


def medians(runs: list[dict[str, Any]], row: str, scenario: str) -> dict[str, Any]:
    ok = [r for r in runs if r["row"] == row and r["scenario"] == scenario and "error" not in r]
    out: dict[str, Any] = {"runs": len(ok)}
    for key in KEYS:
        values = [r[key] for r in ok if key in r]
        if values:
            out[key] = statistics.median(values)
    errors = [
        r["error"] for r in runs if r["row"] == row and r["scenario"] == scenario and "error" in r
    ]
    if errors:
        out["errors"] = errors
    return out


def spread(values: list[float]) -> dict[str, Any]:
    """The median, range and count of per-round values (one row's ratios to a reference)."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "rounds": len(values),
    }


def spread_cell(v: dict[str, Any] | None, median: str, bounds: str, unit: str = "x") -> str:
    """A :func:`spread` as a report cell, "median (min-max)", or "-" when it is missing."""
    if v is None:
        return "-"
    return f"{v['median']:{median}}{unit} ({v['min']:{bounds}}-{v['max']:{bounds}})"


def against_baseline(round_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per scenario and txamqp091 row that ran with its --baseline twin: the median and
    range of the same-round ratios this / baseline of the scenario's figure ("ratio")
    and of the CPU per message ("cpu"); rpc p50 and CPU: below 1 is better, rates:
    above 1."""
    found: dict[tuple[str, str], dict[str, list[float]]] = {}
    for rd in round_list:
        for row, entry in rd["rows"].items():
            twin = rd["rows"].get(row + BASELINE)
            if row.endswith(BASELINE) or twin is None:
                continue
            ratios = found.setdefault((rd["scenario"], row), {"ratio": [], "cpu": []})
            for name, key in (("ratio", rd["figure"]), ("cpu", "cpu_us_per_msg")):
                value = ratio_of(entry, twin, key)
                if value is not None:
                    ratios[name].append(value)
    out = []
    for (scenario, row), ratios in found.items():
        item: dict[str, Any] = {"scenario": scenario, "row": row, "figure": figure_key(scenario)}
        for name, values in ratios.items():
            if values:
                item[name] = spread(values)
        out.append(item)
    return out


#: Each adapter row's framework floor (_floor.py): the same round trip on the same loop
#: with no txamqp091 code, what any client on that framework pays.
ADAPTER_FLOOR = {"txamqp091-twisted": "twisted-floor", "txamqp091-tornado": "asyncio-floor"}


def against_floor(round_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per rpc adapter row (and its --baseline twin) that ran in a round with its
    framework's floor: the median and range over those rounds of its p50 / the floor's
    ("ratio"), its p50 - the floor's in µs ("diff") and its CPU per call / the floor's
    ("cpu"); with the floor's own p50 / C ("floor_to_c"). The issue's rpc target is a
    ratio to C, which the floor alone may not meet on a slow or busy machine: this is
    the part of the round trip that txamqp091's code adds."""
    found: dict[str, dict[str, list[float]]] = {}
    for rd in round_list:
        if rd["scenario"] != "rpc":
            continue
        for row, entry in rd["rows"].items():
            floor = rd["rows"].get(ADAPTER_FLOOR.get(base_row(row), ""))
            if floor is None or "error" in entry or "error" in floor:
                continue
            values = found.setdefault(row, {"ratio": [], "diff": [], "cpu": [], "floor_to_c": []})
            p50, floor_p50 = entry.get("p50_us"), floor.get("p50_us")
            for name, value in (
                ("ratio", ratio_of(entry, floor, "p50_us")),
                ("diff", None if p50 is None or floor_p50 is None else p50 - floor_p50),
                ("cpu", ratio_of(entry, floor, "cpu_us_per_msg")),
                ("floor_to_c", floor.get("ratio_to_c")),
            ):
                if value is not None:
                    values[name].append(value)
    out = []
    for row, values in found.items():
        item: dict[str, Any] = {"row": row, "floor": ADAPTER_FLOOR[base_row(row)]}
        for name, got in values.items():
            if got:
                item[name] = spread(got)
        out.append(item)
    return out


def floor_text(found: list[dict[str, Any]]) -> str:
    if not found:
        return ""
    lines = [
        "\nrpc against the framework floors: median (range) over the rounds of the row / its "
        "floor in the same round"
    ]
    for item in found:
        cells = {}
        for name, spec in (
            ("ratio", ".3f"),
            ("diff", ".0f"),
            ("cpu", ".3f"),
            ("floor_to_c", ".2f"),
        ):
            unit = " µs" if name == "diff" else "x"
            cells[name] = spread_cell(item.get(name), spec, spec, unit)
        lines.append(
            f"  {item['row']:<19} / {item['floor']:<14} p50 {cells['ratio']:<22} "
            f"p50 - floor {cells['diff']:<18} CPU/call {cells['cpu']:<22} "
            f"floor p50 / C {cells['floor_to_c']}"
        )
    return "\n".join(lines)


def baseline_text(found: list[dict[str, Any]], baseline: str) -> str:
    if not found:
        return ""
    lines = [
        f"\nagainst the baseline ({baseline}): median (range) over the rounds of this / "
        "baseline in the same round"
    ]
    for item in found:
        cells = []
        for name in ("ratio", "cpu"):
            cells.append(spread_cell(item.get(name), ".3f", ".2f"))
        label = "p50" if item["figure"] == "p50_us" else item["figure"]
        lines.append(
            f"  {item['scenario']:<8} {item['row']:<19} {label} {cells[0]:<22} CPU/msg {cells[1]}"
        )
    return "\n".join(lines)


def fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def paired_cells(scenario: str, row: str, p: dict[str, Any]) -> str:
    """The 'paired' and 'paired range' cells: the median of the per-round ratios to C
    and their min-max, as x for rpc and % of C for the rates; for rpc also the median
    of the per-round differences p50 - C's p50 in µs, which moves less than the ratio
    when C's own p50 switches between this machine's two modes."""
    values = p.get("ratio_to_c_per_round")
    if row == "c-ceiling" or not values:
        return f" {'-':>8} {'-':>13}" + (f" {'-':>10}" if scenario == "rpc" else "")
    lo, hi, med = min(values), max(values), p["ratio_to_c_median"]
    if scenario == "rpc":
        diff = fmt(p.get("diff_to_c_us_median"), "10.0f")
        return f" {med:7.2f}x {f'{lo:.2f}-{hi:.2f}x':>13} {diff:>10}"
    return f" {med * 100:7.0f}% {f'{lo * 100:.0f}-{hi * 100:.0f}%':>13}"


def table(
    summary: dict[str, dict[str, dict[str, Any]]], rows: list[str], scenarios: list[str]
) -> str:
    lines = []
    w = max([19] + [len(row) for row in rows])  # ROW@baseline rows are longer
    for scenario in scenarios:
        c = summary[scenario].get("c-ceiling", {})
        lines.append(f"\n{scenario}")
        if scenario == "rpc":
            head = (
                f"  {'client':<{w}} {'p50 µs':>8} {'p99 µs':>8} {'CPU µs/call':>12} {'p50 / C':>8}"
            )
        elif scenario == "large":
            head = f"  {'client':<{w}} {'MB/s':>8} {'msg/s':>8} {'CPU µs/msg':>12} {'of C':>8}"
        else:
            head = f"  {'client':<{w}} {'msg/s':>8} {'':>8} {'CPU µs/msg':>12} {'of C':>8}"
        head += f" {'CPU vs C':>9} {'runs':>5} {'paired':>8} {'paired range':>13}"
        lines.append(head + (f" {'p50 - C µs':>10}" if scenario == "rpc" else ""))
        for row in rows:
            if row not in summary[scenario]:
                continue  # not one of this scenario's rows (the floors outside rpc)
            m = summary[scenario][row]
            if not m.get("runs"):
                err = (m or {}).get("errors", ["not run"])[0]
                lines.append(f"  {row:<{w}} {'failed: ' + str(err)[:70]}")
                continue
            cpu = m.get("cpu_us_per_msg")
            cpu_ratio = ratio_of(m, c, "cpu_us_per_msg")
            ratio = ratio_of(m, c, figure_key(scenario))
            if scenario == "rpc":
                first, second = fmt(m.get("p50_us"), "8.0f"), fmt(m.get("p99_us"), "8.0f")
                ratio_s = fmt(ratio, "7.2f") + "x" if ratio else "-"
            elif scenario == "large":
                first, second = fmt(m.get("mb_per_s"), "8.0f"), fmt(m.get("msgs_per_s"), "8.0f")
                ratio_s = fmt(ratio * 100 if ratio else None, "7.0f") + "%"
            else:
                first, second = fmt(m.get("msgs_per_s"), "8.0f"), ""
                ratio_s = fmt(ratio * 100 if ratio else None, "7.0f") + "%"
            lines.append(
                f"  {row:<{w}} {first:>8} {second:>8} {fmt(cpu, '12.2f')} {ratio_s:>8} "
                f"{fmt(cpu_ratio, '8.1f') + 'x' if cpu_ratio else '-':>9} {m['runs']:>5}"
                + paired_cells(scenario, row, m.get("paired", {}))
            )
    return "\n".join(lines)


#: Issue 13's targets, per adapter row: the rate scenarios' share of C's rate (at least),
#: rpc's p50 over C's (at most), and the CPU per message of the same framework's pika
#: row over ours (at least). The verdict is given both as the ratio of the medians and
#: as the paired median (same-round ratios): on a noisy machine they can disagree.
ADAPTER_ROWS = {"txamqp091-twisted": "pika-twisted", "txamqp091-tornado": "pika-tornado"}
RATE_SCENARIOS = ("publish", "confirm", "consume")
MIN_RATE_OF_C = 0.90
MAX_RPC_P50_OF_C = 1.2
MIN_CPU_LESS_THAN_PIKA = 3.0


def _same_round_cpu_ratios(
    round_list: list[dict[str, Any]], scenario: str, row: str, pika: str
) -> list[float]:
    out = []
    for rd in round_list:
        if rd["scenario"] != scenario:
            continue
        less = ratio_of(rd["rows"].get(pika, {}), rd["rows"].get(row, {}), "cpu_us_per_msg")
        if less is not None:
            out.append(less)
    return out


def verdicts(
    summary: dict[str, dict[str, dict[str, Any]]], round_list: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each target this run measured: both readings of it and whether each meets it."""
    out: list[dict[str, Any]] = []

    def add(scenario: str, row: str, target: str, medians: Any, paired: Any, ok: Any) -> None:
        if medians is None and paired is None:
            return
        out.append(
            {
                "scenario": scenario,
                "row": row,
                "target": target,
                "medians": medians,
                "paired": paired,
                "met_medians": None if medians is None else ok(medians),
                "met_paired": None if paired is None else ok(paired),
            }
        )

    for scenario, by_row in summary.items():
        c = by_row.get("c-ceiling", {})
        for row, pika in ADAPTER_ROWS.items():
            m = by_row.get(row)
            if not m or not m.get("runs"):
                continue
            paired_ratio = m.get("paired", {}).get("ratio_to_c_median")
            ratio = ratio_of(m, c, figure_key(scenario))
            if scenario in RATE_SCENARIOS:
                add(scenario, row, f"rate >= {MIN_RATE_OF_C:.0%} of C", ratio, paired_ratio,
                    lambda v: v >= MIN_RATE_OF_C)  # fmt: skip
                less = ratio_of(by_row.get(pika, {}), m, "cpu_us_per_msg")
                same_round = _same_round_cpu_ratios(round_list, scenario, row, pika)
                add(scenario, row, f"CPU/msg <= 1/{MIN_CPU_LESS_THAN_PIKA:.0f} of {pika}", less,
                    statistics.median(same_round) if same_round else None,
                    lambda v: v >= MIN_CPU_LESS_THAN_PIKA)  # fmt: skip
            elif scenario == "rpc":
                add(scenario, row, f"p50 <= {MAX_RPC_P50_OF_C}x C", ratio, paired_ratio,
                    lambda v: v <= MAX_RPC_P50_OF_C)  # fmt: skip
    return out


def verdict_text(found: list[dict[str, Any]]) -> str:
    """The targets as a table: each reading, then met / MISSED / split (one reading each)."""
    if not found:
        return ""
    lines = [
        "\ntargets (issue 13): ratio of medians, paired median; "
        "'CPU' cells say how many times less CPU per message than pika's"
    ]
    for v in found:
        cells = []
        for key in ("medians", "paired"):
            value = v[key]
            if value is None:
                cells.append("-")
            elif v["target"].startswith("rate"):
                cells.append(f"{value * 100:.1f}%")  # 89.96% is not 90%
            else:
                cells.append(f"{value:.2f}x")
        met = [m for m in (v["met_medians"], v["met_paired"]) if m is not None]
        word = "met" if all(met) else "MISSED" if not any(met) else "split"
        lines.append(
            f"  {v['scenario']:<8} {v['row']:<19} {v['target']:<30} "
            f"{cells[0]:>7} {cells[1]:>7}  {word}"
        )
    return "\n".join(lines)


class SpeedProbes:
    """One ``_speedprobe.py`` process per core this process may use, for ``--speed-probe``."""

    def __init__(self, interval: float) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="compare-speed-"))
        self.cpus = sorted(os.sched_getaffinity(0))
        self.procs = [
            subprocess.Popen(
                [sys.executable, str(HERE / "_speedprobe.py"), str(cpu), str(interval),
                 str(self.dir / f"cpu{cpu}.txt")],
                stdin=subprocess.DEVNULL,
            )
            for cpu in self.cpus
        ]  # fmt: skip

    def stop(self) -> dict[int, list[tuple[float, float]]]:
        """Stop the probes; every core's samples."""
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        samples = {cpu: _speedprobe.read(self.dir / f"cpu{cpu}.txt") for cpu in self.cpus}
        shutil.rmtree(self.dir, ignore_errors=True)
        return samples


def annotate_speed(
    runs: list[dict[str, Any]], samples: dict[int, list[tuple[float, float]]]
) -> None:
    """Give every run with a timed window its ``slow_share``: the share of the probe samples
    taken in that window that found a core slow, averaged over the cores (and per core)."""
    fast = {cpu: _speedprobe.fast_speed(s) for cpu, s in samples.items()}
    for r in runs:
        if "epoch_start" not in r:
            continue
        per_cpu = {
            str(cpu): _speedprobe.slow_share(s, r["epoch_start"], r["epoch_stop"], fast[cpu])
            for cpu, s in samples.items()
        }
        known = [v for v in per_cpu.values() if v is not None]
        r["slow_share_per_cpu"] = per_cpu
        if known:
            r["slow_share"] = statistics.fmean(known)


def speed_report(
    runs: list[dict[str, Any]], rows: list[str], scenarios: list[str], limit: float
) -> tuple[str, dict[str, dict[str, Any]]]:
    """Per scenario and row, each round's slow share, and the paired ratio to C over the
    rounds in which neither the row's run nor C's had more than ``limit`` of slow samples."""
    lines = [
        "\nslow-core share of each round's run (--speed-probe), and the paired ratio to C over "
        f"the clean rounds (the row's and C's runs both <= {limit:.2f})"
    ]
    clean: dict[str, dict[str, Any]] = {}
    for scenario in scenarios:
        key = figure_key(scenario)
        lines.append(f"\n{scenario}")
        mine = [r for r in runs if r["scenario"] == scenario and "error" not in r]
        c_by_rep = {r["repeat"]: r for r in mine if r["row"] == "c-ceiling"}
        reps = sorted({r["repeat"] for r in mine})
        clean[scenario] = {}
        ran = {r["row"] for r in runs if r["scenario"] == scenario}
        for row in rows:
            if row not in ran:
                continue
            by_rep = {r["repeat"]: r for r in mine if r["row"] == row}
            shares = " ".join(
                fmt(by_rep[rep].get("slow_share"), "4.2f") if rep in by_rep else "   -"
                for rep in reps
            )
            ratios = []
            for rep, r in by_rep.items():
                c = c_by_rep.get(rep)
                if c is None or not r.get(key) or not c.get(key):
                    continue
                if r.get("slow_share", 1.0) <= limit and c.get("slow_share", 1.0) <= limit:
                    ratios.append(r[key] / c[key])
            cell = "-"
            if ratios and row != "c-ceiling":
                med = statistics.median(ratios)
                clean[scenario][row] = {"ratios": ratios, "median": med}
                cell = f"{med:.2f}x" if scenario == "rpc" else f"{med * 100:.0f}%"
                cell += f" over {len(ratios)}"
            lines.append(f"  {row:<19} {shares}   clean paired {cell}")
    return "\n".join(lines), clean


def core_state() -> tuple[str, bool]:
    """Which txamqp091 core the rows will run, and whether that is a mistake: an
    extension that is missing or stale (built from older C source than this tree's
    Python expects) is ignored at import, so the txamqp091 rows would silently measure
    the pure-Python core. Asked of the interpreter and tree the workers use."""
    probe = (
        "import os\n"
        "os.environ['TXAMQP091_REQUIRE_EXTENSIONS'] = '1'\n"
        "try:\n"
        "    from txamqp091.core import _accel\n"
        "except ImportError as e:\n"
        "    print('pure Python:', str(e).split(', and')[0])\n"
        "else:\n"
        "    print('C accelerator' if _accel.speedups is not None else "
        "'pure Python (TXAMQP091_NO_EXTENSIONS=1)')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=HERE.parent, capture_output=True, text=True
    )
    lines = out.stdout.strip().splitlines() or out.stderr.strip().splitlines() or ["unknown"]
    text = lines[-1]
    return text, text.startswith("pure Python:")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", help=f"comma-separated scenarios ({','.join(SCENARIOS)})")
    p.add_argument("--rows", help=f"comma-separated rows ({','.join(ROWS)})")
    p.add_argument("--scale", type=float, default=1.0, help="multiply message counts")
    p.add_argument("--repeats", type=int, default=3, help="runs per row and scenario (median)")
    p.add_argument("--timeout", type=float, default=180.0)
    p.add_argument("--json", metavar="PATH", help="write every run and the medians here")
    p.add_argument(
        "--speed-probe",
        action="store_true",
        help="sample each core's speed meanwhile (_speedprobe.py) and report each run's "
        "share of slow-core samples, and the paired ratio over the clean rounds",
    )
    p.add_argument(
        "--slow-limit",
        type=float,
        default=0.2,
        help="a run is clean with at most this share of slow samples (default 0.2)",
    )
    add_idle_arguments(
        p,
        "row",
        20.0,
        ": with 90, every row runs on a quiet machine, the same latency mode for all",
    )
    p.add_argument(
        "--no-floor",
        action="store_true",
        help="leave out the rpc scenario's reference rows (py-floor, core-floor, twisted-floor, "
        "asyncio-floor), which run "
        "in every rpc round unless --rows names one of them",
    )
    p.add_argument(
        "--baseline",
        metavar="DIR",
        help="another checkout (with its own .venv, bench extras installed) whose "
        "txamqp091 rows run as ROW@baseline next to this one's, in the same rounds",
    )
    add_broker_arguments(p)
    a = p.parse_args(argv)
    scenarios = a.only.split(",") if a.only else list(SCENARIOS)
    rows = a.rows.split(",") if a.rows else list(ROWS)
    for name in scenarios:
        if name not in SCENARIOS:
            p.error(f"unknown scenario {name}")
    for name in rows:
        if name not in ROWS:
            p.error(f"unknown row {name}")
    if a.baseline:
        if not (Path(a.baseline) / ".venv" / "bin" / "python").exists():
            p.error(f"--baseline {a.baseline}: no .venv/bin/python there")
        # Each txamqp091 row, then its baseline twin.
        rows = [
            twin
            for row in rows
            for twin in ((row, row + BASELINE) if row.startswith("txamqp091") else (row,))
        ]
    binary, why = _cceiling.build() if "c-ceiling" in rows else (None, "not asked")
    print(f"C ceiling: {binary or 'unavailable'} ({why})", flush=True)
    core, core_wrong = core_state()
    warning = f"WARNING: the txamqp091 rows run the {core}" if core_wrong else ""
    print(f"txamqp091 core: {core}", flush=True)
    if warning:
        print(warning, flush=True)
    if binary is None and "c-ceiling" in rows:
        rows.remove("c-ceiling")  # the other rows still compare; ratios to C show "-"
    # The floors run in rpc only: those --rows names, else both unless --no-floor.
    clients = [row for row in rows if row not in FLOOR_ROWS]
    asked = rows if a.rows else None
    by_scenario = {s: _floor.rows(s, clients, asked, a.no_floor) for s in scenarios}
    rows = list(dict.fromkeys(row for s in scenarios for row in by_scenario[s]))
    runs: list[dict[str, Any]] = []
    load_start = os.getloadavg()
    probes = SpeedProbes(0.05) if a.speed_probe else None
    try:
        for rep in range(a.repeats):
            for s_index, scenario in enumerate(scenarios):
                mine = by_scenario[scenario]
                shift = (rep + s_index) % len(mine)
                for position, row in enumerate(mine[shift:] + mine[:shift]):
                    result = run_row(a, binary, row, scenario, rep)
                    if result is None:
                        continue
                    result["position"] = position
                    runs.append(result)
                    note = result.get("error", "")[:80] or (
                        f"{result.get('msgs_per_s', 0):9.0f} msg/s "
                        f"{result.get('cpu_us_per_msg', 0):6.2f} µs/msg"
                        + (f" p50 {result['p50_us']:.0f} µs" if "p50_us" in result else "")
                        + f"  (idle before {fmt(result.get('idle_pct_before'), '.0f')}%)"
                    )
                    print(f"  [{rep + 1}/{a.repeats}] {scenario:<8} {row:<19} {note}", flush=True)
    finally:
        samples = probes.stop() if probes is not None else None
    if samples is not None:
        annotate_speed(runs, samples)
    round_list = rounds(runs)
    summary = {s: {row: medians(runs, row, s) for row in by_scenario[s]} for s in scenarios}
    for s, by_row in summary.items():
        for row, m in by_row.items():
            m["paired"] = paired(round_list, row, s)
    print(table(summary, rows, scenarios))
    found = verdicts(summary, round_list)
    print(verdict_text(found))
    floors = against_floor(round_list)
    if floors:
        print(floor_text(floors))
    compared = against_baseline(round_list) if a.baseline else []
    if compared:
        print(baseline_text(compared, a.baseline))
    clean: dict[str, dict[str, Any]] = {}
    if samples is not None:
        text, clean = speed_report(runs, rows, scenarios, a.slow_limit)
        print(text)
    print(
        f"\nmedians of {a.repeats} repeats; 'paired': median (and range) over the rounds of "
        "each round's ratio to C in that same round (rpc: also of p50 - C's p50); "
        f"load average {load_start[0]:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end; {os.cpu_count()} CPUs; txamqp091 core: {core}"
    )
    if warning:
        print(warning)
    if a.json:
        Path(a.json).write_text(
            json.dumps(
                {
                    "args": vars(a),
                    "python": sys.version,
                    "platform": platform.platform(),
                    "txamqp091_core": core,
                    "loadavg_start": load_start,
                    "loadavg_end": os.getloadavg(),
                    "summary": summary,
                    "targets": found,
                    "against_baseline": compared,
                    "against_floor": floors,
                    "rounds": round_list,
                    "clean_paired": clean,
                    "runs": runs,
                },
                indent=1,
            )
        )
    return 0 if all(m.get("runs") for s in summary.values() for m in s.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
