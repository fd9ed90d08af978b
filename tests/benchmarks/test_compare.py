"""``benchmarks/compare.py``: the order rows run in and the paired ratio to the C ceiling.

No broker and no C program: the runs are fabricated (``run_row`` and the C build are
replaced), so what is checked is the bookkeeping, never a timing.
"""

from __future__ import annotations

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
    args = ["--only", "rpc,publish", "--rows", ",".join(rows), "--repeats", "3"]
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
