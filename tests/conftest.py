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


# Tiny DeBERTa-v2 layouts: v2 (separate position projections, no buckets, a smaller embedding
# projected up, token types), v2 with shared keys and c2p alone, v3 (shared keys, 256 buckets,
# normed relative embeddings, no absolute positions) and v3 with 8 buckets, so the log buckets
# start within a test's sequence length.
DEBERTA_STYLES: dict[str, dict] = {
    "v2": dict(
        pos_att_type="c2p|p2c",
        share_att_key=False,
        position_buckets=-1,
        max_relative_positions=8,
        type_vocab_size=2,
        embedding_size=24,
    ),
    "v2-shared": dict(
        pos_att_type="c2p", share_att_key=True, position_buckets=-1, max_relative_positions=12
    ),
    "v3": dict(
        pos_att_type="p2c|c2p",
        share_att_key=True,
        position_buckets=256,
        max_relative_positions=512,
        norm_rel_ebd="layer_norm",
        position_biased_input=False,
        type_vocab_size=0,
    ),
    "v3-log": dict(
        pos_att_type="p2c|c2p",
        share_att_key=True,
        position_buckets=8,
        max_relative_positions=64,
        norm_rel_ebd="layer_norm",
        position_biased_input=False,
        type_vocab_size=0,
    ),
}


def tiny_deberta(style: str = "v3", seed: int = 0) -> Backbone:
    """A random DeBERTa-v2 of one of `DEBERTA_STYLES`; weights 5x the usual initial scale so
    attention is far from uniform and the relative-position terms move the outputs."""
    from transformers import DebertaV2Config, DebertaV2Model

    torch.manual_seed(seed)
    config = DebertaV2Config(
        vocab_size=120,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=64,
        relative_attention=True,
        pad_token_id=0,
        initializer_range=0.1,
        **{"type_vocab_size": 2, "position_biased_input": True, **DEBERTA_STYLES[style]},
    )
    return backbone_from_model(DebertaV2Model(config), name=f"tiny-deberta-{style}-{seed}")


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
