"""The benchmark's quick mode runs end to end and produces its table; never asserts speed."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.service]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[str, dict, str]:
    out = tmp_path_factory.mktemp("bench")
    md, js = out / "bench.md", out / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(md), "--json", str(js)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return md.read_text(), json.loads(js.read_text()), proc.stdout


def test_table_is_printed_and_written(quick_run):
    markdown, _, stdout = quick_run
    for text in (markdown, stdout):
        assert "| row | tasks | batches | seq/s |" in text
        assert "backbone + 1 head" in text
        assert "mixed-task forward" in text
        assert "HTTP end to end" in text
    assert "Cold load" in markdown and "Hot swap" in markdown
    assert "<!-- bench:begin -->" in markdown and "<!-- bench:end -->" in markdown


def test_figures_are_finite_and_positive(quick_run):
    _, results, _ = quick_run
    rows = {r["key"]: r for r in results["rows"]}
    assert {"ceiling", "apl_mixed_10u", "apl_grouped_10u", "http_10u"} <= set(rows)
    for row in rows.values():
        assert math.isfinite(row["throughput"]) and row["throughput"] > 0, row
        assert 0 < row["p50_ms"] <= row["p99_ms"], row
        for name, ratio in row["ratios"].items():
            assert math.isfinite(ratio) and ratio > 0, (row["key"], name, ratio)
    assert rows["apl_mixed_10u"]["ratios"]["ceiling"] > 0
    assert rows["http_10u"]["ratios"]["engine"] > 0
    cold, swap = results["cold_load"], results["hot_swap"]
    assert cold["hits"] == 0 and 0 < cold["p50_ms"] <= cold["p99_ms"]
    assert swap["timeouts"] == 0 and swap["all_replicas_max_s"] > 0


def test_peft_rows_or_a_note(quick_run):
    _, results, _ = quick_run
    keys = {r["key"] for r in results["rows"]}
    if results["meta"]["peft"] is None:
        assert any("PEFT rows skipped" in n for n in results["notes"])
        assert not any(k.startswith("peft_") for k in keys)
    else:
        assert {"peft_request_10u", "peft_grouped_10u", "peft_mixed_10u"} <= keys
        assert any("Same weights, same answers" in n for n in results["notes"])


def test_serving_path_bench_runs_and_accounts_for_the_forward_process(tmp_path):
    """A short run of bench.http.serving_path: its tables, finite figures, the forward's CPU
    found in the forward process (the default on a CPU with room in /dev/shm)."""
    md, js = tmp_path / "path.md", tmp_path / "path.json"
    args = ["--window", "2", "--rounds", "1", "--connections", "8", "--texts", "1", "2"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.http.serving_path",
            *args,
            "--out",
            str(md),
            "--json",
            str(js),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    markdown, results = md.read_text(), json.loads(js.read_text())
    assert "| connections | texts/request | HTTP req/s |" in markdown
    assert "| connections | texts/request | main | prepare | forward |" in markdown
    assert [(s["connections"], s["texts"]) for s in results["sides"]] == [(8, 1), (8, 2)]
    for side in results["sides"]:
        assert side["errors"] == 0
        for key in ("http_rps", "engine_seq_s", "server_cpu_ms_per_request", "ratio"):
            assert math.isfinite(side[key]) and side[key] > 0, (key, side[key])
        threads = side["threads_ms_per_request"]
        assert threads["forward"] > 0 and threads["main"] > 0
        assert "forward process, other" in threads  # the forward ran in its own process
