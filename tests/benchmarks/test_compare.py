"""``benchmarks/compare.py``: the order rows run in and the paired ratio to the C ceiling.

No broker and no C program: the runs are fabricated (``run_row`` and the C build are
replaced), so what is checked is the bookkeeping, never a timing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def compare() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("bench_compare", BENCH / "compare.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = list(sys.path)
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path[:] = saved


def _run(row: str, rep: int, p50: float, cpu: float, scenario: str = "rpc") -> dict[str, Any]:
    return dict(
        row=row, scenario=scenario, repeat=rep, p50_us=p50, p99_us=p50 * 2,
        msgs_per_s=1e6 / p50, cpu_us_per_msg=cpu,
    )  # fmt: skip


#: C swings between its two latency modes (230 / 110 µs); the row follows it.
BIMODAL = [
    _run("c-ceiling", 0, 230.0, 45.0),
    _run("txamqp091-tornado", 0, 300.0, 135.0),
    _run("c-ceiling", 1, 110.0, 45.0),
    _run("txamqp091-tornado", 1, 140.0, 140.0),
    _run("c-ceiling", 2, 230.0, 45.0),
    _run("txamqp091-tornado", 2, 290.0, 130.0),
]


def test_paired_ratio_is_the_median_of_same_round_ratios(compare: ModuleType) -> None:
    rounds = compare.rounds(BIMODAL)
    assert [(r["repeat"], r["scenario"]) for r in rounds] == [(0, "rpc"), (1, "rpc"), (2, "rpc")]
    p = compare.paired(rounds, "txamqp091-tornado", "rpc")
    per_round = [300 / 230, 140 / 110, 290 / 230]
    assert p["ratio_to_c_per_round"] == pytest.approx(per_round)
    assert p["ratio_to_c_median"] == pytest.approx(140 / 110)
    assert p["cpu_ratio_to_c_median"] == pytest.approx(135 / 45)
    # The ratio of medians is a different number: 290 / 230.
    m_row = compare.medians(BIMODAL, "txamqp091-tornado", "rpc")
    m_c = compare.medians(BIMODAL, "c-ceiling", "rpc")
    assert m_row["p50_us"] / m_c["p50_us"] == pytest.approx(290 / 230)


def test_rates_pair_on_msgs_per_s_and_failures_are_left_out(compare: ModuleType) -> None:
    runs = [
        _run("c-ceiling", 0, 10.0, 2.0, "publish"),
        _run("aio-pika", 0, 40.0, 8.0, "publish"),
        _run("c-ceiling", 1, 10.0, 2.0, "publish"),
        {**_run("aio-pika", 1, 20.0, 4.0, "publish"), "error": "boom"},
        {**_run("c-ceiling", 2, 10.0, 2.0, "publish"), "error": "no C"},
        _run("aio-pika", 2, 20.0, 4.0, "publish"),
    ]
    rounds = compare.rounds(runs)
    assert rounds[1]["rows"]["aio-pika"] == {"error": "boom"}
    assert "ratio_to_c" not in rounds[2]["rows"]["aio-pika"]  # no C in that round
    p = compare.paired(rounds, "aio-pika", "publish")
    assert p["ratio_to_c_per_round"] == pytest.approx([0.25])


def test_table_keeps_its_columns_and_adds_the_paired_ones(compare: ModuleType) -> None:
    rows = ["c-ceiling", "txamqp091-tornado"]
    rounds = compare.rounds(BIMODAL)
    summary = {"rpc": {row: compare.medians(BIMODAL, row, "rpc") for row in rows}}
    for row, m in summary["rpc"].items():
        m["paired"] = compare.paired(rounds, row, "rpc")
    text = compare.table(summary, rows, ["rpc"])
    head = next(line for line in text.splitlines() if "client" in line)
    for column in ("p50 µs", "p99 µs", "CPU µs/call", "p50 / C", "CPU vs C", "runs"):
        assert column in head
    assert head.index("runs") < head.index("paired") < head.index("paired range")
    tornado = next(line for line in text.splitlines() if "txamqp091-tornado" in line)
    assert "1.26x" in tornado  # ratio of medians, unchanged
    assert "1.27x" in tornado  # paired
    assert "1.26-1.30x" in tornado


def test_rounds_run_back_to_back_in_a_rotating_order(
    compare: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    calls: list[tuple[int, str, str]] = []

    def run_row(a: Any, binary: Any, row: str, scenario: str, rep: int) -> dict[str, Any]:
        calls.append((rep, scenario, row))
        p50 = 100.0 if row == "c-ceiling" else 130.0 + rep
        return _run(row, rep, p50, 50.0, scenario)

    monkeypatch.setattr(compare, "run_row", run_row)
    monkeypatch.setattr(compare._cceiling, "build", lambda: (Path("amqp_bench"), "fake"))
    rows = ["c-ceiling", "txamqp091-twisted", "txamqp091-tornado"]
    out = tmp_path / "c.json"
    args = ["--only", "rpc,publish", "--rows", ",".join(rows), "--repeats", "3", "--no-floor"]
    assert compare.main([*args, "--json", str(out)]) == 0
    # Each (repeat, scenario) round is one contiguous block holding every row once.
    blocks = [calls[i : i + len(rows)] for i in range(0, len(calls), len(rows))]
    assert len(blocks) == 6
    for block in blocks:
        assert len({(rep, sc) for rep, sc, _ in block}) == 1
        assert sorted(row for _, _, row in block) == sorted(rows)
    # Across the repeats of one scenario each row takes every place once.
    for scenario in ("rpc", "publish"):
        orders = [[r for _, _, r in b] for b in blocks if b[0][1] == scenario]
        for place in range(len(rows)):
            assert sorted(order[place] for order in orders) == sorted(rows)
    data = json.loads(out.read_text())
    rpc_rounds = [r for r in data["rounds"] if r["scenario"] == "rpc"]
    assert [r["rows"]["txamqp091-tornado"]["ratio_to_c"] for r in rpc_rounds] == pytest.approx(
        [1.30, 1.31, 1.32]
    )
    assert data["summary"]["rpc"]["txamqp091-tornado"]["paired"][
        "ratio_to_c_median"
    ] == pytest.approx(1.31)
    assert {r["position"] for r in data["runs"]} == {0, 1, 2}
    assert "paired range" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "floors"),
    [
        ([], ["py-floor", "core-floor", "twisted-floor", "asyncio-floor"]),  # by default, all
        (["--no-floor"], []),
        (["--rows", "c-ceiling,txamqp091-tornado,core-floor"], ["core-floor"]),
    ],
)
def test_floor_rows_run_in_rpc_rounds_only(
    compare: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    extra: list[str],
    floors: list[str],
) -> None:
    """The reference rows are rpc's: they join its rounds (and so its pairing with C) and
    its table, and never another scenario's, where they would show as failed rows."""
    calls: list[tuple[str, str]] = []

    def run_row(a: Any, binary: Any, row: str, scenario: str, rep: int) -> dict[str, Any]:
        calls.append((scenario, row))
        return _run(row, rep, 100.0 if row == "c-ceiling" else 110.0, 50.0, scenario)

    monkeypatch.setattr(compare, "run_row", run_row)
    monkeypatch.setattr(compare._cceiling, "build", lambda: (Path("amqp_bench"), "fake"))
    if "--rows" not in extra:
        extra = [*extra, "--rows", "c-ceiling,txamqp091-tornado"]
    assert compare.main(["--only", "publish,rpc", "--repeats", "2", *extra]) == 0
    rows = ["c-ceiling", "txamqp091-tornado"]
    assert sorted(r for s, r in calls if s == "publish") == sorted(rows * 2)
    assert sorted(r for s, r in calls if s == "rpc") == sorted((rows + floors) * 2)
    before_rpc, rpc_table = capsys.readouterr().out.split("\nrpc\n")
    publish_table = before_rpc.split("\npublish\n")[1]
    assert "py-floor" not in publish_table and "core-floor" not in publish_table
    for floor in ("py-floor", "core-floor", "twisted-floor", "asyncio-floor"):
        in_table = [line for line in rpc_table.splitlines() if line.startswith(f"  {floor} ")]
        assert len(in_table) == (floor in floors)
        if in_table:
            assert "1.10x" in in_table[0]  # paired with C like any row


