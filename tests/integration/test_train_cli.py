"""`unipelt train / eval / predict / demo` end to end with the packaged MiniLM, a few steps."""

from __future__ import annotations

import io
import json

import pytest
import torch

from adapters.artifact import load_artifact
from cli.main import main
from tests.helpers import REVIEW_COLUMNS, review_csv_files

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("keep_torch_threads")]


@pytest.fixture
def review_files(tmp_path):
    return review_csv_files(tmp_path)


def _last_json(text: str) -> dict:
    return json.loads(text[text.index("{") :])


def test_train_predict_eval_on_a_generic_csv(review_files, tmp_path, capsys, monkeypatch, minilm):
    train, test = review_files
    out = tmp_path / "artifact"
    columns = REVIEW_COLUMNS
    code = main(
        f"train --train-file {train} --test-file {test} {columns} --method apl --epochs 2 "
        f"--batch-size 8 --lr 1e-3 --output {out} --threads 1 --no-progress".split()
    )
    assert code == 0
    metrics = _last_json(capsys.readouterr().out)
    assert set(metrics) == {"dev_accuracy", "dev_f1", "test_accuracy", "test_f1"}
    artifact = load_artifact(out, minilm)
    assert artifact.manifest.task == "reviews" and artifact.manifest.label_names == ["neg", "pos"]
    assert artifact.manifest.metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"])

    assert main(["predict", str(out), "a wonderful film", "a dull film"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(line.split("\t")[0] in ("neg", "pos") for line in lines)
    assert all("neg=" in line and "pos=" in line for line in lines)

    monkeypatch.setattr("sys.stdin", io.StringIO("loved it\n\nhated it\n"))
    assert main(["predict", str(out)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2

    assert main(f"eval {out} --file {test} {columns}".split()) == 0
    scored = _last_json(capsys.readouterr().out)
    assert scored["examples"] == 6
    assert scored["accuracy"] == pytest.approx(metrics["test_accuracy"])


def test_train_ia3_on_a_generic_csv(review_files, tmp_path, capsys, minilm):
    """`--method ia3`: its vectors train (they start at one) and the artifact serves."""
    train, test = review_files
    out = tmp_path / "ia3"
    code = main(
        f"train --train-file {train} --test-file {test} {REVIEW_COLUMNS} --method ia3 "
        f"--epochs 2 --batch-size 8 --output {out} --threads 1 --no-progress".split()
    )
    assert code == 0
    assert "method IA3, lr " in capsys.readouterr().err
    artifact = load_artifact(out, minilm)
    assert artifact.config.name == "IA3"
    for name in ("ia3_k", "ia3_v", "ia3_attn_out", "ia3_ff"):
        assert (artifact.weights[name] - 1).abs().max() > 1e-3, name
    assert main(["predict", str(out), "a wonderful film"]) == 0
    assert capsys.readouterr().out.split("\t")[0] in ("neg", "pos")


def test_full_finetuning_refuses_to_save_an_artifact(review_files, tmp_path, capsys):
    code = main(f"train --train-file {review_files[0]} --method ft --output {tmp_path}/x".split())
    assert code == 2 and "not an adapter" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("device", ["cuda", "tpu:x"])
def test_train_names_an_unusable_device(review_files, capsys, device):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal cannot be shown")
    code = main(f"train --train-file {review_files[0]} --device {device}".split())
    assert code == 2 and f"--device {device}" in capsys.readouterr().err


def test_train_on_a_slice_of_glue_sst2(glue_dir, tmp_path, capsys, minilm):
    out = tmp_path / "sst2"
    code = main(
        f"train --task sst2 --data-dir {glue_dir} --k 32 --dev-size 32 --epochs 1 --method apl "
        f"--output {out} --threads 1 --no-progress".split()
    )
    assert code == 0
    metrics = _last_json(capsys.readouterr().out)
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and "dev_accuracy" in metrics
    manifest = load_artifact(out, minilm).manifest
    assert manifest.task == "sst2" and manifest.label_names == ["negative", "positive"]
    assert main(["predict", str(out), "a gorgeous, witty film"]) == 0
    assert capsys.readouterr().out.split("\t")[0] in ("negative", "positive")


def test_demo_trains_and_predicts(capsys):
    assert main(["demo", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "trained APL" in out and out.count(" -> ") == 2


def test_serve_passes_host_and_port(monkeypatch):
    import service.main

    seen = {}
    monkeypatch.setattr(
        service.main, "run", lambda host=None, port=None: seen.update(h=host, p=port)
    )
    assert main(["serve", "--host", "0.0.0.0", "--port", "9123"]) == 0
    assert seen == {"h": "0.0.0.0", "p": 9123}
