"""The ModernBERT family on tiny random configs: nothing active is `ModernBertModel`'s own
forward, a mixed batch is each row alone (packed and not), one row follows the equations, and
the forward traces as one graph. Sequences run past the local window so local attention counts.

Reference equations (per layer l, a row's tokens x: (T, d); the layer-0 attention norm is the
identity; gates as on BERT, read from the attention-normed input n, the adapter's from f):

  n = LN_attn(x);  [q | k | v] = n Wqkv;  q += G_Lq (n A_q) B_q;  v += G_Lv (n A_v) B_v
  q, k = rotary(q), rotary(k) at positions 0..T-1 (theta of the layer's type)
  K = [G_P P_K ; k],  V = [G_P P_V ; v]  (the prefix is not rotated, every query sees it)
  local layers: token key j is visible to query i when |i - j| <= local_attention / 2
  h = x + softmax(q K^T / sqrt(d_h) + mask) V Wo
  f = h + (gelu(m Wi_in) * (m Wi_gate)) Wo,  m = LN_mlp(h)
  adapter: f + G_A (act(f W_down + b_down) W_up + b_up);  after the last layer: final norm
  head: tanh(x_0 W_dense + b_dense) W_out + b_out
  (IA)^3: k, v <- l_k k, l_v v before rotary; the context <- l_o context before Wo; the
  product gelu(..) * (..) <- l_ff times it before Wo
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from adapters.backbone import Backbone
from adapters.bank import TaskBank
from adapters.config import MethodConfig
from adapters.errors import ConfigError
from adapters.model import UniPELTModel
from adapters.packing import packing_for
from adapters.plan import Buckets, plan_batch
from adapters.task_module import TaskAdapter
from harness.tasks import random_task
from tests.conftest import tiny_modernbert

P = MethodConfig.preset
TASKS = [
    (P("apl"), 2),
    (P("apl-nogate", lora_alpha=4.0, lora_r=2, adapter_non_linearity="gelu"), 3),
    (P("p", prefix_length=3), 4),
    (P("l", lora_r=3, lora_alpha=6.0), 2),
    (P("apl", bottleneck=6, prefix_length=7, lora_r=4, adapter_non_linearity="tanh"), 1),
    (P("head"), 3),
    (P("ia3"), 2),
]
ACT = {"relu": F.relu, "gelu": F.gelu, "tanh": torch.tanh, "swish": F.silu}
ATOL = 1e-5
LONGEST = 20


@pytest.fixture(scope="module")
def tiny_mb() -> Backbone:
    return tiny_modernbert()


def _batch(seed: int, rows: int, longest: int = LONGEST):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 120, (rows, longest), generator=g)
    lengths = torch.randint(2, longest + 1, (rows,), generator=g)
    lengths[0] = longest
    mask = (torch.arange(longest) < lengths[:, None]).long()
    return ids.masked_fill(mask == 0, 0), mask, lengths


def _real(x: Tensor, mask: Tensor) -> Tensor:
    return x * mask[..., None]


def test_nothing_active_equals_modernbert(tiny_mb):
    model = UniPELTModel(tiny_mb).eval()
    cfg = P("head")
    bank = TaskBank.from_tasks([(cfg, random_task(cfg, tiny_mb, 2))], tiny_mb.dims)
    ids, mask, _ = _batch(0, 6)
    slots = torch.zeros(6, dtype=torch.long)
    with torch.no_grad():
        ref = tiny_mb.model(input_ids=ids, attention_mask=mask).last_hidden_state
        packed = model(ids, mask, bank, slots).hidden
        plan = plan_batch(bank, slots.tolist(), padded=True)  # no lengths: not packed
        unpacked = model(ids, mask, bank, slots, plan=plan).hidden
    assert (_real(packed - ref, mask).abs().max()) < 1e-4
    assert (_real(unpacked - ref, mask).abs().max()) < 1e-4


def test_local_attention_matters_at_this_length(tiny_mb):
    """The same weights with every layer global give other hidden states."""
    ids, mask, _ = _batch(0, 2)
    other = tiny_modernbert(global_only=True)
    with torch.no_grad():
        a = tiny_mb.model(input_ids=ids, attention_mask=mask).last_hidden_state
        b = other.model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert (a - b).abs().max() > 1e-3


def _tasks(backbone, seed: int):
    return [(c, random_task(c, backbone, n, seed=10 * seed + i)) for i, (c, n) in enumerate(TASKS)]


@pytest.mark.parametrize("seed", [0, 1])
def test_mixed_batch_equals_each_row_alone(tiny_mb, seed):
    model = UniPELTModel(tiny_mb).eval()
    tasks = _tasks(tiny_mb, seed)
    bank = TaskBank.from_tasks(tasks, tiny_mb.dims)
    rows = 10
    slots = torch.arange(rows) % len(TASKS)
    ids, mask, lengths = _batch(seed, rows)
    with torch.no_grad():
        packed = model(ids, mask, bank, slots)
        plan = plan_batch(bank, slots.tolist(), padded=True)
        unpacked = model(ids, mask, bank, slots, plan=plan)
        for i in range(rows):
            n, labels = int(lengths[i]), TASKS[int(slots[i])][1]
            alone = model(ids[i : i + 1, :n], mask[i : i + 1, :n], bank, slots[i : i + 1])
            for out in (packed, unpacked):
                torch.testing.assert_close(
                    out.logits[i, :labels], alone.logits[0, :labels], rtol=0, atol=ATOL
                )


def _norm(x: Tensor, ln) -> Tensor:
    if isinstance(ln, torch.nn.Identity):
        return x
    return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)


def _gate(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    return torch.sigmoid(x @ w + b).mean(0)


def _rotary(x: Tensor, theta: float, heads: int) -> Tensor:
    T, d = x.shape
    dh = d // heads
    inv = 1.0 / theta ** (torch.arange(0, dh, 2).float() / dh)
    angles = torch.arange(T).float()[:, None] * inv  # (T, dh / 2)
    cos, sin = angles.cos().repeat(1, 2)[:, None], angles.sin().repeat(1, 2)[:, None]
    xh = x.view(T, heads, dh)
    rotated = torch.cat([-xh[..., dh // 2 :], xh[..., : dh // 2]], -1)
    return (xh * cos + rotated * sin).reshape(T, d)


def reference_row(backbone, cfg: MethodConfig, w: dict[str, Tensor], ids: Tensor):
    """(logits (n,), gates (L, 4)) of one row, from the equations in this module's docstring."""
    model, config = backbone.model, backbone.config
    H, d = config.num_attention_heads, config.hidden_size
    x = _norm(model.embeddings.tok_embeddings.weight[ids], model.embeddings.norm)
    T = x.shape[0]
    gated = cfg.gates and (cfg.adapter or cfg.prefix or cfg.lora)
    scale = cfg.lora_alpha / cfg.lora_r
    all_gates = []
    for l, layer in enumerate(model.layers):
        n = _norm(x, layer.attn_norm)
        g_p, g_q, g_v = (
            _gate(n, w["gate_w"][l][:, :3], w["gate_b"][l][:3])
            if gated
            else torch.tensor([1.0, scale, scale])
        )
        q, k, v = (n @ layer.attn.Wqkv.weight.T).split(d, -1)
        if cfg.lora:
            q = q + g_q * (n @ w["lora_q_A"][l]) @ w["lora_q_B"][l]
            v = v + g_v * (n @ w["lora_v_A"][l]) @ w["lora_v_B"][l]
        if cfg.ia3:  # keys and values scaled before rotary
            k, v = k * w["ia3_k"][l], v * w["ia3_v"][l]
        kind = config.layer_types[l]
        theta = config.rope_parameters[kind]["rope_theta"]
        q, k = _rotary(q, theta, H), _rotary(k, theta, H)
        pos = torch.arange(T)
        visible = torch.ones(T, T, dtype=torch.bool)
        if kind == "sliding_attention":
            visible = (pos[:, None] - pos[None, :]).abs() <= config.local_attention // 2
        if cfg.prefix:
            k = torch.cat([g_p * w["prefix_k"][l], k])
            v = torch.cat([g_p * w["prefix_v"][l], v])
            visible = torch.cat([torch.ones(T, cfg.prefix_length, dtype=torch.bool), visible], 1)
        dh = d // H
        qh, kh, vh = (t.view(t.shape[0], H, dh).transpose(0, 1) for t in (q, k, v))
        scores = (qh @ kh.transpose(1, 2) / math.sqrt(dh)).masked_fill(~visible, -math.inf)
        context = (torch.softmax(scores, -1) @ vh).transpose(0, 1).reshape(T, d)
        if cfg.ia3:
            context = context * w["ia3_attn_out"][l]
        h = x + context @ layer.attn.Wo.weight.T
        gelu_in, gate = (_norm(h, layer.mlp_norm) @ layer.mlp.Wi.weight.T).chunk(2, -1)
        inner = F.gelu(gelu_in) * gate
        if cfg.ia3:
            inner = inner * w["ia3_ff"][l]
        f = h + inner @ layer.mlp.Wo.weight.T
        g_a = torch.tensor(1.0)
        if cfg.adapter:
            if gated:
                g_a = _gate(f, w["gate_w"][l][:, 3], w["gate_b"][l][3])
            z = ACT[cfg.adapter_non_linearity](f @ w["adapter_down_w"][l] + w["adapter_down_b"][l])
            f = f + g_a * (z @ w["adapter_up_w"][l] + w["adapter_up_b"][l])
        all_gates.append(torch.stack([g_p, g_q, g_v, g_a]))
        x = f
    x = _norm(x, model.final_norm)
    pooled = torch.tanh(x[0] @ w["head_dense_w"] + w["head_dense_b"])
    return pooled @ w["head_out_w"] + w["head_out_b"], torch.stack(all_gates)


