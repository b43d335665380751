"""The registered PELT methods: one module each, one line here (`PELT`).

Everything the library does per method (config fields, artifact schema, the fused bank layout,
plans, the forward's terms, training defaults, reports) loops over `METHODS`. Order matters in
three places only: method names list letters in it (A, P, L), presets and report columns
follow it, and terms at the same attach point run in it.
"""

from __future__ import annotations

from adapters.methods import bitfit, bottleneck, heads, ia3, lora, prefix
from adapters.methods.base import Method
from adapters.methods.gates import Gates

PELT: tuple[Method, ...] = (
    bitfit.BitFit(),
    heads.Heads(),
    bottleneck.Adapter(),
    prefix.Prefix(),
    lora.LoRA(),
    ia3.IA3(),
)
GATES = Gates(PELT)
METHODS: tuple[Method, ...] = (*PELT, GATES)
BY_NAME = {m.name: m for m in METHODS}
# PEFT save formats that convert exactly, by PEFT's `peft_type` (`adapters.peft_import`)
PEFT_FORMATS = {f.peft_type: f for m in METHODS if (f := m.peft) is not None}
SIZED = tuple(m for m in METHODS if m.size is not None)
