"""Real DeBERTa-v3 and ModernBERT checkpoints, when one is on this machine: loaded as the
service loads them, nothing active equals the transformers model's own forward, and a mixed
batch equals each row alone. Nothing is downloaded: the directory comes from an environment
variable, or the checkpoint from the Hugging Face hub cache (`local_files_only`); absent,
the test is skipped with the reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from adapters.backbone import load_backbone, resolve_backbone_path
from adapters.bank import TaskBank
from adapters.config import MethodConfig
from adapters.errors import BackboneError
from adapters.model import UniPELTModel
from harness.tasks import random_task

pytestmark = pytest.mark.slow
CHECKPOINTS = {  # family -> (variable naming a directory, hub names looked up in the cache)
    "deberta": (
        "UNIPELT_TEST_DEBERTA",
        ("microsoft/deberta-v3-xsmall", "microsoft/deberta-v3-small", "microsoft/deberta-v3-base"),
    ),
    "modernbert": ("UNIPELT_TEST_MODERNBERT", ("answerdotai/ModernBERT-base",)),
}
P = MethodConfig.preset
TASKS = [(P("apl"), 2), (P("ia3"), 3), (P("p", prefix_length=4), 2), (P("l"), 2)]


def local_checkpoint(family: str) -> str:
    variable, names = CHECKPOINTS[family]
    given = os.environ.get(variable)
    if given:
        if not Path(given).is_dir():
            pytest.fail(f"{variable}={given} is not a directory")
        return given
    for name in names:
        try:
            return str(resolve_backbone_path(name)[1])
        except BackboneError:
            continue
    pytest.skip(
        f"no local {family} checkpoint: set {variable} to its directory, or have one of "
        f"{', '.join(names)} in the hub cache"
    )


@pytest.mark.parametrize("family", list(CHECKPOINTS))
def test_a_local_checkpoint_runs_exactly(family):
    backbone = load_backbone(local_checkpoint(family))
    assert backbone.family.name == family
    vocab = backbone.config.vocab_size
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (4, 24), generator=g)
    lengths = torch.tensor([24, 17, 9, 3])
    mask = (torch.arange(24) < lengths[:, None]).long()
    ids = ids.masked_fill(mask == 0, backbone.config.pad_token_id or 0)
    model = UniPELTModel(backbone).eval()
    tasks = [(c, random_task(c, backbone, n, seed=i)) for i, (c, n) in enumerate(TASKS)]
    plain_task = (P("head"), random_task(P("head"), backbone, 2))
    bank = TaskBank.from_tasks([plain_task, *tasks], backbone.dims)
    with torch.no_grad():
        ref = backbone.model(input_ids=ids, attention_mask=mask).last_hidden_state
        plain = model(ids, mask, bank, torch.zeros(4, dtype=torch.long)).hidden
        assert ((plain - ref) * mask[..., None]).abs().max() < 1e-4
        slots = torch.tensor([1, 2, 3, 4])
        mixed = model(ids, mask, bank, slots).logits
        for i, n in enumerate(lengths.tolist()):
            alone = model(ids[i : i + 1, :n], mask[i : i + 1, :n], bank, slots[i : i + 1])
            labels = TASKS[i][1]
            torch.testing.assert_close(
                mixed[i, :labels], alone.logits[0, :labels], atol=1e-4, rtol=0
            )
