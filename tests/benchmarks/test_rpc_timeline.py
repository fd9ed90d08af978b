"""``benchmarks/rpc_timeline.py``: the live split of an rpc round trip into segments.

The split is checked on made-up stamps (no broker); against the broker, a small run of
both adapters and both floors must give every segment, time every call, and leave no
queue behind; a missing private attribute must stop the run with its name.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.benchmarks.support import bench_module, queue_exists
from tests.conftest import broker_address


@pytest.fixture
def timeline() -> ModuleType:
    module: ModuleType = bench_module("rpc_timeline")
    return module


def _call(start: float) -> list[tuple[str, float]]:
    """One call's stamps, 100 us apart from ``start``, with a wake-up that served something
    else (a timer) between the request's send and the wake-up that brought the request."""
    tags = ["send0", "send1", "wake", "wake", "recv", "send0", "send1", "wake", "recv", "done"]
    return [(tag, start + i * 100e-6) for i, tag in enumerate(tags)]


def test_segments_split_each_call(timeline: ModuleType) -> None:
    marks = _call(0.0) + _call(0.0015)
    split = timeline.segments(marks)
    assert set(split) == set(timeline.SEGMENTS)
    us = {name: [round(v * 1e6) for v in values] for name, values in split.items()}
    assert us["send req"] == [100, 100]
    assert us["broker1"] == [200, 200]  # to the last wake-up before the recv
    assert us["wake->recv"] == [100, 100]
    assert us["recv->send"] == [100, 100]
    assert us["broker2"] == [100, 100]
    assert us["recv->done"] == [100, 100]
    assert us["done->pub"] == [600]  # from the first call's done to the second's send


def test_segments_leave_out_a_call_without_the_sequence(timeline: ModuleType) -> None:
    odd = [("send0", 0.0), ("send1", 1e-4), ("recv", 2e-4), ("done", 3e-4)]  # no wake-up
    split = timeline.segments(odd + _call(0.001))
    assert len(split["broker1"]) == 1
    assert [round(v * 1e6) for v in split["done->pub"]] == [700]


def test_a_missing_private_attribute_is_named(timeline: ModuleType) -> None:
    class Protocol:
        _sock = None

    with pytest.raises(timeline.MissingInternals, match=r"Protocol has no '_sock'"):
        timeline.swap(Protocol(), "_sock", lambda s: s, "tornado")
    holder = type("Holder", (), {})()
    holder.socket = "original"
    restore = timeline.swap(holder, "socket", lambda s: ("proxy", s), "twisted")
    assert holder.socket == ("proxy", "original")
    restore()
    assert holder.socket == "original"


@pytest.mark.broker
def test_both_adapters_and_floors_against_the_broker(
    timeline: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host, port = broker_address()
    out = tmp_path / "timeline.json"
    args = ["--calls", "40", "--rounds", "1", "--floors", "--json", str(out)]
    assert timeline.main([*args, "--host", host, "--port", str(port), "--timeout", "120"]) == 0
    runs = {r["row"]: r for r in json.loads(out.read_text())["runs"]}
    assert set(runs) == {
        "tornado",
        "twisted",
        "py-floor",
        "core-floor",
        "twisted-floor",
        "asyncio-floor",
    }
    for name in ("tornado", "twisted"):
        r = runs[name]
        assert r["calls"] == 40 and r["split_calls"] >= 30  # the first has no done->pub
        assert set(r["segments_us"]) == set(timeline.SEGMENTS)
        assert all(v > 0 for v in r["segments_us"].values())
    for r in runs.values():
        assert r["p50_us"] > 0
        assert not queue_exists(r["queue"])
    text = capsys.readouterr().out
    assert "recv->send" in text and "core-floor" in text
