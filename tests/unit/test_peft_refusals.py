"""PEFT conversion refuses what PEFT itself would not apply, checks every size before it
allocates, answers bad fields with an ArtifactError (never a crash), and takes a classifier
saved without task_type when its saved modules show the head."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from adapters import peft_layout as P
from adapters.backbone import Backbone, load_backbone
from adapters.errors import ArtifactError
from adapters.peft_header import Limits
from adapters.peft_import import ImportOptions, import_peft, read_peft_dir
from harness.peft_models import base_classifier, make_peft_adapter, peft_logits, saved_encoder
from service.engine.lifecycle.peft_upload import parse_labels
from tests.conftest import tiny_backbone

pytest.importorskip("peft")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bert(tmp_path_factory) -> Backbone:
    path = saved_encoder(tiny_backbone("bert"), tmp_path_factory.mktemp("bert"))
    return load_backbone(str(path))


@pytest.fixture(scope="module")
def query_only(bert, tmp_path_factory) -> Path:
    """A real PEFT adapter with LoRA on `query` only, on layer 1 only."""
    out = tmp_path_factory.mktemp("query-only")
    make_peft_adapter(bert.path, out, num_labels=2, target_modules=["query"])
    return out


def with_changes(peft_dir: Path, config: dict | None = None, add: dict | None = None) -> tuple:
    config_bytes, blob = read_peft_dir(peft_dir)
    data = {**json.loads(config_bytes), **(config or {})}
    tensors = {**load_safetensors(blob), **(add or {})}
    return json.dumps(data).encode(), save_safetensors(tensors)


def lora(layer: int, proj: str, part: str, r: int = 4, d: int = 32) -> dict:
    key = P.layer_key("bert", layer, f"attention.self.{proj}", f"lora_{part}.weight")
    return {key: torch.randn((r, d) if part == "A" else (d, r))}


def refused(parts: tuple, backbone: Backbone, **options) -> str:
    with pytest.raises(ArtifactError) as info:
        import_peft(*parts, backbone, ImportOptions(task="t", **options))
    return str(info.value)


# ---- G4: tensors PEFT would not apply are refused, never served -----------------------------
def test_value_tensors_not_in_target_modules_are_refused(bert, query_only):
    parts = with_changes(query_only, add={**lora(0, "value", "A"), **lora(0, "value", "B")})
    reason = refused(parts, bert)
    assert "value" in reason and "target_modules" in reason


def test_tensors_of_layers_outside_layers_to_transform_are_refused(bert, query_only):
    parts = with_changes(query_only, config={"layers_to_transform": [1]})
    assert "layers_to_transform" in refused(parts, bert)


def test_tensors_of_excluded_modules_are_refused(bert, query_only):
    excluded = "bert.encoder.layer.0.attention.self.query"
    parts = with_changes(query_only, config={"exclude_modules": [excluded]})
    assert "exclude_modules" in refused(parts, bert)


def test_integer_tensors_are_refused(bert, query_only):
    parts = with_changes(query_only, add={"base_model.model.classifier.bias": torch.ones(2).int()})
    assert "dtype" in refused(parts, bert)


# ---- G2: every bad field is an ArtifactError with the reason -------------------------------
BAD_CONFIGS = [
    ({"peft_type": {"LORA": 1}}, "peft_type"),
    ({"peft_type": ["LORA"]}, "peft_type"),
    ({"target_modules": [["query"]]}, "target_modules"),
    ({"target_modules": [{}]}, "target_modules"),
    ({"target_modules": [1, "x"]}, "target_modules"),
    ({"r": 10**9}, "r must be"),
    ({"r": 2**70}, "r must be"),
    ({"lora_alpha": 10**400}, "lora_alpha"),
    ({"modules_to_save": [["classifier"]]}, "modules_to_save"),
    ({"layers_to_transform": ["x"]}, "layers_to_transform"),
    ({"exclude_modules": [1]}, "exclude_modules"),
    ({"peft_type": {}}, "peft_type"),
    ({"peft_type": ["LORA"]}, "peft_type"),
]


@pytest.mark.parametrize(("config", "reason"), BAD_CONFIGS, ids=[str(c) for c, _ in BAD_CONFIGS])
def test_bad_config_fields_are_refused_with_the_reason(bert, query_only, config, reason):
    assert reason in refused(with_changes(query_only, config=config), bert)


@pytest.mark.parametrize(
    "value",
    ["[" * 50_000, "5", '["a", 1]', '{"a": 1}', "[" + '"a",' * 2000 + '"a"]'],
    ids=["deep", "number", "mixed", "object", "too-many"],
)
def test_bad_label_metadata_is_refused(bert, query_only, value):
    config_bytes, blob = read_peft_dir(query_only)
    forged = save_safetensors(load_safetensors(blob), {"format": "pt", P.META_LABELS: value})
    assert "label" in refused((config_bytes, forged), bert)


@pytest.mark.parametrize("text", ["[" * 100_000, '["a", 1]', "[1]", "[{}]"])
def test_bad_labels_field_is_refused(text):
    with pytest.raises(ArtifactError, match="labels"):
        parse_labels(text)


# ---- G3: sizes are checked against the limits before anything is allocated -----------------
def test_rank_and_labels_over_the_limits_are_refused(bert, query_only):
    small = Limits(max_lora_rank=2, rank_setting="UNIPELT_POOL_MAX_LORA_RANK")
    assert "r=4 exceeds the limit of 2 (UNIPELT_POOL" in refused(
        read_peft_dir(query_only), bert, limits=small
    )
    assert "2 labels exceed" in refused(
        read_peft_dir(query_only), bert, limits=Limits(max_labels=1)
    )


def test_a_declared_rank_is_checked_before_allocating(bert, query_only, tmp_path):
    """A small config declaring r = 10^6 with r = 4 tensors is refused before anything of
    that size exists (allocating per `r` first takes 1 GiB: 4 x layers x hidden x r floats)."""
    config_bytes, blob = with_changes(query_only, config={"r": 1024})
    (tmp_path / "config.json").write_bytes(config_bytes.replace(b'"r": 1024', b'"r": 1000000'))
    (tmp_path / "weights.safetensors").write_bytes(blob)
    script = f"""
