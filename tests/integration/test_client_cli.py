"""`unipelt push / ls / rollback / predict --url` against the real service (uvicorn + Redis),
and a PEFT adapter served with PeftModel's own logits."""

from __future__ import annotations

import csv
import json

import httpx
import pytest
import torch

from adapters.artifact import load_artifact, save_artifact
from adapters.backbone import packaged_backbone_path
from adapters.config import MethodConfig
from adapters.peft_import import read_peft_dir
from adapters.tokenization import encode, load_tokenizer
from adapters.training.inference import Predictor
from cli.main import main
from harness.peft_models import make_peft_adapter, make_peft_ia3_adapter, peft_logits
from harness.service_process import free_port, start_service
from harness.tasks import make_manifest, random_task
from tests.helpers import REVIEW_COLUMNS, review_csv_files

pytestmark = [pytest.mark.service, pytest.mark.slow]
TOKEN = "s3cret-token-value"
L = MethodConfig.preset("l")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    running = start_service(tmp_path_factory.mktemp("svc"), {"UNIPELT_API_TOKEN": TOKEN})
    yield running
    running.stop()


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `unipelt ...` in-process; (exit code, stdout, stderr)."""
    monkeypatch.setenv("UNIPELT_API_TOKEN", TOKEN)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def artifact_dir(tmp_path, minilm, name: str, seed: int):
    labels = ["negative", "positive"]
    manifest = make_manifest(name, L, minilm, labels)
    return save_artifact(tmp_path / f"{name}-{seed}", manifest, random_task(L, minilm, 2, seed))


def test_push_ls_rollback_and_remote_predict(service, cli, tmp_path, minilm):
    url = ("--url", service.url)
    for seed, version in ((1, 1), (2, 2)):
        code, out, err = cli("push", str(artifact_dir(tmp_path, minilm, "movies", seed)), *url)
        assert (code, err) == (0, "") and out.startswith(f"movies: version {version} (live)")
    code, out, _ = cli("ls", *url)
    assert code == 0 and out.splitlines() == ["TASK    LIVE", "movies  2"]
    assert cli("rollback", "movies", *url)[1] == "movies: version 1 is live\n"
    assert cli("rollback", "movies", "--version", "2", *url)[1] == "movies: version 2 is live\n"
    code, out, err = cli("predict", *url, "movies", "a fine film", "awful")
    rows = out.splitlines()
    assert code == 0 and err == "movies version 2\n" and len(rows) == 2
    label, scores = rows[0].split("\t")
    assert label in ("negative", "positive") and scores.startswith("negative=")


def test_push_staged_traffic_promote_and_abort(service, cli, tmp_path, minilm):
    url = ("--url", service.url)
    assert cli("push", str(artifact_dir(tmp_path, minilm, "canary", 1)), *url)[0] == 0
    code, out, err = cli("push", str(artifact_dir(tmp_path, minilm, "canary", 2)), "--staged", *url)
    assert (code, err) == (0, "") and out.startswith("canary: version 2 (staged)")
    assert cli("traffic", "canary", *url)[1] == "canary: version 1 is live, no split\n"
    code, out, _ = cli("traffic", "canary", "1=90", "2=10", *url)
    assert (code, out) == (0, "canary: 1=90 2=10 (abort returns to 1)\n")
    code, out, _ = cli("push", str(artifact_dir(tmp_path, minilm, "canary", 3)), *url)
    assert "version 3 (not live: a traffic split is set, 1=90 2=10" in out
    code, _, err = cli("traffic", "canary", "1=90", "2=9", *url)
    assert code == 1 and "invalid_traffic: weights sum to 99, not 100" in err
    assert cli("promote", "canary", "2", *url)[1] == "canary: version 2 is live, no split\n"
    cli("traffic", "canary", "2=50", "3=50", *url)
    assert cli("abort", "canary", *url)[1] == "canary: version 2 is live, no split\n"
    with pytest.raises(SystemExit) as exit_info:  # a malformed weight: argparse, status 2
        cli("traffic", "canary", "2:100", *url)
    assert exit_info.value.code == 2


@pytest.mark.usefixtures("keep_torch_threads")
def test_a_trained_artifact_scores_the_same_through_the_service(service, cli, tmp_path, minilm):
    """`unipelt train` then `unipelt push`: the served predictions of the test file give the
    test accuracy the artifact was saved with, and the trainer's own probabilities."""
    train, test = review_csv_files(tmp_path)
    out = tmp_path / "trained"
    code, _, err = cli(
        *f"train --train-file {train} --test-file {test} {REVIEW_COLUMNS} --method apl "
        f"--epochs 3 --batch-size 8 --lr 1e-3 --output {out} --threads 1 --no-progress".split()
    )
    assert code == 0, err
    saved = load_artifact(out, minilm).manifest
    assert cli("push", str(out), "--url", service.url)[0] == 0
    with test.open() as f:
        rows = list(csv.DictReader(f))
    texts = [row["review"] for row in rows]
    served = httpx.post(
        f"{service.url}/v1/{saved.task}/predict", json={"inputs": texts}, timeout=60
    ).json()["predictions"]
    hits = [p["label"] == row["sentiment"] for p, row in zip(served, rows, strict=True)]
    assert sum(hits) / len(hits) == pytest.approx(saved.metrics["test_accuracy"])
    local = Predictor.load(out, minilm).predict(texts)
    for got, want in zip(served, local, strict=True):
        assert got["label"] == want.label
        assert all(abs(got["scores"][n] - p) < 1e-5 for n, p in want.scores.items())


