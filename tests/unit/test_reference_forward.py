"""UniPELTModel against an independent reference written from the equations.

The reference reads the transformers weights and each task's exported tensors and runs one
row at a time, on its real tokens only, with plain torch: no function of the library's
forward (model, bank, lora, prefix, bottleneck, gate, heads, bitfit) is used. The model runs
the same rows as one mixed, padded batch. Equations (per layer l, row tokens x: (T, d)):

  gates      G_P, G_Lq, G_Lv = mean_t sigmoid(x W_g + b_g)       (constants 1, a/r, a/r, 1
  off)       G_A = mean_t sigmoid(f W_gA + b_gA), f the adapter input
  LoRA       q = x W_q + b_q + G_Lq (x A_q) B_q ;  v likewise with G_Lv
  prefix     K = [G_P P_K ; k],  V = [G_P P_V ; v]
  attention  softmax(q K^T / sqrt(d_h)) V per head, then dense, residual, LayerNorm -> h
  FFN        f = LayerNorm(act(h W_i) W_o + h)
  adapter    f + G_A (act_A(f W_down + b_down) W_up + b_up)
  head       tanh(x_0 W_dense + b_dense) W_out + b_out on the first token
  BitFit     deltas added to the q, k, v, attention-output, FFN biases and LayerNorm outputs
  (IA)^3     k <- l_k k, v <- l_v v (before the prefix), context <- l_o context before the
             attention's dense layer, act(h W_i) <- l_ff act(h W_i) before the FFN's second
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from adapters.bank import TaskBank
from adapters.config import MethodConfig
from adapters.model import UniPELTModel
from harness.tasks import random_task

P = MethodConfig.preset
TASKS = [  # (config, labels); 1 label: a regression head
    (P("apl"), 2),
    (P("apl-nogate", lora_alpha=4.0, lora_r=2, adapter_non_linearity="gelu"), 3),
    (P("a", bottleneck=5), 2),
    (P("p", prefix_length=3), 4),
    (P("l", lora_r=3, lora_alpha=6.0), 2),
    (P("apl", bottleneck=6, prefix_length=7, lora_r=4, adapter_non_linearity="tanh"), 1),
    (P("bitfit"), 2),
    (P("head"), 3),
    (P("ia3"), 2),
    (P("apl", ia3=True, bitfit=True, lora_r=2, prefix_length=3), 3),  # every method at once
]
ACT = {"relu": F.relu, "gelu": F.gelu, "tanh": torch.tanh, "swish": F.silu}
ATOL = 1e-5  # float32


def _linear(x: Tensor, module) -> Tensor:
    return x @ module.weight.T + module.bias


def _norm(x: Tensor, ln) -> Tensor:
    return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)


def _gate(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    return torch.sigmoid(x @ w + b).mean(0)


def reference_row(backbone, cfg: MethodConfig, w: dict[str, Tensor], ids, types):
    """(logits (n,), gates (L, 4)) of one row, from the equations above."""
    model, config = backbone.model, backbone.config
    emb = model.embeddings
    T = ids.shape[0]
    x = emb.word_embeddings.weight[ids] + emb.position_embeddings.weight[torch.arange(T)]
    x = _norm(x + emb.token_type_embeddings.weight[types], emb.LayerNorm)
    heads = config.num_attention_heads
    hidden_act = ACT[config.hidden_act]
    gated = cfg.gates and (cfg.adapter or cfg.prefix or cfg.lora)
    lora_scale = cfg.lora_alpha / cfg.lora_r
    all_gates = []
    for l, layer in enumerate(model.encoder.layer):

        def bias(name: str, l: int = l) -> Tensor | float:
            return w[f"bitfit_{name}"][l] if cfg.bitfit else 0.0

        sa = layer.attention.self
        g_p, g_q, g_v = (
            _gate(x, w["gate_w"][l][:, :3], w["gate_b"][l][:3])
            if gated
            else torch.tensor([1.0, lora_scale, lora_scale])
        )
        q = _linear(x, sa.query) + bias("q")
        k = _linear(x, sa.key) + bias("k")
        v = _linear(x, sa.value) + bias("v")
        if cfg.lora:
            q = q + g_q * (x @ w["lora_q_A"][l]) @ w["lora_q_B"][l]
            v = v + g_v * (x @ w["lora_v_A"][l]) @ w["lora_v_B"][l]
        if cfg.ia3:
            k, v = k * w["ia3_k"][l], v * w["ia3_v"][l]
        if cfg.prefix:
            k = torch.cat([g_p * w["prefix_k"][l], k])
            v = torch.cat([g_p * w["prefix_v"][l], v])
        dh = q.shape[1] // heads
        qh, kh, vh = (t.view(t.shape[0], heads, dh).transpose(0, 1) for t in (q, k, v))
        attn = torch.softmax(qh @ kh.transpose(1, 2) / math.sqrt(dh), dim=-1)
        context = (attn @ vh).transpose(0, 1).reshape(T, -1)
        if cfg.ia3:
            context = context * w["ia3_attn_out"][l]
        out = layer.attention.output
        h = _norm(_linear(context, out.dense) + bias("attn_out") + x, out.LayerNorm)
        h = h + bias("ln_attn")
        f = hidden_act(_linear(h, layer.intermediate.dense) + bias("ffn_in"))
        if cfg.ia3:
            f = f * w["ia3_ff"][l]
        f = _norm(_linear(f, layer.output.dense) + bias("ffn_out") + h, layer.output.LayerNorm)
        f = f + bias("ln_ffn")
        g_a = torch.tensor(1.0)
        if cfg.adapter:
            if gated:
                g_a = _gate(f, w["gate_w"][l][:, 3], w["gate_b"][l][3])
            z = ACT[cfg.adapter_non_linearity](f @ w["adapter_down_w"][l] + w["adapter_down_b"][l])
            f = f + g_a * (z @ w["adapter_up_w"][l] + w["adapter_up_b"][l])
        all_gates.append(torch.stack([g_p, g_q, g_v, g_a]))
        x = f
    pooled = torch.tanh(x[0] @ w["head_dense_w"] + w["head_dense_b"])
    return pooled @ w["head_out_w"] + w["head_out_b"], torch.stack(all_gates)


def _padded_batch(seed: int, rows: int, longest: int):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 120, (rows, longest), generator=g)
    types = torch.zeros_like(ids)
    lengths = torch.randint(2, longest + 1, (rows,), generator=g)
    mask = (torch.arange(longest) < lengths.unsqueeze(1)).long()
    for i, n in enumerate(lengths.tolist()):
        ids[i, n:] = 0
        types[i, n // 2 : n] = 1  # a second segment
    return ids, mask, types, lengths


def _check_mixed_batch(backbone, seed: int, rows: int = 12, longest: int = 10) -> None:
    torch.manual_seed(seed)
    tasks = [
        (cfg, random_task(cfg, backbone, n, seed=10 * seed + i)) for i, (cfg, n) in enumerate(TASKS)
    ]
    bank = TaskBank.from_tasks(tasks, backbone.dims)
    slots = torch.randint(0, len(TASKS), (rows,), generator=torch.Generator().manual_seed(seed))
    ids, mask, types, lengths = _padded_batch(seed, rows, longest)
    with torch.no_grad():
        out = UniPELTModel(backbone).eval()(ids, mask, bank, slots, types, return_gates=True)
        for i in range(rows):
            cfg, weights = tasks[int(slots[i])]
            n = int(lengths[i])
            logits, gates = reference_row(backbone, cfg, weights, ids[i, :n], types[i, :n])
            labels = TASKS[int(slots[i])][1]
            torch.testing.assert_close(out.logits[i, :labels], logits, rtol=0, atol=ATOL)
            if cfg.gates and (cfg.adapter or cfg.prefix or cfg.lora):
                present = [cfg.prefix, cfg.lora, cfg.lora, cfg.adapter]
                torch.testing.assert_close(
                    out.gates[i][:, present], gates[:, present], rtol=0, atol=ATOL
                )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mixed_padded_batch_matches_the_reference(tiny_bert, seed):
    _check_mixed_batch(tiny_bert, seed)


@pytest.mark.slow
def test_minilm_mixed_batch_matches_the_reference(minilm):
    _check_mixed_batch(minilm, seed=4, rows=8, longest=16)


def test_the_reference_is_sensitive_to_each_submodule(tiny_bert):
    """Control: dropping any one submodule's effect moves the logits far past the tolerance."""
    cfg, labels = TASKS[0]
    weights = random_task(cfg, tiny_bert, labels, seed=3)
    ids, _, types, _ = _padded_batch(3, 1, 8)
    base, _ = reference_row(tiny_bert, cfg, weights, ids[0], types[0])
    for name in ("lora_q_B", "lora_v_B", "prefix_k", "prefix_v", "adapter_up_w", "gate_w"):
        zeroed = {**weights, name: torch.zeros_like(weights[name])}
        other, _ = reference_row(tiny_bert, cfg, zeroed, ids[0], types[0])
        assert (other - base).abs().max() > 10 * ATOL, name
    # (IA)^3's keys barely move a random tiny encoder's near-uniform attention: MiniLM below
    _check_ia3_vectors_matter(tiny_bert, ("ia3_v", "ia3_attn_out", "ia3_ff"))


@pytest.mark.slow
def test_the_reference_is_sensitive_to_each_ia3_vector_on_minilm(minilm):
    _check_ia3_vectors_matter(minilm, ("ia3_k", "ia3_v", "ia3_attn_out", "ia3_ff"))


def _check_ia3_vectors_matter(backbone, names: tuple[str, ...]) -> None:
    """Setting one (IA)^3 vector back to ones (the identity) moves the logits far past the
    tolerance, for the (IA)^3 task and the task with every method."""
    ids, _, types, _ = _padded_batch(3, 1, 12)
    for cfg, labels in (TASKS[-2], TASKS[-1]):
        weights = random_task(cfg, backbone, labels, seed=3)
        base, _ = reference_row(backbone, cfg, weights, ids[0], types[0])
        for name in names:
            identity = {**weights, name: torch.ones_like(weights[name])}
            other, _ = reference_row(backbone, cfg, identity, ids[0], types[0])
            assert (other - base).abs().max() > 10 * ATOL, (cfg.name, name)
