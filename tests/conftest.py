"""Shared fixtures: tiny random encoders, the packaged MiniLM, the GLUE folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adapters.backbone import Backbone, backbone_from_model, load_backbone

GLUE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue"


def tiny_backbone(model_type: str = "bert", seed: int = 0, layers: int = 2) -> Backbone:
    """A randomly initialised encoder small enough for unit tests."""
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(seed)
    config = AutoConfig.for_model(
        model_type,
        vocab_size=120,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        type_vocab_size=2,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        pad_token_id=1 if model_type == "roberta" else 0,
    )
    model = AutoModel.from_config(config, attn_implementation="sdpa")
    return backbone_from_model(model, name=f"tiny-{model_type}-{seed}")


WINDOW = 8  # tiny ModernBERT's local_attention: a local query sees 4 tokens either side


def tiny_modernbert(seed: int = 0, global_only: bool = False) -> Backbone:
    from transformers import ModernBertConfig, ModernBertModel

    torch.manual_seed(seed)
    kinds = ["full_attention", "sliding_attention", "sliding_attention", "full_attention"]
    config = ModernBertConfig(
        vocab_size=120,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=64,
        local_attention=WINDOW,
        layer_types=["full_attention"] * 4 if global_only else kinds,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        cls_token_id=1,
        sep_token_id=2,
    )
    model = ModernBertModel(config)
    model.config._attn_implementation = "sdpa"
    return backbone_from_model(model, name=f"tiny-modernbert-{seed}")


@pytest.fixture(scope="session")
def tiny_bert() -> Backbone:
    return tiny_backbone("bert")


@pytest.fixture(scope="session")
def tiny_roberta() -> Backbone:
    return tiny_backbone("roberta", seed=1)


@pytest.fixture(scope="session")
def minilm() -> Backbone:
    return load_backbone()


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    if not (GLUE_DIR / "SST-2" / "train.tsv").exists():
        pytest.skip(f"GLUE data not found at {GLUE_DIR} (only present on the project's machines)")
    return GLUE_DIR


@pytest.fixture
def keep_torch_threads():
    """`--threads 1` sets torch's global thread count; put it back for other tests."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