def test_rpc_pairs_also_the_difference_to_c(compare: ModuleType) -> None:
    rounds = compare.rounds(BIMODAL)
    p = compare.paired(rounds, "txamqp091-tornado", "rpc")
    assert p["diff_to_c_us_per_round"] == pytest.approx([70.0, 30.0, 60.0])
    assert p["diff_to_c_us_median"] == pytest.approx(60.0)
    rows = ["c-ceiling", "txamqp091-tornado"]
    summary = {"rpc": {row: compare.medians(BIMODAL, row, "rpc") for row in rows}}
    for row, m in summary["rpc"].items():
        m["paired"] = compare.paired(rounds, row, "rpc")
    text = compare.table(summary, rows, ["rpc"])
    assert "p50 - C µs" in text
    assert text.splitlines()[-1].split()[-1] == "60"


def test_rpc_adapters_are_paired_with_their_framework_floor(compare: ModuleType) -> None:
    """Each adapter row (and its --baseline twin) against its own loop's floor in the
    same round; a round without that floor, or where either failed, is left out."""
    runs = [
        _run("c-ceiling", 0, 100.0, 10.0),
        _run("twisted-floor", 0, 120.0, 20.0),
        _run("txamqp091-twisted", 0, 132.0, 30.0),
        _run("txamqp091-twisted@baseline", 0, 144.0, 40.0),
        _run("asyncio-floor", 0, 110.0, 20.0),
        _run("txamqp091-tornado", 0, 121.0, 25.0),
        _run("c-ceiling", 1, 200.0, 10.0),  # a slow round: everything moved alike
        _run("twisted-floor", 1, 250.0, 20.0),
        _run("txamqp091-twisted", 1, 300.0, 40.0),
        _run("txamqp091-twisted@baseline", 1, 275.0, 40.0),
        {**_run("asyncio-floor", 1, 1.0, 1.0), "error": "worker died"},
        _run("txamqp091-tornado", 1, 500.0, 25.0),
        _run("txamqp091-tornado", 2, 500.0, 25.0),  # no floor in this round
        _run("c-ceiling", 0, 100.0, 10.0, scenario="consume"),
        _run("txamqp091-twisted", 0, 100.0, 10.0, scenario="consume"),
    ]
    found = {item["row"]: item for item in compare.against_floor(compare.rounds(runs))}
    assert set(found) == {"txamqp091-twisted", "txamqp091-twisted@baseline", "txamqp091-tornado"}
    twisted = found["txamqp091-twisted"]
    assert twisted["floor"] == "twisted-floor"
    assert twisted["ratio"]["median"] == pytest.approx((1.1 + 1.2) / 2)
    assert (twisted["ratio"]["min"], twisted["ratio"]["max"]) == pytest.approx((1.1, 1.2))
    assert twisted["diff"]["median"] == pytest.approx((12.0 + 50.0) / 2)
    assert twisted["cpu"]["median"] == pytest.approx(1.75)
    assert twisted["floor_to_c"]["median"] == pytest.approx((1.2 + 1.25) / 2)
    baseline = found["txamqp091-twisted@baseline"]
    assert baseline["floor"] == "twisted-floor" and baseline["ratio"]["rounds"] == 2
    assert baseline["ratio"]["median"] == pytest.approx((1.2 + 1.1) / 2)
    tornado = found["txamqp091-tornado"]
    assert tornado["ratio"]["rounds"] == 1 and tornado["ratio"]["median"] == pytest.approx(1.1)
    assert tornado["diff"]["median"] == pytest.approx(11.0)
    text = compare.floor_text(list(found.values()))
    assert "rpc against the framework floors" in text
    assert "txamqp091-tornado   / asyncio-floor  p50 1.100x (1.100-1.100)" in text
    assert compare.floor_text([]) == ""


