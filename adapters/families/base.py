"""What a backbone family declares: how to read a transformers encoder of that layout, and the
layer loop over its frozen modules, where the methods' terms attach (`adapters.methods.base`).

A family module (`adapters/families/<name>.py`) holds a `Family` (config checks, sizes, which
methods it refuses and why) and its layer loop, a `Stack` built once per `UniPELTModel`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adapters.dims import BackboneDims
from adapters.methods.base import Term

if TYPE_CHECKING:
    from adapters.backbone import Backbone
    from adapters.config import MethodConfig
    from adapters.packing import Packing
    from adapters.rows import BatchRows


class Stack(nn.Module):
    """A family's forward over the frozen encoder: embeddings, one layer, the last step."""

    hidden_dropout = 0.0  # the dropout the head applies to the last hidden states

    def pooler_activation(self, x: Tensor) -> Tensor:
        """The head's activation, `act(h_0 W_d + b_d)`: the family's own classifier's."""
        return torch.tanh(x)

    def embed(self, input_ids: Tensor, token_type_ids: Tensor | None, mask: Tensor) -> Tensor:
        """(B, T, d) the layer loop's input; `mask` (B, T) 1 on real tokens."""
        raise NotImplementedError

    def prepare(self, rows: BatchRows, mask: Tensor) -> Any:
        """Per-forward tensors every layer reads (positions, masks), built once; or None."""
        return None

    def layer(
        self,
        layer: Any,
        index: int,
        x: Tensor,
        padded: Tensor | None,
        rows: BatchRows,
        packing: Packing,
        want_gates: bool,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """One layer: (x, padded, gates), `x` packed or not, `padded` the same (B, T, d)."""
        raise NotImplementedError

    def finish(self, hidden: Tensor) -> Tensor:
        """The encoder's last step on (B, T, d) (a final norm), else the identity."""
        return hidden


class Family:
    """One backbone layout. Subclasses set the names and override the readers."""

    name = ""
    model_types: tuple[str, ...] = ()
    points: tuple[str, ...] | None = None  # the attach points its loop reaches (None: all)
    unreached = ""  # why it lacks the others
    fingerprint_keys: tuple[str, ...] = ()  # config keys its identity adds to the shared ones
    # the transformers attention to load its model with (None: the model's only one); the
    # layer loop runs its own attention, this one only serves the model's own forward
    attn_implementation: str | None = "sdpa"
    # PEFT's module names on this layout where they differ from BERT's (ours -> its)
    peft_names: ClassVar[dict[str, str]] = {}

    def load_options(self) -> dict[str, Any]:
        """transformers `from_pretrained` / `from_config` options for this family's models."""
        kind = self.attn_implementation
        return {} if kind is None else {"attn_implementation": kind}

    def check(self, config: Any) -> str | None:
        """What in a config of one of its model types this family cannot run, or None."""
        return None

    def peft_refusal(self, peft_type: str) -> str | None:
        """Why PEFT adapters of `peft_type` cannot be converted exactly on this family, or
        None."""
        return None

    def refusal(self, cfg: MethodConfig) -> str | None:
        """Why a method config cannot run exactly on this family, or None: a method it turns
        on attaches at a point this family's layers do not have."""
        from adapters.methods import METHODS

        if self.points is None:
            return None
        for method in METHODS:
            missing = sorted(set(method.term_fns) - set(self.points))
            if method.on(cfg) and missing:
                return (
                    f"{method.name} is not supported on the {self.name} family: it attaches at "
                    f"{missing}, which these layers do not have ({self.unreached})"
                )
        return None

    def layers(self, model: Any) -> nn.ModuleList:
        return model.encoder.layer

    def dims(self, config: Any) -> BackboneDims:
        return BackboneDims(
            hidden=config.hidden_size,
            layers=config.num_hidden_layers,
            heads=config.num_attention_heads,
            intermediate=config.intermediate_size,
        )

    def layer_norm_eps(self, config: Any) -> float:
        return float(config.layer_norm_eps)

    def stack(self, backbone: Backbone) -> Stack:
        raise NotImplementedError


def at(point: str, value: Tensor, t: Term) -> Tensor:
    """`value` through the terms attached at `point`, in registration order."""
    for term in t.rows.terms.get(point, ()):
        value = term(value, t)
    return value


def attend(
    q: Tensor,
    values_keys: Tensor,
    heads: int,
    mask: Tensor | None,
    dropout: float = 0.0,
    flat: bool = False,
    scale: float | None = None,
) -> Tensor:
    """Multi-head scaled dot-product attention. q: (B, T, d); values_keys: (B, S, 2d) [v | k];
    `mask` bool (True: seen) or added to the scores; `scale` (default 1 / sqrt(d_head)).
    Returns (B, T, d), or (B * T, d) when `flat`."""
    B, T, d = q.shape
    qh = q.unflatten(-1, (heads, d // heads)).transpose(1, 2)  # (B, H, T, dh)
    v, k = values_keys.unflatten(-1, (2, heads, d // heads)).permute(2, 0, 3, 1, 4).unbind(0)
    out = F.scaled_dot_product_attention(qh, k, v, attn_mask=mask, dropout_p=dropout, scale=scale)
    return out.transpose(1, 2).reshape((B * T, d) if flat else (B, T, d))


def layer_norm(ln: nn.LayerNorm, x: Tensor) -> Tensor:
    return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)
