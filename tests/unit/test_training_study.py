"""The study runner on a tiny fake GLUE grid, and the report built from its records."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest

from adapters.training.defaults import TrainSettings
from adapters.training.report import markdown, write_report
from adapters.training.study import RunKey, StudyConfig, run_one, run_study
from cli.main import main
from tests.unit.test_training_toy import (  # noqa: F401  (one_thread: autouse fixture)
    GOOD,
    NEUTRAL,
    one_thread,
    toy_tokenizer,
)


def _fake_glue(root: Path) -> Path:
    """SST-2 (single sentences) and RTE (pairs) in the official TSV layouts, toy words."""
    sst, rte = root / "SST-2", root / "RTE"
    sst.mkdir(parents=True)
    rte.mkdir()
    for split, n in (("train", 40), ("dev", 10)):
        rows = [
            f"{' '.join((GOOD if i % 2 else NEUTRAL)[i % 7 : i % 7 + 3])}\t{i % 2}"
            for i in range(n)
        ]
        (sst / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
        rows = [
            f"{i}\t{NEUTRAL[i % 50]} {NEUTRAL[i % 30]}\t{(GOOD if i % 2 else NEUTRAL)[i % 9]}\t"
            f"{'entailment' if i % 2 else 'not_entailment'}"
            for i in range(n)
        ]
        (rte / f"{split}.tsv").write_text(
            "index\tsentence1\tsentence2\tlabel\n" + "\n".join(rows) + "\n"
        )
    return root


@pytest.fixture
def config(tmp_path) -> StudyConfig:
    return StudyConfig(
        tasks=("SST-2", "rte"),
        ks=(8,),
        methods=("ft", "apl"),
        seeds=(0, 1),
        data_dir=_fake_glue(tmp_path / "glue"),
        out=tmp_path / "out",
        settings=TrainSettings(epochs=1, batch_size=4, lr=1e-3),
        by_k={"dev_size": {8: 6}},
    )


def test_grid_order_and_per_k_settings(config):
    grid = config.grid()
    assert grid[0] == RunKey("sst2", 8, "ft", 0) and grid[-1] == RunKey("rte", 8, "apl", 1)
    assert [k.seed for k in grid] == [0] * 4 + [1] * 4
    assert config.value("dev_size", 8) == 6 and config.value("dev_size", 100) == 500
    assert config.settings_for(grid[-1]).seed == 1


def test_unreadable_records_count_as_pending(config):
    key = config.grid()[0]
    path = config.record_path(key)
    path.parent.mkdir(parents=True)
    for text in ("{half", "\udcff", '{"settings": ' + "9" * 5000 + "}"):
        path.write_text(text, errors="surrogateescape")
        assert not config.finished(key)


def test_study_runs_the_grid_resumes_and_reports(config, tiny_bert):
    done = []
    ran = run_study(config, lambda i, n, r: done.append(r), tiny_bert, toy_tokenizer())
    assert ran == 8 and len(done) == 8
    assert {r["dev_size"] for r in done} == {6} and {r["train_size"] for r in done} == {8}
    assert run_study(config, None, tiny_bert, toy_tokenizer()) == 0  # all finished: skipped
    config.record_path(RunKey("rte", 8, "apl", 1)).unlink()
    assert run_study(config, None, tiny_bert, toy_tokenizer()) == 1
    other = replace(config, by_k={"dev_size": {8: 6}, "epochs": {8: 2}})
    assert len(other.pending()) == 8  # records made with other settings do not count
    path = config.record_path(RunKey("sst2", 8, "ft", 0))
    path.write_text(json.dumps({**json.loads(path.read_text()), "lr": 2e-5}))
    assert config.pending() == [RunKey("sst2", 8, "ft", 0)]  # nor another learning rate

    pytest.importorskip("matplotlib")
    paths = write_report(config.out)
    assert [p.name for p in paths] == ["results.csv", "results.md", "results.png"]
    with paths[0].open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and {r["method"] for r in rows} == {"ft", "apl"}
    table = paths[1].read_text()
    assert "| K=8 | SST-2 | RTE | Avg |" in table
    assert "| Fine-tuning |" in table and "| UniPELT (APL) |" in table and "±" in table
    assert paths[2].stat().st_size > 1000


def test_ia3_is_a_method_column(config, tiny_bert):
    one = replace(config, tasks=("sst2",), methods=("ft", "ia3"), seeds=(0,))
    assert run_study(one, None, tiny_bert, toy_tokenizer()) == 2
    table = write_report(one.out, with_plot=False)[1].read_text()
    assert "| Fine-tuning |" in table and "| (IA)^3 |" in table


def test_a_cell_another_process_finished_is_not_run_again(config, tiny_bert):
    tok, last = toy_tokenizer(), config.grid()[-1]

    def other_process(done, total, record):
        if done == 1:  # meanwhile, another study process on the same grid runs the last cell
            run_one(config, last, tiny_bert, tok)

    assert run_study(config, other_process, tiny_bert, tok) == 7
    assert config.pending() == []


def test_report_only_from_the_cli(config, tiny_bert, capsys):
    run_study(config, None, tiny_bert, toy_tokenizer())
    (config.out / "results.md").unlink(missing_ok=True)
    assert main(["study", "--report-only", "--no-plot", "--out", str(config.out)]) == 0
    assert (config.out / "results.md").is_file()
    assert "results.csv" in capsys.readouterr().out


def _record(task, method, seed, score, step=0.1, infer=0.01):
    return {
        "run_id": f"{task}-k100-{method}-s{seed}",
        "task": task,
        "k": 100,
        "method": method,
        "seed": seed,
        "test_main": score,
        "metrics": {"test_accuracy": score},
        "seconds_per_step": step,
        "test_seconds_per_example": infer,
        "kept_parameters": 1000,
        "trainable_parameters": 2000,
        "backbone_parameters": 100000,
        "steps": 200 + seed,
        "best_step": 100,
        "stopped_early": seed == 0,
        "lr": 5e-4,
        "wall_seconds": 60.0 * (seed + 1),
        "device": "cpu",
        "threads": 1,
    }


def test_markdown_means_averages_and_the_comparison():
    scores = {  # method -> (sst2, rte) per seed
        "ft": [(0.80, 0.50), (0.82, 0.54)],
        "a": [(0.70, 0.60), (0.72, 0.60)],
        "l": [(0.85, 0.50), (0.85, 0.50)],
        "apl": [(0.84, 0.58), (0.86, 0.58)],
    }
    records = [
        _record(task, m, seed, values[i], step=0.2 if m == "ft" else 0.1)
        for m, runs in scores.items()
        for seed, values in enumerate(runs)
        for i, task in enumerate(("sst2", "rte"))
    ]
    # a task only half run (FT, one seed) is shown but kept out of every average
    records.append(_record("mrpc", "ft", 0, 0.90, step=0.2))
    text = markdown(records)
    assert "| UniPELT (APL) | 85.00 ± 1.41 | – | 58.00 ± 0.00 | 71.50 |" in text
    assert "| Fine-tuning | 81.00 ± 1.41 | 90.00 ± 0.00 (n=1) | 52.00 ± 2.83 | 66.50 |" in text
    assert "same number of seeds (SST-2, RTE)." in text and "averaged over SST-2, RTE:" in text
    assert "| Adapter | 71.00 ± 1.41 | – | 60.00 ± 0.00 | 65.50 |" in text
    # best single on average: LoRA 67.50; per-task best of A/L: (85 + 60) / 2 = 72.50
    assert "LoRA, 67.50 (+4.00)" in text and "upper bound) 72.50 (-1.00)" in text
    assert "a single method beats APL on RTE" in text
    assert "| UniPELT (APL) | 1,000 | 1.00% | 2,000 | 50% | 100% |" in text
    # winner per task, and one row per cell of what ran
    assert (
        "- K=100 RTE: **Adapter** 60.00 (2 seed(s)), then UniPELT (APL) 58.00: gap 2.00, "
        "clear" in text
    )
    assert "SST-2: **LoRA** 85.00 (2 seed(s)), then UniPELT (APL) 85.00: gap 0.00, within" in text
    row = "| 100 | RTE | UniPELT (APL) | 0,1 | 200 (100) | 1/2 | 0.0005 | 90 | 0.10 | cpu, 1 thread"
    assert row in text