def test_errors_are_one_line_with_a_nonzero_exit_and_no_token(service, cli, tmp_path, minilm):
    path = artifact_dir(tmp_path, minilm, "errs", 3)
    code, out, err = cli("push", str(path), "--url", service.url, "--token", "wrong-token")
    assert code == 1 and out == "" and err.count("\n") == 1 and "HTTP 401" in err
    assert "wrong-token" not in err
    code, _, err = cli("rollback", "nope", "--url", service.url)
    assert code == 1 and "HTTP 404" in err and err.count("\n") == 1
    code, _, err = cli("ls", "--url", f"http://127.0.0.1:{free_port()}")
    assert code == 1 and err.startswith("unipelt ls: error: cannot reach") and err.count("\n") == 1
    assert TOKEN not in err


def test_push_checks_the_artifact_before_uploading(service, cli, tmp_path, minilm):
    path = artifact_dir(tmp_path, minilm, "local-check", 4)
    blob = path / "adapter.safetensors"
    blob.write_bytes(blob.read_bytes()[:-8] + b"\0" * 8)  # a flipped tail: checksum fails
    code, _, err = cli("push", str(path), "--url", service.url)
    assert code == 2 and "sha256" in err
    assert "local-check" not in cli("ls", "--url", service.url)[1]  # nothing was sent


@pytest.mark.parametrize(
    ("num_labels", "via"),
    [(3, "import-peft"), (1, "import-peft"), (3, "peft-parts"), (3, "ia3-parts")],
    ids=["classification", "regression", "peft-multipart", "ia3-multipart"],
)
def test_served_peft_adapter_equals_peft_forward(service, cli, tmp_path, minilm, num_labels, via):
    """import-peft + push of our artifact, or push of the PEFT directory itself (the server
    converts the multipart parts): either way the served logits are PeftModel's (LoRA, and
    (IA)^3 with PEFT's default modules)."""
    peft_dir, task = tmp_path / "peft", f"peft-{num_labels}-{via}"
    if via == "ia3-parts":
        model = make_peft_ia3_adapter(packaged_backbone_path(), peft_dir, num_labels, ia3_std=0.2)
    else:
        model = make_peft_adapter(packaged_backbone_path(), peft_dir, num_labels, lora_std=0.05)
    labels = ["a", "b", "c"] if num_labels == 3 else None
    label_args = ["--labels", ",".join(labels)] if labels else []
    url = ("--url", service.url)
    if via == "import-peft":
        art = str(tmp_path / "art")
        converted = cli("import-peft", str(peft_dir), "--output", art, "--task", task, *label_args)
        assert converted[0] == 0
        code, _, err = cli("push", art, *url)
    else:
        code, _, err = cli("push", str(peft_dir), *url, "--task", task, *label_args)
    assert code == 0, err
    texts = ["a gripping, beautifully acted film", "dull and far too long", "fine"]
    served = httpx.post(
        f"{service.url}/v1/{task}/predict", json={"inputs": texts}, timeout=60
    ).json()["predictions"]
    batch = encode(load_tokenizer(minilm.path), texts)
    reference = peft_logits(model, batch.input_ids, batch.attention_mask, batch.token_type_ids)
    if num_labels == 1:
        got = torch.tensor([[row["value"]] for row in served])
        assert (got - reference).abs().max() < 1e-4
    else:
        got = torch.tensor([[row["scores"][n] for n in labels] for row in served])
        # probabilities from equal logits: compare the logits back, up to softmax's shift
        log_got = got.log() - got.log()[:, :1]
        log_ref = reference - reference[:, :1]
        assert (log_got - log_ref).abs().max() < 1e-4


def test_peft_uploads_that_cannot_be_represented_are_refused(service, tmp_path):
    peft_dir = tmp_path / "peft"
    make_peft_adapter(packaged_backbone_path(), peft_dir, 2, use_dora=True)
    config, weights = read_peft_dir(peft_dir)
    files = {"adapter_config": ("c.json", config), "adapter_weights": ("w", weights)}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.put(f"{service.url}/adapters", files=files, data={"task": "dora"}, headers=auth)
    assert r.status_code == 422 and "use_dora" in r.json()["detail"]
    other = json.dumps({**json.loads(config), "use_dora": False, "base_model_name_or_path": "x/y"})
    files["adapter_config"] = ("c.json", other.encode())
    r = httpx.put(f"{service.url}/adapters", files=files, data={"task": "other"}, headers=auth)
    assert r.status_code == 422 and r.json()["error"] == "backbone_mismatch"
    r = httpx.put(f"{service.url}/adapters", files=files, headers=auth)
    assert r.status_code == 422 and "task" in r.json()["detail"]
