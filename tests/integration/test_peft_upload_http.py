"""PEFT uploads over HTTP (the real app in-process, embedded Redis, the packaged MiniLM): every
part a client can get wrong is a 422 with the reason, never a 500, and stores nothing; sizes
are checked against this server's limits before anything is allocated."""

from __future__ import annotations

import json

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from adapters import peft_layout as P
from adapters.backbone import packaged_backbone_path
from adapters.peft_import import read_peft_dir
from harness.peft_models import make_peft_adapter
from service.main import create_app
from service.settings import Settings

pytestmark = [pytest.mark.service, pytest.mark.slow]
pytest.importorskip("peft")
TASK = "peftbad"


@pytest.fixture(scope="module")
def client(minilm, tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("svc"), batch_window_ms=1)
    with TestClient(create_app(settings, backbone=minilm)) as c:
        yield c


@pytest.fixture(scope="module")
def query_only(tmp_path_factory) -> tuple[bytes, bytes]:
    out = tmp_path_factory.mktemp("peft")
    make_peft_adapter(packaged_backbone_path(), out, num_labels=2, target_modules=["query"])
    return read_peft_dir(out)


def put(client, config: bytes, weights: bytes, **fields: str):
    files = {
        "adapter_config": (P.CONFIG_FILE, config),
        "adapter_weights": (P.WEIGHTS_FILE, weights),
    }
    return client.put("/adapters", files=files, data={"task": TASK, **fields})


def config_with(base: bytes, **changes) -> bytes:
    return json.dumps({**json.loads(base), **changes}).encode()


def weights_with(base: bytes, add: dict | None = None, metadata: dict | None = None) -> bytes:
    return save_safetensors({**load_safetensors(base), **(add or {})}, metadata)


VALUE_A = P.layer_key("bert", 0, "attention.self.value", "lora_A.weight")
VALUE_B = P.layer_key("bert", 0, "attention.self.value", "lora_B.weight")
CASES = {
    "labels-deep": ({}, {}, None, {"labels": "[" * 100_000}, "labels"),
    "targets-nested": ({"target_modules": [["query"]]}, {}, None, {}, "target_modules"),
    "targets-object": ({"target_modules": [{}]}, {}, None, {}, "target_modules"),
    "targets-mixed": ({"target_modules": [1, "x"]}, {}, None, {}, "target_modules"),
    "r-1e9": ({"r": 10**9}, {}, None, {}, "r must be"),
    "r-2^70": ({"r": 2**70}, {}, None, {}, "r must be"),
    "r-20000": ({"r": 20_000}, {}, None, {}, "r must be"),
    "r-over-limit": ({"r": 17}, {}, None, {}, "UNIPELT_POOL_MAX_LORA_RANK"),
    "metadata-labels-deep": ({}, {}, {"format": "pt", P.META_LABELS: "[" * 50_000}, {}, "label"),
    "untargeted-value": (
        {},
        {VALUE_A: torch.randn(4, 384), VALUE_B: torch.randn(384, 4)},
        None,
        {},
        "target_modules",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_peft_parts_are_422_with_the_reason(client, query_only, case):
    config, add, metadata, fields, reason = CASES[case]
    weights = weights_with(query_only[1], add, metadata) if add or metadata else query_only[1]
    r = put(client, config_with(query_only[0], **config), weights, **fields)
    assert r.status_code == 422, r.text[:500]
    assert r.json()["error"] == "invalid_adapter" and reason in r.json()["detail"], r.text[:500]
    assert client.get(f"/adapters/{TASK}").status_code == 404  # nothing stored


def test_the_valid_baseline_is_accepted(client, query_only):
    r = put(client, *query_only, labels="no,yes")
    assert r.status_code == 201, r.text
    assert client.post(f"/v1/{TASK}/predict", json={"inputs": "fine"}).status_code == 200
    assert client.delete(f"/adapters/{TASK}").status_code == 200
