"""The DeBERTa-v2/v3 family on tiny random configs of four layouts (`DEBERTA_STYLES`): nothing
active is `DebertaV2Model`'s own forward, a mixed batch is each row alone (packed and not), one
row follows the equations below, and the forward traces as one graph.

Reference equations (per layer l, a row's tokens x: (T, d); heads of size d_h; f = 1 + the
number of `pos_att_type` terms; R the 2k relative embeddings, LayerNorm-ed when
`norm_rel_ebd`; delta(i, j) = bucket(i - j), exact below k/2 when bucketed, then log-spaced
up to `max_relative_positions`; c(i, j) = clamp(k + delta(i, j), 0, 2k - 1) and
p(i, j) = clamp(k - delta(j, i), 0, 2k - 1)):

  q = Q(x), k = K(x), v = V(x) with Q(z) = z W_q + b_q (+ BitFit's delta_q)
      (+ G_Lq (z A_q) B_q), K(z) = (z W_k + b_k (+ delta_k)) (* l_k), V likewise (G_Lv, l_v)
  shared keys: Qr = Q(R), Kr = K(R) (the methods adapt them too, with the row's gates);
  else Qr = R W_pq + b_pq, Kr = R W_pk + b_pk (frozen)
  token key j:  (q_i k_j + [c2p] q_i Kr[c(i, j)] + [p2c] k_j Qr[p(i, j)]) / sqrt(d_h f)
  prefix key m: q_i (G_P P_K[m]) / sqrt(d_h f)   (no relative terms)
  context = softmax over [prefix | tokens] of those scores times [G_P P_V ; v] (* l_o)
  h = LN(context W_o + b_o + x),  f = LN(act(h W_i + b_i) (* l_ff) W_o2 + b_o2 + h)
  adapter: f + G_A (act(f W_down + b_down) W_up + b_up);  head: gelu(x_0 W_d + b_d) W + b
  gates: G = mean over the row's tokens of sigmoid(x W_g + b_g) (the adapter's over f)
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from adapters.backbone import backbone_from_model
from adapters.bank import TaskBank
from adapters.config import MethodConfig
from adapters.errors import BackboneError
from adapters.model import UniPELTModel
from adapters.packing import packing_for
from adapters.plan import Buckets, plan_batch
from harness.tasks import random_task
from tests.conftest import DEBERTA_STYLES, tiny_deberta

P = MethodConfig.preset
TASKS = [
    (P("apl"), 2),
    (P("apl-nogate", lora_alpha=4.0, lora_r=2, adapter_non_linearity="gelu"), 3),
    (P("p", prefix_length=3), 4),
    (P("l", lora_r=3, lora_alpha=6.0), 2),
    (P("bitfit"), 2),
    (P("head"), 3),
    (P("ia3"), 2),
    (P("apl", bottleneck=6, prefix_length=7, lora_r=4, adapter_non_linearity="tanh"), 1),
    (P("apl", ia3=True, bitfit=True, lora_r=2, prefix_length=5), 3),  # every method at once
]
ACT = {"relu": F.relu, "gelu": F.gelu, "tanh": torch.tanh, "swish": F.silu}
ATOL = 1e-5
LONGEST = 20  # past v2's 8 relative positions (clamped) and v3-log's 4 exact buckets


@pytest.fixture(scope="module", params=list(DEBERTA_STYLES))
def deberta(request):
    return tiny_deberta(request.param)


def _batch(seed: int, rows: int, longest: int = LONGEST):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 120, (rows, longest), generator=g)
    lengths = torch.randint(2, longest + 1, (rows,), generator=g)
    lengths[0] = longest
    mask = (torch.arange(longest) < lengths[:, None]).long()
    types = (torch.arange(longest) >= lengths[:, None] // 2).long() * mask  # a second segment
    return ids.masked_fill(mask == 0, 0), mask, types, lengths


def _tasks(backbone, seed: int):
    return [(c, random_task(c, backbone, n, seed=10 * seed + i)) for i, (c, n) in enumerate(TASKS)]


def test_nothing_active_equals_debertav2model(deberta):
    model = UniPELTModel(deberta).eval()
    cfg = P("head")
    bank = TaskBank.from_tasks([(cfg, random_task(cfg, deberta, 2))], deberta.dims)
    ids, mask, types, _ = _batch(0, 6)
    slots = torch.zeros(6, dtype=torch.long)
    with torch.no_grad():
        ref = deberta.model(input_ids=ids, attention_mask=mask, token_type_ids=types)
        packed = model(ids, mask, bank, slots, types).hidden
        plan = plan_batch(bank, slots.tolist(), padded=True)  # no lengths: not packed
        unpacked = model(ids, mask, bank, slots, types, plan=plan).hidden
    real = mask[..., None]
    assert ((packed - ref.last_hidden_state) * real).abs().max() < 1e-4
    assert ((unpacked - ref.last_hidden_state) * real).abs().max() < 1e-4


def test_relative_positions_matter_at_this_length():
    """Shuffled relative embeddings give other hidden states: the tests above are not blind
    to the c2p and p2c terms."""
    ids, mask, types, _ = _batch(0, 2)
    for style in DEBERTA_STYLES:
        model = tiny_deberta(style).model
        other = copy.deepcopy(model)
        with torch.no_grad():
            other.encoder.rel_embeddings.weight.copy_(other.encoder.rel_embeddings.weight.flip(0))
            a = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
            b = other(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        assert (a - b).abs().max() > 1e-3, style


@pytest.mark.parametrize("seed", [0, 1])
def test_mixed_batch_equals_each_row_alone(deberta, seed):
    model = UniPELTModel(deberta).eval()
    bank = TaskBank.from_tasks(_tasks(deberta, seed), deberta.dims)
    rows = 12
    slots = torch.arange(rows) % len(TASKS)
    ids, mask, types, lengths = _batch(seed, rows)
    with torch.no_grad():
        packed = model(ids, mask, bank, slots, types)
        plan = plan_batch(bank, slots.tolist(), padded=True)
        unpacked = model(ids, mask, bank, slots, types, plan=plan)
        for i in range(rows):
            n, labels = int(lengths[i]), TASKS[int(slots[i])][1]
            row = slice(i, i + 1)
            alone = model(ids[row, :n], mask[row, :n], bank, slots[row], types[row, :n])
            for out in (packed, unpacked):
                torch.testing.assert_close(
                    out.logits[i, :labels], alone.logits[0, :labels], rtol=0, atol=ATOL
                )


def _linear(x: Tensor, module) -> Tensor:
    return x @ module.weight.T + module.bias


def _norm(x: Tensor, ln) -> Tensor:
    return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)


def _gate(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    return torch.sigmoid(x @ w + b).mean(0)


def _bucket(r: Tensor, buckets: int, max_position: int) -> Tensor:
    """delta: r itself within buckets / 2, then sign(r) (ceil(log(|r| / mid) / log((max - 1)
    / mid) (mid - 1)) + mid); r itself when not bucketed."""
    if buckets <= 0 or max_position <= 0:
        return r
    mid = buckets // 2
    a = r.abs().float()
    ratio = torch.log(torch.tensor((max_position - 1) / mid))
    logged = torch.ceil(torch.log(a.clamp_min(1) / mid) / ratio * (mid - 1)) + mid
    return torch.where(a <= mid, r.float(), logged * r.sign()).long()


def reference_row(backbone, cfg: MethodConfig, w, ids, types, adapt_positions: bool = True):
    """(logits (n,), gates (L, 4)) of one row, from the equations in this module's docstring.
    `adapt_positions=False` leaves Qr and Kr frozen (a control)."""
    model, config = backbone.model, backbone.config
    emb, enc = model.embeddings, model.encoder
    T, H, d = ids.shape[0], config.num_attention_heads, config.hidden_size
    dh = d // H
    x = emb.word_embeddings.weight[ids]
    if config.position_biased_input:
        x = x + emb.position_embeddings.weight[:T]
    if config.type_vocab_size > 0:
        x = x + emb.token_type_embeddings.weight[types]
    if emb.embed_proj is not None:
        x = x @ emb.embed_proj.weight.T
    x = _norm(x, emb.LayerNorm)

    buckets = getattr(config, "position_buckets", -1)
    max_rel = config.max_relative_positions
    max_rel = max_rel if max_rel > 0 else config.max_position_embeddings
    k_span = buckets if buckets > 0 else max_rel
    R = enc.rel_embeddings.weight[: 2 * k_span]
    if "layer_norm" in getattr(config, "norm_rel_ebd", "none"):
        R = _norm(R, enc.LayerNorm)
    pos = torch.arange(T)
    delta = _bucket(pos[:, None] - pos[None, :], buckets, max_rel)  # [i, j] = delta(i, j)
    c = (k_span + delta).clamp(0, 2 * k_span - 1)
    p = (k_span - delta.T).clamp(0, 2 * k_span - 1)
    terms = [t for t in ("c2p", "p2c") if t in config.pos_att_type]
    root = math.sqrt(dh * (1 + len(terms)))

    gated = cfg.gates and (cfg.adapter or cfg.prefix or cfg.lora)
    scale = cfg.lora_alpha / cfg.lora_r
    all_gates = []
    for l, layer in enumerate(enc.layer):

        def bias(name: str, l: int = l) -> Tensor | float:
            return w[f"bitfit_{name}"][l] if cfg.bitfit else 0.0

        sa = layer.attention.self
        g_p, g_q, g_v = (
            _gate(x, w["gate_w"][l][:, :3], w["gate_b"][l][:3])
            if gated
            else torch.tensor([1.0, scale, scale])
        )

        def Q(z: Tensor, l: int = l, g: Tensor = g_q, sa=sa) -> Tensor:
            out = _linear(z, sa.query_proj) + bias("q")
            return out + g * (z @ w["lora_q_A"][l]) @ w["lora_q_B"][l] if cfg.lora else out

        def K(z: Tensor, l: int = l, sa=sa) -> Tensor:
            out = _linear(z, sa.key_proj) + bias("k")
            return out * w["ia3_k"][l] if cfg.ia3 else out

        q, k = Q(x), K(x)
        v = _linear(x, sa.value_proj) + bias("v")
        if cfg.lora:
            v = v + g_v * (x @ w["lora_v_A"][l]) @ w["lora_v_B"][l]
        if cfg.ia3:
            v = v * w["ia3_v"][l]
        if getattr(config, "share_att_key", False):
            frozen = not adapt_positions
            Qr = _linear(R, sa.query_proj) if frozen else Q(R)
            Kr = _linear(R, sa.key_proj) if frozen else K(R)
        else:
            Qr = _linear(R, sa.pos_query_proj) if "p2c" in terms else None
            Kr = _linear(R, sa.pos_key_proj) if "c2p" in terms else None

        def heads(t: Tensor) -> Tensor:  # (S, d) -> (H, S, d_h)
            return t.view(t.shape[0], H, dh).transpose(0, 1)

        qh, kh = heads(q), heads(k)
        scores = qh @ kh.transpose(1, 2)  # (H, T, T)
        if "c2p" in terms:
            assert Kr is not None
            scores = scores + torch.einsum("hid,hijd->hij", qh, heads(Kr)[:, c])
        if "p2c" in terms:
            assert Qr is not None
            scores = scores + torch.einsum("hjd,hijd->hij", kh, heads(Qr)[:, p])
        scores, values = scores / root, v
        if cfg.prefix:
            prefix_scores = qh @ heads(g_p * w["prefix_k"][l]).transpose(1, 2) / root
            scores = torch.cat([prefix_scores, scores], -1)
            values = torch.cat([g_p * w["prefix_v"][l], v])
        context = (torch.softmax(scores, -1) @ heads(values)).transpose(0, 1).reshape(T, d)
        if cfg.ia3:
            context = context * w["ia3_attn_out"][l]
        out = layer.attention.output
        h = _norm(_linear(context, out.dense) + bias("attn_out") + x, out.LayerNorm)
        h = h + bias("ln_attn")
        f = ACT[config.hidden_act](_linear(h, layer.intermediate.dense) + bias("ffn_in"))
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
    pooled = ACT[config.pooler_hidden_act](x[0] @ w["head_dense_w"] + w["head_dense_b"])
    return pooled @ w["head_out_w"] + w["head_out_b"], torch.stack(all_gates)


def test_mixed_batch_matches_the_reference(deberta):
    tasks = _tasks(deberta, 3)
    bank = TaskBank.from_tasks(tasks, deberta.dims)
    slots = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 0, 2])
    rows = len(slots)
    ids, mask, types, lengths = _batch(3, rows)
    with torch.no_grad():
        out = UniPELTModel(deberta).eval()(ids, mask, bank, slots, types, return_gates=True)
        for i in range(rows):
            cfg, weights = tasks[int(slots[i])]
            n = int(lengths[i])
            logits, gates = reference_row(deberta, cfg, weights, ids[i, :n], types[i, :n])
            labels = TASKS[int(slots[i])][1]
            torch.testing.assert_close(out.logits[i, :labels], logits, rtol=0, atol=ATOL)
            if cfg.gates and (cfg.adapter or cfg.prefix or cfg.lora):
                present = [cfg.prefix, cfg.lora, cfg.lora, cfg.adapter]
                torch.testing.assert_close(
                    out.gates[i][:, present], gates[:, present], rtol=0, atol=ATOL
                )


def test_the_reference_is_sensitive_to_what_it_checks():
    """Controls on v3: each submodule's tensors, and adapting the shared positional
    projections, move the logits far past the tolerance."""
    backbone = tiny_deberta("v3")
    cfg, labels = TASKS[-1]
    weights = random_task(cfg, backbone, labels, seed=3)
    ids, _, types, _ = _batch(3, 1)
    base, _ = reference_row(backbone, cfg, weights, ids[0], types[0])
    frozen, _ = reference_row(backbone, cfg, weights, ids[0], types[0], adapt_positions=False)
    assert (frozen - base).abs().max() > 10 * ATOL
    names = ("lora_q_B", "lora_v_B", "prefix_k", "prefix_v", "adapter_up_w", "bitfit_q")
    for name in (*names, "ia3_k", "ia3_attn_out", "ia3_ff"):
        neutral = torch.ones_like if name.startswith("ia3") else torch.zeros_like
        changed = {**weights, name: neutral(weights[name])}
        other, _ = reference_row(backbone, cfg, changed, ids[0], types[0])
        assert (other - base).abs().max() > 10 * ATOL, name


@pytest.mark.parametrize("style", ["v2", "v3-log"])
def test_mixed_forward_compiles_to_one_graph(style):
    torch._dynamo.reset()
    backbone = tiny_deberta(style)
    model = UniPELTModel(backbone).eval()
    bank = TaskBank.from_tasks(_tasks(backbone, 0), backbone.dims)
    ids, mask, types, lengths = _batch(5, 9)
    slots = torch.arange(9)
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
            args = (ids, mask, bank, slots, plan, types)
            eager = model.mixed(*args, return_gates=True, packing=packing)
            compiled = torch.compile(model.mixed, fullgraph=True, backend="eager")
            got = compiled(*args, return_gates=True, packing=packing)
            for a, b in zip(got, eager):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_the_convolution_of_deberta_v2_xlarge_is_refused_with_the_reason():
    from transformers import DebertaV2Config, DebertaV2Model

    config = DebertaV2Config(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, conv_kernel_size=3, relative_attention=True,
    )  # fmt: skip
    with pytest.raises(BackboneError, match=r"conv_kernel_size=3 .* is not supported"):
        backbone_from_model(DebertaV2Model(config), name="conv")
