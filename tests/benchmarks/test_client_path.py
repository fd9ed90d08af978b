"""``benchmarks/client_path.py``: the broker-less publish, confirm and consume harness.

Each run checks its own writes (every publish written once, every delivery acked once,
in order); here a few hundred messages per adapter and scenario, with and without the
input cache. No time is asserted beyond "positive".
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.benchmarks.support import bench_module


@pytest.fixture
def client_path() -> ModuleType:
    module: ModuleType = bench_module("client_path")
    return module


def test_ack_reads_confirm_every_publish_once_in_order(client_path: ModuleType) -> None:
    from txamqp091.core import spec
    from txamqp091.core.testing import parse_client_frames

    reads = client_path.ack_reads(100, 4, 12)
    acks = [frame[2] for data in reads for frame in parse_client_frames(data)]
    assert all(len(parse_client_frames(data)) <= 4 for data in reads)
    covered = 0
    for ack in acks:
        assert isinstance(ack, spec.BasicAck)
        assert ack.multiple or ack.delivery_tag == covered + 1
        covered = ack.delivery_tag
    assert covered == 100


@pytest.mark.parametrize("scenario", ["publish", "confirm", "consume"])
@pytest.mark.parametrize("adapter", ["twisted", "tornado"])
def test_each_run_checks_its_writes_and_reports_a_time(
    client_path: ModuleType,
    adapter: str,
    scenario: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["--adapter", adapter, "--only", scenario, "--messages", "1500", "--repeats", "1"]
    assert client_path.main(args) == 0
    monkeypatch.setenv("CLIENT_PATH_CACHE", str(tmp_path))
    assert client_path.main(args) == 0  # fills the cache
    assert client_path.main(args) == 0  # compares with it
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert all(f"{adapter:8} {scenario:8}" in line and "ns/msg" in line for line in lines)