import resource, sys
from pathlib import Path
from adapters.backbone import load_backbone
from adapters.errors import ArtifactError
from adapters.peft_header import Limits
from adapters.peft_import import ImportOptions, import_peft
backbone = load_backbone({str(bert.path)!r})
folder = Path({str(tmp_path)!r})
config = (folder / "config.json").read_bytes()
weights = (folder / "weights.safetensors").read_bytes()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    import_peft(config, weights, backbone, ImportOptions(task="t"))
except ArtifactError as exc:
    print("refused:", exc)
print("grew_mib", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused:" in done.stdout, done.stdout
    grew = float(done.stdout.split("grew_mib")[-1])
    assert grew < 64, done.stdout


def test_a_declared_head_size_is_checked_before_allocating(bert, query_only):
    config_bytes, blob = read_peft_dir(query_only)
    tensors = load_safetensors(blob)
    tensors["base_model.model.classifier.weight"] = torch.zeros(5000, 32)
    tensors["base_model.model.classifier.bias"] = torch.zeros(5000)
    assert "labels exceed" in refused((config_bytes, save_safetensors(tensors)), bert)


# ---- a classifier saved without task_type --------------------------------------------------
def test_classifier_saved_without_task_type_converts_exactly(bert, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["query", "value"], modules_to_save=["classifier"]
    )
    model = get_peft_model(base_classifier(bert.path, 3), config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.copy_(torch.randn_like(p) * (0.5 if "lora_" in name else 0.2))
    model.save_pretrained(str(tmp_path / "peft"))
    assert json.loads((tmp_path / "peft" / P.CONFIG_FILE).read_text())["task_type"] is None
    manifest, weights = import_peft(
        *read_peft_dir(tmp_path / "peft"), bert, ImportOptions(task="t", labels=["a", "b", "c"])
    )
    from adapters.artifact import save_artifact
    from adapters.training.inference import Predictor

    predictor = Predictor.load(save_artifact(tmp_path / "ours", manifest, weights), bert)
    torch.manual_seed(1)
    ids = torch.randint(3, 120, (2, 7))
    mask, types = torch.ones_like(ids), torch.zeros_like(ids)
    reference = PeftModel.from_pretrained(base_classifier(bert.path, 3), str(tmp_path / "peft"))
    expected = peft_logits(reference.eval(), ids, mask, types)
    assert (predictor.logits(ids, mask, types) - expected).abs().max() < 1e-4


def test_no_task_type_without_a_saved_head_names_the_fix(bert, query_only):
    parts = with_changes(query_only, config={"task_type": None, "modules_to_save": None})
    reason = refused(parts, bert)
    assert "SEQ_CLS" in reason and "modules_to_save" in reason