def test_mixed_batch_matches_the_reference(tiny_mb):
    tasks = _tasks(tiny_mb, 3)
    bank = TaskBank.from_tasks(tasks, tiny_mb.dims)
    rows = 8
    slots = torch.tensor([0, 1, 2, 3, 4, 5, 0, 4])
    ids, mask, lengths = _batch(3, rows)
    with torch.no_grad():
        out = UniPELTModel(tiny_mb).eval()(ids, mask, bank, slots, return_gates=True)
        for i in range(rows):
            cfg, weights = tasks[int(slots[i])]
            logits, gates = reference_row(tiny_mb, cfg, weights, ids[i, : int(lengths[i])])
            labels = TASKS[int(slots[i])][1]
            torch.testing.assert_close(out.logits[i, :labels], logits, rtol=0, atol=ATOL)
            if cfg.gates:
                present = [cfg.prefix, cfg.lora, cfg.lora, cfg.adapter]
                torch.testing.assert_close(
                    out.gates[i][:, present], gates[:, present], rtol=0, atol=ATOL
                )


def test_the_prefix_reaches_queries_in_local_layers(tiny_mb):
    """A prefix hidden from local queries would change the logits: the check is not vacuous."""
    cfg, n = TASKS[2]
    weights = random_task(cfg, tiny_mb, n, seed=5)
    ids, mask, _ = _batch(4, 1)
    with torch.no_grad():
        bank = TaskBank.from_tasks([(cfg, weights)], tiny_mb.dims)
        ours = UniPELTModel(tiny_mb).eval()(ids, mask, bank, torch.zeros(1).long()).logits[0]
        local = [l for l, k in enumerate(tiny_mb.config.layer_types) if k != "full_attention"]
        hidden = {k: v.clone() for k, v in weights.items()}
        for name in ("prefix_k", "prefix_v"):
            hidden[name][local] = 0.0  # zero keys still take softmax mass; values add nothing
        bank2 = TaskBank.from_tasks([(cfg, hidden)], tiny_mb.dims)
        other = UniPELTModel(tiny_mb).eval()(ids, mask, bank2, torch.zeros(1).long()).logits[0]
    assert (ours[:n] - other[:n]).abs().max() > 1e-4


