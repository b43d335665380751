"""The fused per-slot layout the mixed forward reads, built from a task's artifact tensors.

A task's tensors are stored in the artifact one per submodule (`schema.expected_shapes`). The
bank keeps them fused, per layer, so one batched matmul does the work of several:

- `in_w` (3 + 2R, d), used transposed: the prefix and both LoRA gates, then A_q and A_v
  interleaved by rank ([g_p, g_q, g_v, a_q0, a_v0, a_q1, a_v1, ...]); with `in_b` (1, 3 + 2R)
  one baddbmm gives the three gate logits and both LoRA down-projections.
- `lora_up` (3 + 2R, 2d): rows 0-2 zero, then B_q and B_v rows in the same interleaved order,
  block-diagonal into [q | v], so one baddbmm adds both LoRA deltas to the q and v columns of
  the fused QKV output (whose column order is [q | v | k]).
- `prefix` (P, 2d): [P_V | P_K], to prepend to the [v | k] columns of the QKV output in one
  cat (rows of 2d contiguous values: a cheap copy).
- `ad_w` (1 + M, d) used transposed, `ad_b` (1, 1 + M): the adapter's gate folded into its
  down-projection (row 0); `ad_up` (1 + M, d) has a zero row 0, so the gate adds nothing.
- biases carry a singleton token dimension so they broadcast in baddbmm without a reshape.

Sizes are trimmed to a batch's largest rank, bottleneck, prefix length and label count by
cutting one leading dimension of each per-layer block (a prefix of it), which keeps the
gather of a trimmed bank tensor a copy of contiguous runs.
Everything a task does not use, and every padding row or column, is zero, which is exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from adapters import constants as C
from adapters.schema import BackboneDims, bitfit_sizes

GATES_IN = 3  # prefix, lora_q, lora_v gate columns at the front of `in_w`
BITFIT_SINGLE = ("attn_out", "ln_attn", "ffn_in", "ffn_out", "ln_ffn")
HEAD = ("head_w", "head_b", "head_out_w", "head_out_b")


def fused_shapes(
    dims: BackboneDims, rank: int, bottleneck: int, prefix: int, labels: int
) -> dict[str, tuple[int, ...]]:
    """Per-slot shape of every fused tensor (layer tensors lead with L)."""
    L, d = dims.layers, dims.hidden
    c, a = GATES_IN + 2 * rank, 1 + bottleneck
    shapes: dict[str, tuple[int, ...]] = {
        "in_w": (L, c, d),
        "in_b": (L, 1, c),
        "lora_up": (L, c, 2 * d),
        "prefix": (L, prefix, 2 * d),
        "ad_w": (L, a, d),
        "ad_b": (L, 1, a),
        "ad_up": (L, a, d),
        "ad_up_b": (L, 1, d),
        "bitfit_qkv": (L, 1, 3 * d),
    }
    widths = bitfit_sizes(dims)
    shapes.update({f"bitfit_{t}": (L, 1, widths[t]) for t in BITFIT_SINGLE})
    shapes.update(head_w=(d, d), head_b=(1, d), head_out_w=(d, labels), head_out_b=(1, labels))
    return shapes


def mixing_shapes(rank: int, bottleneck: int) -> dict[str, tuple[int, ...]]:
    """Per-slot shapes of the gate-mixing tables (see `mixing`)."""
    c, a = GATES_IN + 2 * rank, 1 + bottleneck
    return {"lora_off": (1, c), "lora_on": (c, c), "ad_off": (1, 1), "ad_on": (a, 1)}


# How a batch trims each tensor to its sizes: (dimensions, what they hold).
TRIM = {
    "in_w": ((-2,), "rank"),
    "in_b": ((-1,), "rank"),
    "lora_up": ((-2,), "rank"),
    "lora_off": ((-1,), "rank"),
    "lora_on": ((-2, -1), "rank"),
    "prefix": ((-2,), "prefix"),
    "ad_w": ((-2,), "bottleneck"),
    "ad_b": ((-1,), "bottleneck"),
    "ad_up": ((-2,), "bottleneck"),
    "ad_on": ((-2,), "bottleneck"),
    "head_out_w": ((-1,), "labels"),
    "head_out_b": ((-1,), "labels"),
}


def trimmed_width(kind: str, size: int) -> int:
    """Width of a trimmed dimension for `size` units of `kind`."""
    return {"rank": GATES_IN + 2 * size, "bottleneck": 1 + size}.get(kind, size)


def mixing(
    gate_on: Sequence[float], const: list[float], rank: int, bottleneck: int
) -> dict[str, Tensor]:
    """One slot's gate-mixing tables: each scale is `off + means @ on`, where `means` are the
    gate means of a fused projection's columns. For the in-projection (3 + 2r columns), column
    0 carries the prefix scale and the LoRA columns their q or v scale; for the adapter, one
    scale. A learned gate where the task has gates (on), its constant scale elsewhere (off)."""
    c = GATES_IN + 2 * rank
    spread = torch.zeros(GATES_IN, c)  # gate -> the columns it scales
    spread[0, 0] = 1.0
    spread[1, GATES_IN::2] = 1.0
    spread[2, GATES_IN + 1 :: 2] = 1.0
    on = torch.tensor([float(g) for g in gate_on])
    off = torch.tensor(const) * (1.0 - on)
    lora_on = torch.zeros(c, c)
    lora_on[:GATES_IN] = on[:GATES_IN, None] * spread
    ad_on = torch.zeros(1 + bottleneck, 1)
    ad_on[0, 0] = on[C.GATE_ADAPTER]
    return {
        "lora_off": (off[:GATES_IN] @ spread).unsqueeze(0),
        "lora_on": lora_on,
        "ad_off": off[C.GATE_ADAPTER :].view(1, 1),
        "ad_on": ad_on,
    }


def _pad(t: Tensor, dim: int, size: int) -> Tensor:
    """Zero-pad dimension `dim` (negative) of t up to `size`."""
    missing = size - t.shape[dim]
    if missing < 0:
        raise ValueError(f"size {t.shape[dim]} exceeds the slot's {size}")
    if missing == 0:
        return t
    pad = [0, 0] * (-dim - 1) + [0, missing]
    return F.pad(t, pad)


def fuse(
    tensors: dict[str, Tensor],
    dims: BackboneDims,
    sizes: tuple[int, int, int, int],
    like: Tensor,
) -> dict[str, Tensor]:
    """The fused layout of one task (artifact-layout `tensors`), padded to `sizes`
    (rank, bottleneck, prefix, labels). Differentiable: training builds it from live
    parameters. `like` gives the dtype and device of tensors the task lacks."""
    R, M, P, N = sizes
    L, d = dims.layers, dims.hidden

    def get(name: str, shape: tuple[int, ...]) -> Tensor:
        t = tensors.get(name)
        return t if t is not None else like.new_zeros(shape)

    gate_w = get("gate_w", (L, d, len(C.GATE_NAMES)))
    gate_b = get("gate_b", (L, len(C.GATE_NAMES)))
    a_q, a_v = (_pad(get(n, (L, d, 0)), -1, R) for n in ("lora_q_A", "lora_v_A"))
    b_q, b_v = (_pad(get(n, (L, 0, d)), -2, R) for n in ("lora_q_B", "lora_v_B"))
    inter = torch.stack([a_q, a_v], dim=-1).reshape(L, d, 2 * R)
    zeros = like.new_zeros(L, R, d)
    up = torch.stack([torch.cat([b_q, zeros], -1), torch.cat([zeros, b_v], -1)], dim=2)
    pv = _pad(get("prefix_v", (L, 0, d)), -2, P)
    pk = _pad(get("prefix_k", (L, 0, d)), -2, P)
    down = _pad(get("adapter_down_w", (L, d, 0)), -1, M)
    down_b = _pad(get("adapter_down_b", (L, 0)), -1, M)
    up_w = _pad(get("adapter_up_w", (L, 0, d)), -2, M)
    widths = bitfit_sizes(dims)
    bitfit = {t: get(f"bitfit_{t}", (L, w)).unsqueeze(1) for t, w in widths.items()}
    out = {
        "in_w": torch.cat([gate_w[..., :GATES_IN], inter], -1).transpose(1, 2),
        "in_b": F.pad(gate_b[:, :GATES_IN], (0, 2 * R)).unsqueeze(1),
        "lora_up": F.pad(up.reshape(L, 2 * R, 2 * d), (0, 0, GATES_IN, 0)),
        "prefix": torch.cat([pv, pk], -1),
        "ad_w": torch.cat([gate_w[..., C.GATE_ADAPTER :], down], -1).transpose(1, 2),
        "ad_b": torch.cat([gate_b[:, C.GATE_ADAPTER :], down_b], -1).unsqueeze(1),
        "ad_up": F.pad(up_w, (0, 0, 1, 0)),
        "ad_up_b": get("adapter_up_b", (L, d)).unsqueeze(1),
        "bitfit_qkv": torch.cat([bitfit["q"], bitfit["v"], bitfit["k"]], -1),
        "head_w": tensors["head_dense_w"],
        "head_b": tensors["head_dense_b"].unsqueeze(0),
        "head_out_w": _pad(tensors["head_out_w"], -1, N),
        "head_out_b": _pad(tensors["head_out_b"], -1, N).unsqueeze(0),
    }
    out.update({f"bitfit_{t}": bitfit[t] for t in BITFIT_SINGLE})
    return out


def unfused(tensors: dict[str, Tensor], name: str, slot: int) -> Tensor:
    """One slot's artifact-layout tensor `name` read back from the fused layout, at the
    bank's sizes (a view where the layout allows, else a copy)."""
    t = {k: v[slot] for k, v in tensors.items()}
    d = t["ad_up_b"].shape[-1]
    g = GATES_IN
    if name.startswith("lora_"):
        first = g if name[5] == "q" else g + 1
        if name.endswith("A"):
            return t["in_w"][:, first::2].transpose(1, 2)
        cols = slice(0, d) if name[5] == "q" else slice(d, 2 * d)
        return t["lora_up"][:, first::2, cols]
    if name in ("gate_w", "gate_b"):
        w = name == "gate_w"
        parts = (
            (t["in_w"][:, :g], t["ad_w"][:, :1])
            if w
            else (t["in_b"][:, 0, :g], t["ad_b"][:, 0, :1])
        )
        return torch.cat([p.transpose(1, 2) if w else p for p in parts], -1)
    if name.startswith("prefix_"):
        return t["prefix"][..., d:] if name == "prefix_k" else t["prefix"][..., :d]
    adapter = {
        "adapter_down_w": lambda: t["ad_w"][:, 1:].transpose(1, 2),
        "adapter_down_b": lambda: t["ad_b"][:, 0, 1:],
        "adapter_up_w": lambda: t["ad_up"][:, 1:],
        "adapter_up_b": lambda: t["ad_up_b"][:, 0],
        "head_dense_w": lambda: t["head_w"],
        "head_dense_b": lambda: t["head_b"][0],
        "head_out_w": lambda: t["head_out_w"],
        "head_out_b": lambda: t["head_out_b"][0],
    }
    if name in adapter:
        return adapter[name]()
    qkv = {"bitfit_q": 0, "bitfit_v": 1, "bitfit_k": 2}
    if name in qkv:
        return t["bitfit_qkv"][:, 0, qkv[name] * d : (qkv[name] + 1) * d]
    return t[name][:, 0]
