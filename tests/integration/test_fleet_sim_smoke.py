"""The fleet simulation's quick mode runs end to end; its routings behave as their rules say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("fleet-sim")
    md, js = out / "bench.md", out / "sim.json"
    cmd = [sys.executable, "-m", "bench.http.fleet_sim", "--quick", "--json", str(js)]
    proc = subprocess.run(
        [*cmd, "--out", str(md)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(js.read_text()), md.read_text()


def test_the_section_is_written(runs) -> None:
    _, markdown = runs
    assert "<!-- fleet-sim:begin -->" in markdown and "<!-- fleet-sim:end -->" in markdown
    assert "| routing | bank hit ratio | x one replica |" in markdown


@pytest.mark.parametrize("workload", ["stationary", "shifting hot set"])
def test_routings_keep_their_promises(runs, workload: str) -> None:
    (results,) = [v for k, v in runs[0].items() if k.endswith(workload)]
    by = {r["routing"].split(" ")[0]: r for r in results}
    one, rr, ch, bounded = by["one"], by["round-robin"], by["consistent"], by["bounded"]
    assert 0 < rr["hit_ratio"] < bounded["hit_ratio"] <= ch["hit_ratio"] <= one["hit_ratio"] + 0.01
    assert rr["replicas_per_hot_task"] == 8  # --quick: 8 replicas, every one holds them
    assert ch["replicas_per_hot_task"] == 1
    assert bounded["in_flight_max_mean_p99"] <= 1.5 + 1e-9  # the factor bounds the load
    assert ch["in_flight_max_mean_p99"] > bounded["in_flight_max_mean_p99"]