def test_mixed_forward_compiles_to_one_graph(tiny_mb):
    torch._dynamo.reset()
    model = UniPELTModel(tiny_mb).eval()
    bank = TaskBank.from_tasks(_tasks(tiny_mb, 0), tiny_mb.dims)
    ids, mask, lengths = _batch(5, 8)
    slots = torch.tensor([0, 1, 2, 3, 4, 5, 1, 2])
    counters = torch._dynamo.utils.counters
    counters.clear()
    with torch.no_grad():
        for packed in (False, True):
            plan = plan_batch(
                bank,
                slots.tolist(),
                padded=True,
                buckets=Buckets.static(),
                lengths=lengths.tolist() if packed else None,
            )
            packing = packing_for(plan, ids.shape[1], bank.dtype)
            eager = model.mixed(ids, mask, bank, slots, plan, return_gates=True, packing=packing)
            compiled = torch.compile(model.mixed, fullgraph=True, backend="eager")
            got = compiled(ids, mask, bank, slots, plan, return_gates=True, packing=packing)
            for a, b in zip(got, eager):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_bitfit_is_refused_with_the_reason(tiny_mb):
    with pytest.raises(ConfigError, match="bitfit is not supported on the modernbert family"):
        TaskAdapter(P("bitfit"), tiny_mb, 2)


def test_a_bitfit_artifact_is_refused_at_upload(tiny_mb):
    from adapters.artifact import check_backbone
    from harness.tasks import make_manifest

    manifest = make_manifest("t", P("bitfit"), tiny_mb, ["a", "b"])
    assert manifest.backbone.family == "modernbert"
    with pytest.raises(ConfigError, match="no post-residual LayerNorm"):
        check_backbone(manifest, tiny_mb)
    check_backbone(make_manifest("t", P("apl"), tiny_mb, ["a", "b"]), tiny_mb)
