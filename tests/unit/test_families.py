"""Backbone families: a checkpoint's model_type chooses one; others are refused by name."""

from __future__ import annotations

import pytest

from adapters.backbone import load_backbone
from adapters.errors import BackboneError
from adapters.families import FAMILIES


def test_an_unsupported_model_type_is_refused_naming_the_families(tmp_path):
    from transformers import AutoConfig

    AutoConfig.for_model("gpt2", n_layer=1, n_embd=16, n_head=2).save_pretrained(tmp_path)
    with pytest.raises(BackboneError) as err:
        load_backbone(str(tmp_path))
    message = str(err.value)
    assert "'gpt2' is not supported" in message
    for family in FAMILIES:
        assert family.name in message and all(t in message for t in family.model_types)
