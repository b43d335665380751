"""The service in bfloat16 (UNIPELT_DTYPE): artifacts stored in float32 and in float16 serve
predictions within the precision bound of docs/architecture.md of the float32 forward, and the
caller's float32 backbone is left as it was."""

from __future__ import annotations

import pytest
import torch
from fastapi.testclient import TestClient

from adapters.artifact import cast_weights, serialize
from adapters.bank import TaskBank
from adapters.config import MethodConfig
from adapters.model import UniPELTModel
from adapters.precision import precision_bound
from adapters.tokenization import encode, load_tokenizer
from harness.tasks import make_manifest, random_task
from service.main import create_app
from service.settings import Settings

pytestmark = [pytest.mark.service, pytest.mark.slow]
TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CFG = MethodConfig.preset("apl")
LABELS = ["negative", "positive"]
TEXTS = ["a gripping, beautifully shot film", "dull and far too long", "it was fine"]


def test_bfloat16_service_matches_float32_within_the_bound(minilm, tmp_path):
    settings = Settings(
        data_dir=tmp_path, api_token=TOKEN, max_length=64, batch_window_ms=2, dtype="bfloat16"
    )
    weights = random_task(CFG, minilm, 2, seed=4)
    with TestClient(create_app(settings, backbone=minilm)) as client:
        for name, stored in (("fp32", "float32"), ("fp16", "float16")):
            manifest = make_manifest(name, CFG, minilm, LABELS)
            parts = serialize(manifest, cast_weights(weights, stored))
            files = {"manifest": ("manifest.json", parts[0]), "weights": ("a.st", parts[1])}
            assert client.put("/adapters", files=files, headers=AUTH).status_code == 201
        served = {
            name: client.post(f"/v1/{name}/predict", json={"inputs": TEXTS}).json()
            for name in ("fp32", "fp16")
        }
    assert next(minilm.model.parameters()).dtype == torch.float32, served
    enc = encode(load_tokenizer(minilm.path), TEXTS)
    bank = TaskBank.from_tasks([(CFG, weights)], minilm.dims)
    with torch.no_grad():
        logits = (
            UniPELTModel(minilm)
            .eval()(enc.input_ids, enc.attention_mask, bank, torch.zeros(3, dtype=torch.long))
            .logits
        )
    probs = torch.softmax(logits, -1)
    bound = precision_bound(torch.bfloat16, logits)
    for body in served.values():
        assert "predictions" in body, body
        for i, result in enumerate(body["predictions"]):
            got = torch.tensor([result["scores"][label] for label in LABELS])
            assert float((got - probs[i]).abs().max()) <= bound, (body, probs)
