"""Method configs validate themselves; parameter counts match the paper's efficiency table."""

from __future__ import annotations

import pytest

from adapters.config import MethodConfig
from adapters.errors import ConfigError
from adapters.methods.prefix import prefix_mlp_parameter_count
from adapters.schema import BackboneDims, kept_parameter_count

BAD = [
    ({"lora_r": 0}, "lora_r"),
    ({"bottleneck": -1}, "bottleneck"),
    ({"prefix_length": 1.5}, "prefix_length"),
    ({"lora_alpha": 0}, "lora_alpha"),
    ({"adapter_non_linearity": "softmax"}, "adapter_non_linearity"),
    ({"full_finetune": True}, "full_finetune"),
    ({"lora_r": 5000}, "too large"),
]


@pytest.mark.parametrize(("fields", "message"), BAD)
def test_invalid_values_are_named(fields, message):
    with pytest.raises(ConfigError, match=message):
        MethodConfig(**fields)


@pytest.mark.parametrize(
    ("preset", "name"),
    [
        ("apl", "APL"),
        ("ap", "AP"),
        ("a", "A"),
        ("l", "L"),
        ("apl-nogate", "APL-NoGate"),
        ("bitfit", "BitFit"),
        ("head", "Head"),
        ("ft", "FT"),
        ("ia3", "IA3"),
    ],
)
def test_preset_names(preset, name):
    assert MethodConfig.preset(preset).name == name


def test_unknown_fields_and_presets_are_refused():
    with pytest.raises(ConfigError, match="unknown method config fields"):
        MethodConfig.from_dict({"lora": True, "dora": True})
    with pytest.raises(ConfigError, match="unknown method"):
        MethodConfig.preset("dora")


def test_round_trip_dict():
    cfg = MethodConfig.preset("ap", bottleneck=24)
    assert MethodConfig.from_dict(cfg.to_dict()) == cfg


BERT_BASE = BackboneDims(hidden=768, layers=12, heads=12, intermediate=3072)


def test_bert_base_counts_match_the_paper():
    """Paper: prefix 184K + adapter 895K + LoRA 295K + gates 37K (kept), MLP 9.9M in training."""
    head = kept_parameter_count(MethodConfig.preset("head"), BERT_BASE, 2)
    parts = {
        "prefix": kept_parameter_count(MethodConfig.preset("p"), BERT_BASE, 2) - head,
        "adapter": kept_parameter_count(MethodConfig.preset("a"), BERT_BASE, 2) - head,
        "lora": kept_parameter_count(MethodConfig.preset("l"), BERT_BASE, 2) - head,
    }
    apl = kept_parameter_count(MethodConfig.preset("apl"), BERT_BASE, 2) - head
    assert parts == {"prefix": 184_320, "adapter": 894_528, "lora": 294_912}
    assert apl - sum(parts.values()) == 36_912  # gates: 12 layers x 4 x (768 + 1)
    ia3 = kept_parameter_count(MethodConfig.preset("ia3"), BERT_BASE, 2) - head
    assert ia3 == 12 * (768 + 768 + 768 + 3072)  # l_k, l_v, l_o, l_ff per layer
    mlp = prefix_mlp_parameter_count(MethodConfig.preset("p"), BERT_BASE)
    assert 9.8e6 < mlp < 10.0e6


@pytest.mark.parametrize(
    ("preset", "used"),
    [
        ("apl", (8, 48, 10)),
        ("a", (0, 48, 0)),
        ("l", (8, 0, 0)),
        ("p", (0, 0, 10)),
        ("head", (0, 0, 0)),
    ],
)
def test_a_size_counts_only_when_its_submodule_is_on(preset, used):
    sizes = MethodConfig.preset(preset).used_sizes
    assert (sizes.lora_rank, sizes.bottleneck, sizes.prefix_length) == used


def test_max_tokens_leaves_out_positions_roberta_reserves(tiny_bert, tiny_roberta):
    assert (tiny_bert.max_positions, tiny_bert.max_tokens) == (64, 64)
    assert (tiny_roberta.max_positions, tiny_roberta.max_tokens) == (64, 62)  # padding_idx 1
