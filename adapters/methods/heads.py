"""Per-task prediction heads on the first token: classification with N labels or regression.

Every task trains its own head, `act(h_0 W_d + b_d) W_o + b_o` with `act` the activation of
its backbone family's own classifier (tanh, GELU for DeBERTa's default `pooler_hidden_act`);
the dense layer starts from the backbone's pretrained pooler when it has one. Label counts of
different tasks are zero-padded to the batch's largest; each row keeps its first `num_labels`
logits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from adapters.dims import BackboneDims, BankSizes
from adapters.methods.base import HEAD, BankTensor, Method, Term, TermFn, pad_to

if TYPE_CHECKING:
    from adapters.backbone import Backbone
    from adapters.config import MethodConfig


class Heads(Method):
    name = "heads"
    paper_name = "Head only"
    size = "num_labels"
    learning_rate = 1e-3
    presets: ClassVar[dict[str, tuple[str, ...]]] = {"head": ()}

    def used_size(self, cfg: MethodConfig, num_labels: int) -> int:
        return num_labels

    def artifact_shapes(self, cfg, dims: BackboneDims, num_labels: int):
        d, n = dims.hidden, num_labels
        return {
            "head_dense_w": (d, d),
            "head_dense_b": (d,),
            "head_out_w": (d, n),
            "head_out_b": (n,),
        }

    def init(self, cfg: MethodConfig, backbone: Backbone, num_labels: int) -> dict[str, Tensor]:
        """Dense layer from the backbone's pretrained pooler when it has one, else N(0, 0.02)."""
        d = backbone.dims.hidden
        pooler = getattr(backbone.model, "pooler", None)
        if pooler is not None:
            dense_w = pooler.dense.weight.detach().t().clone()
            dense_b = pooler.dense.bias.detach().clone()
        else:
            dense_w, dense_b = torch.randn(d, d) * 0.02, torch.zeros(d)
        return {
            "head_dense_w": dense_w,
            "head_dense_b": dense_b,
            "head_out_w": torch.randn(d, num_labels) * 0.02,
            "head_out_b": torch.zeros(num_labels),
        }

    def bank_tensors(self) -> dict[str, BankTensor]:
        n = self.size
        return {
            "head_w": BankTensor(lambda d, s: (d.hidden, d.hidden), per_layer=False),
            "head_b": BankTensor(lambda d, s: (1, d.hidden), per_layer=False),
            "head_out_w": BankTensor(lambda d, s: (d.hidden, s.num_labels), n, (-1,), False),
            "head_out_b": BankTensor(lambda d, s: (1, s.num_labels), n, (-1,), False),
        }

    def fuse(self, tensors, dims: BackboneDims, sizes: BankSizes, like: Tensor):
        N = sizes.num_labels
        return {
            "head_w": tensors["head_dense_w"],
            "head_b": tensors["head_dense_b"].unsqueeze(0),
            "head_out_w": pad_to(tensors["head_out_w"], -1, N),
            "head_out_b": pad_to(tensors["head_out_b"], -1, N).unsqueeze(0),
        }

    def unfuse(self, fused: dict[str, Tensor], name: str) -> Tensor:
        ours = {"head_dense_w": "head_w", "head_dense_b": "head_b", "head_out_w": "head_out_w"}
        if name == "head_out_b" or name == "head_dense_b":
            return fused[ours.get(name, name)][0]
        return fused[ours[name]]

    def active(self, plan) -> bool:
        return True  # every row has a head (an empty slot's has no labels)

    def terms(self) -> dict[str, TermFn]:
        return {HEAD: head_logits}


def head_logits(hidden: Tensor, t: Term) -> Tensor:
    """hidden: (B, T, d); the rows' `head_w` (B, d, d), `head_b` (B, 1, d), `head_out_w`
    (B, d, n), `head_out_b` (B, 1, n). Returns logits (B, n)."""
    head = t.rows.slot
    pooled = hidden[:, :1]  # (B, 1, d) the first token
    h = t.activation(torch.baddbmm(head["head_b"], pooled, head["head_w"]))
    if t.training:
        h = F.dropout(h, t.dropout, True)
    return torch.baddbmm(head["head_out_b"], h, head["head_out_w"]).squeeze(1)