def _speed_run(row: str, rep: int, p50: float, window: tuple[float, float]) -> dict[str, Any]:
    return {**_run(row, rep, p50, 50.0), "epoch_start": window[0], "epoch_stop": window[1]}


def test_speed_probe_marks_runs_and_pairs_only_clean_rounds(compare: ModuleType) -> None:
    # Core 0 is slow (44 ns) from t=10 to t=20, fast (25 ns) otherwise; core 1 always fast.
    samples = {
        0: [(t / 10, 44.0 if 100 <= t < 200 else 25.0) for t in range(400)],
        1: [(t / 10, 25.0) for t in range(400)],
    }
    runs = [
        _speed_run("c-ceiling", 0, 100.0, (1.0, 5.0)),
        _speed_run("txamqp091-twisted", 0, 150.0, (5.0, 9.0)),
        _speed_run("c-ceiling", 1, 200.0, (10.0, 19.0)),  # slow core: C twice as slow
        _speed_run("txamqp091-twisted", 1, 160.0, (21.0, 25.0)),
        _speed_run("c-ceiling", 2, 100.0, (30.0, 34.0)),
        _speed_run("txamqp091-twisted", 2, 140.0, (35.0, 39.0)),
    ]
    compare.annotate_speed(runs, samples)
    assert [r["slow_share"] for r in runs] == pytest.approx([0, 0, 0.5, 0, 0, 0])
    assert runs[2]["slow_share_per_cpu"] == {"0": pytest.approx(1.0), "1": 0.0}
    text, clean = compare.speed_report(runs, ["c-ceiling", "txamqp091-twisted"], ["rpc"], 0.2)
    # Round 1 is left out: C's run had half its samples slow.
    assert clean["rpc"]["txamqp091-twisted"]["ratios"] == pytest.approx([1.5, 1.4])
    assert "1.45x over 2" in text
    assert "0.50" in text


