"""A tiny ModernBERT, and a tiny DeBERTa-v3, saved to a directory: `unipelt train --backbone
PATH` trains on it, the artifact records its family and fingerprint, a service run with
`UNIPELT_BACKBONE=PATH` serves it, and an artifact of another backbone is refused with
`backbone_mismatch`."""

from __future__ import annotations

import httpx
import pytest

from adapters import constants as C
from adapters.artifact import load_artifact
from adapters.backbone import load_backbone
from cli.main import main
from harness.peft_models import save_word_tokenizer, saved_encoder
from harness.service_process import start_service, upload
from harness.tasks import artifact_bytes
from tests.conftest import tiny_backbone, tiny_deberta, tiny_modernbert

pytestmark = [pytest.mark.service, pytest.mark.slow, pytest.mark.usefixtures("keep_torch_threads")]
ROWS = [("w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15", "pos"), ("w60 w61 w62", "neg")] * 8


ENCODERS = {"modernbert": tiny_modernbert, "deberta": lambda: tiny_deberta("v3")}


@pytest.mark.parametrize("family", list(ENCODERS))
def test_train_and_serve_on_a_saved_encoder(tmp_path, capsys, family):
    base = saved_encoder(ENCODERS[family](), tmp_path / family)
    save_word_tokenizer(base, vocab_size=120)
    train = tmp_path / "train.csv"
    train.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in ROWS))
    out = tmp_path / "artifact"
    code = main(
        f"train --backbone {base} --train-file {train} --test-file {train} --method apl "
        f"--epochs 1 --batch-size 4 --output {out} --threads 1 --no-progress".split()
    )
    assert code == 0, capsys.readouterr().err
    backbone = load_backbone(str(base))
    artifact = load_artifact(out, backbone)
    assert artifact.manifest.backbone.family == family
    assert artifact.manifest.backbone.fingerprint == backbone.fingerprint

    service = start_service(tmp_path / "svc", {"UNIPELT_BACKBONE": str(base)})
    try:
        ours = upload(
            service.url, (out / C.MANIFEST_FILE).read_bytes(), (out / C.WEIGHTS_FILE).read_bytes()
        )
        assert ours.status_code in (200, 201), ours.text
        task = artifact.manifest.task
        r = httpx.post(f"{service.url}/v1/{task}/predict", json={"inputs": ["w5 w6"]}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["predictions"][0]["label"] in ("neg", "pos")
        other = artifact_bytes("other", artifact.config, tiny_backbone("bert"))
        r = upload(service.url, *other)
        assert r.status_code == 422 and r.json()["error"] == "backbone_mismatch", r.text
    finally:
        service.stop()