def test_speed_probe_files(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_speedprobe", BENCH / "_speedprobe.py")
    assert spec is not None and spec.loader is not None
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    path = tmp_path / "cpu0.txt"
    path.write_text("1.0 25.0\n2.0 44.0\n3.0 26.0\n4.0 2")  # a torn last line
    samples = probe.read(path)
    assert samples == [(1.0, 25.0), (2.0, 44.0), (3.0, 26.0)]
    fast = probe.fast_speed(samples)
    assert fast == 25.0
    assert probe.slow_share(samples, 0.0, 10.0, fast) == pytest.approx(1 / 3)
    assert probe.slow_share(samples, 5.0, 10.0, fast) is None  # no sample in the window
    assert probe.read(tmp_path / "missing.txt") == []
    assert probe.sample() > 0


def test_c_rows_carry_the_idle_share_before_them(
    compare: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compare, "idle_percent", lambda: 97.5)
    monkeypatch.setattr(compare, "run_c", lambda a, binary, scenario: _run("c-ceiling", 0, 1, 1))
    a = argparse.Namespace(wait_idle=0.0, wait_idle_max=20.0)
    result = compare.run_row(a, Path("amqp_bench"), "c-ceiling", "rpc", 0)
    assert result["idle_pct_before"] == 97.5
    assert result["row_epoch"][0] <= result["row_epoch"][1]
    rounds = compare.rounds([result])
    assert rounds[0]["rows"]["c-ceiling"]["idle_pct_before"] == 97.5


def test_wait_idle_holds_every_row_until_the_machine_is_quiet(
    compare: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[tuple[float, float]] = []

    def wait_for_idle(threshold: float, max_wait: float) -> float:
        waits.append((threshold, max_wait))
        return 93.0

    monkeypatch.setattr(compare, "wait_for_idle", wait_for_idle)
    monkeypatch.setattr(compare, "run_c", lambda a, binary, scenario: _run("c-ceiling", 0, 1, 1))
    a = argparse.Namespace(wait_idle=90.0, wait_idle_max=5.0)
    result = compare.run_row(a, Path("amqp_bench"), "c-ceiling", "rpc", 0)
    assert waits == [(90.0, 5.0)]
    assert result["idle_pct_before"] == 93.0
    # The Python rows get the same through their scripts' own --wait-idle.
    full = argparse.Namespace(
        scale=1.0, timeout=1.0, host="h", port=1, user="u", password="p", wait_idle=90.0,
        wait_idle_max=5.0,
    )  # fmt: skip
    ns = compare.namespace(full)
    assert (ns.wait_idle, ns.wait_idle_max) == (90.0, 5.0)


def test_core_state_says_which_core_the_rows_run(
    compare: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The txamqp091 rows must not silently measure the pure-Python core: a stale
    extension (C source newer than the build) is ignored at import."""
    from txamqp091.core import _accel

    text, wrong = compare.core_state()
    if _accel.speedups is not None:
        assert (text, wrong) == ("C accelerator", False)
    else:  # no compiler here: said, and flagged
        assert text.startswith("pure Python") and wrong
    monkeypatch.setenv("TXAMQP091_NO_EXTENSIONS", "1")
    assert compare.core_state() == ("pure Python (TXAMQP091_NO_EXTENSIONS=1)", False)


def test_core_state_flags_a_stale_extension(
    compare: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An extension whose ABI is not the Python code's: what a checkout that pulled new
    C source and did not rebuild has."""
    package = tmp_path / "txamqp091" / "core"
    package.mkdir(parents=True)
    (tmp_path / "txamqp091" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "_speedups.py").write_text("ABI = -1\n")
    real = Path(__file__).resolve().parents[2] / "txamqp091" / "core" / "_accel.py"
    (package / "_accel.py").write_text(real.read_text())
    monkeypatch.setattr(compare, "HERE", tmp_path / "benchmarks")
    monkeypatch.delenv("TXAMQP091_NO_EXTENSIONS", raising=False)
    text, wrong = compare.core_state()
    assert wrong and "stale" in text


def _summary(compare: ModuleType, runs: list[dict[str, Any]]) -> tuple[Any, Any]:
    round_list = compare.rounds(runs)
    summary: dict[str, dict[str, Any]] = {}
    for r in runs:
        by_row = summary.setdefault(r["scenario"], {})
        if r["row"] not in by_row:
            by_row[r["row"]] = compare.medians(runs, r["row"], r["scenario"])
            by_row[r["row"]]["paired"] = compare.paired(round_list, r["row"], r["scenario"])
    return summary, round_list


def test_targets_are_judged_on_both_readings(compare: ModuleType) -> None:
    # msgs_per_s is 1e6 / the third argument. C is slow in round 0, and so is Twisted:
    # the ratio of medians misses 90% (87%), the paired median meets it (95%).
    runs = [
        _run("c-ceiling", 0, 12.5, 2.0, "confirm"),
        _run("pika-twisted", 0, 30.0, 12.0, "confirm"),
        _run("txamqp091-twisted", 0, 13.0, 3.0, "confirm"),
        _run("c-ceiling", 1, 10.0, 2.0, "confirm"),
        _run("pika-twisted", 1, 30.0, 9.0, "confirm"),
        _run("txamqp091-twisted", 1, 10.5, 3.2, "confirm"),
        _run("c-ceiling", 2, 10.0, 2.0, "confirm"),
        _run("pika-twisted", 2, 30.0, 15.0, "confirm"),
        _run("txamqp091-twisted", 2, 11.5, 4.0, "confirm"),
        *BIMODAL,  # tornado's rpc: 1.26x of medians, 1.27x paired
    ]
    summary, round_list = _summary(compare, runs)
    found = {(v["scenario"], v["row"], v["target"].split()[0]): v for v in
             compare.verdicts(summary, round_list)}  # fmt: skip
    assert set(found) == {
        ("confirm", "txamqp091-twisted", "rate"),
        ("confirm", "txamqp091-twisted", "CPU/msg"),
        ("rpc", "txamqp091-tornado", "p50"),
    }
    rate = found["confirm", "txamqp091-twisted", "rate"]
    assert rate["medians"] == pytest.approx((1e6 / 11.5) / 1e5)
    assert rate["paired"] == pytest.approx((1e6 / 10.5) / 1e5)
    assert (rate["met_medians"], rate["met_paired"]) == (False, True)
    cpu = found["confirm", "txamqp091-twisted", "CPU/msg"]
    assert cpu["medians"] == pytest.approx(12.0 / 3.2)
    assert cpu["paired"] == pytest.approx(15.0 / 4.0)  # median of 4, 2.81 and 3.75
    assert (cpu["met_medians"], cpu["met_paired"]) == (True, True)
    rpc = found["rpc", "txamqp091-tornado", "p50"]
    assert (rpc["met_medians"], rpc["met_paired"]) == (False, False)
    text = compare.verdict_text(compare.verdicts(summary, round_list))
    lines = {line.split()[0] + " " + line.split()[2]: line for line in text.splitlines()[1:]}
    assert lines["confirm rate"].endswith("split")
    assert " 87.0% " in lines["confirm rate"] and " 95.2% " in lines["confirm rate"]
    assert lines["confirm CPU/msg"].endswith("met")
    assert lines["rpc p50"].endswith("MISSED")


def test_no_targets_without_the_rows_they_compare(compare: ModuleType) -> None:
    runs = [_run("c-ceiling", 0, 10.0, 2.0, "publish"), _run("aio-pika", 0, 40.0, 8.0, "publish")]
    summary, round_list = _summary(compare, runs)
    assert compare.verdicts(summary, round_list) == []
    assert compare.verdict_text([]) == ""


def test_baseline_rows_run_next_to_their_twins_and_are_compared_per_round(
    compare: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """--baseline DIR: each txamqp091 row gets a ROW@baseline twin in every round, run
    by DIR's workers (its interpreter and tree); the twins are compared round by round."""
    base = tmp_path / "base"
    (base / ".venv" / "bin").mkdir(parents=True)
    (base / ".venv" / "bin" / "python").write_text("")
    seen: list[tuple[str, Any, Any]] = []

    class Worker:
        @staticmethod
        def run_one(ns: Any, scenario: str, client: str, rep: int) -> dict[str, Any]:
            seen.append(
                (client, getattr(ns, "worker_root", None), getattr(ns, "worker_python", None))
            )
            p50 = {0: 100.0, 1: 200.0}[rep]  # the machine's mode moves both alike
            return {"p50_us": p50, "msgs_per_s": 1e6 / p50, "cpu_us_per_msg": 50.0}

    class Baseline(Worker):
        @staticmethod
        def run_one(ns: Any, scenario: str, client: str, rep: int) -> dict[str, Any]:
            result = Worker.run_one(ns, scenario, client, rep)
            result.update(p50_us=result["p50_us"] * 1.25, cpu_us_per_msg=62.5)
            return result

    def module_for(row: str) -> Any:
        return Baseline if row.endswith("@baseline") else Worker

    real_run_row = compare.run_row

    def run_row(a: Any, binary: Any, row: str, scenario: str, rep: int) -> Any:
        monkeypatch.setitem(compare.ROWS, compare.base_row(row), (module_for(row), "txamqp091"))
        return real_run_row(a, binary, row, scenario, rep)

    monkeypatch.setattr(compare, "run_row", run_row)
    monkeypatch.setattr(compare._cceiling, "build", lambda: (None, "fake"))
    out = tmp_path / "c.json"
    args = ["--only", "rpc", "--rows", "txamqp091-twisted", "--repeats", "2", "--no-floor"]
    assert compare.main([*args, "--baseline", str(base), "--json", str(out)]) == 0
    # Every round ran both, the twin by the baseline's interpreter in its tree.
    roots = [s[1] for s in seen]
    assert sorted(map(str, roots)) == sorted([str(base.resolve())] * 2 + ["None"] * 2)
    assert {s[2] for s in seen if s[1]} == {str(base.resolve() / ".venv" / "bin" / "python")}
    data = json.loads(out.read_text())
    (item,) = data["against_baseline"]
    assert (item["scenario"], item["row"], item["figure"]) == ("rpc", "txamqp091-twisted", "p50_us")
    # Same-round ratios: 100/125 and 200/250, although p50 doubled between the rounds.
    assert item["ratio"] == {"median": 0.8, "min": 0.8, "max": 0.8, "rounds": 2}
    assert item["cpu"]["median"] == pytest.approx(0.8)
    text = capsys.readouterr().out
    assert "against the baseline" in text and "txamqp091-twisted@baseline" in text


def test_baseline_needs_a_checkout_with_its_venv(compare: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        compare.main(["--only", "rpc", "--baseline", str(tmp_path)])


def test_the_workers_run_from_the_given_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_one(ns) with ns.worker_root / ns.worker_python: that tree's script of the same
    name, by that interpreter, in that directory (both client scripts)."""
    for name in ("twisted_client", "tornado_client"):
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        saved = list(sys.path)
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path[:] = saved
        ran: list[Any] = []

        def fake_run(cmd: list[str], cwd: Any = None, ran: list[Any] = ran, **kw: Any) -> Any:
            ran.append((cmd[0], cmd[1], str(cwd)))
            return argparse.Namespace(returncode=1, stderr="stop here")

        monkeypatch.setattr(module.subprocess, "run", fake_run)
        monkeypatch.setattr(module, "cleanup", lambda *a: None)
        monkeypatch.setattr(module, "source_state", lambda root=None: {"source_sha1": "x"})
        ns = argparse.Namespace(
            scale=0.01, timeout=1.0, batch=1, rpc_responder="channel", host="127.0.0.1",
            port=5672, user="guest", password="guest", profile=None, wait_idle=0,
            wait_idle_max=0, verbose=False, worker_root=str(tmp_path), worker_python="/py",
        )  # fmt: skip
        result = module.run_one(ns, "rpc", "txamqp091", 0)
        assert "error" in result
        assert ran == [("/py", str(tmp_path / "benchmarks" / f"{name}.py"), str(tmp_path))]
