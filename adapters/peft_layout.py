"""PEFT's LoRA save format for sequence classification: file names, tensor names, head layouts,
and which adapter_config settings this library can represent exactly.

A PEFT directory (`save_pretrained`) holds `adapter_config.json` and `adapter_model.safetensors`:
`base_model.model.{base}.encoder.layer.{i}.attention.self.{query|value}.lora_{A|B}.weight`
(A: (r, d), B: (d, r); Linear weights are (out, in)) and the `modules_to_save` head tensors.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from adapters import constants as C
from adapters.errors import ArtifactError

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
ROOT = "base_model.model."
# safetensors metadata our export writes, read back on import
META_FINGERPRINT = "unipelt.backbone_fingerprint"
META_LABELS = "unipelt.label_names"
META_TEXT_PAIR = "unipelt.text_pair"
META_MAX_LENGTH = "unipelt.max_length"

LORA_KEY = re.compile(
    r"^base_model\.model\.(?P<base>\w+)\.encoder\.layer\.(?P<layer>\d+)\.attention\.self\."
    r"(?P<proj>query|value)\.lora_(?P<part>[AB])\.weight$"
)
PROJ = {"query": "q", "value": "v"}

# Settings that describe the adapter but do not change its forward at inference.
INFORMATIONAL = frozenset(
    {
        "base_model_name_or_path",
        "revision",
        "inference_mode",
        "lora_dropout",
        "peft_version",
        "auto_mapping",
        "megatron_core",
        "qalora_group_size",
        "layers_pattern",
        "ensure_weight_tying",
        "eva_config",
        "loftq_config",  # used only with init_lora_weights="loftq", refused below
    }
)
# Checked one by one in `check_config`.
CHECKED = frozenset(
    {"peft_type", "task_type", "r", "lora_alpha", "target_modules", "modules_to_save"}
    | {"init_lora_weights", "bias", "layers_to_transform", "exclude_modules"}
)
# init_lora_weights values that only initialise A and B (the others rewrite base weights).
PLAIN_INITS = (True, False, "gaussian", "eva")
TARGETS = ("query", "value")
HEAD_MODULE = "classifier"  # the head module of every known layout (HEADS below)
MAX_RANK = C.MAX_LORA_RANK  # checked before anything is allocated per rank


@dataclass(frozen=True)
class HeadLayout:
    """Where a model family's sequence-classification head lives in PEFT's weights.

    Every known head is `tanh(h_cls W_d + b_d) W_o + b_o`; `dense` may come from the frozen
    base model (BERT's pooler) when it is not in `modules_to_save`.
    """

    base: str  # attribute of the base model inside *ForSequenceClassification
    dense: str  # PEFT key stem of the dense layer (weight: (d, d))
    out: str  # PEFT key stem of the output layer (weight: (n, d))
    modules_to_save: tuple[str, ...]  # what our export names
    dense_from_backbone: bool  # the dense layer is the backbone's pooler when not saved

    def keys(self) -> dict[str, str]:
        """Our head tensor name -> PEFT key."""
        return {
            "head_dense_w": f"{ROOT}{self.dense}.weight",
            "head_dense_b": f"{ROOT}{self.dense}.bias",
            "head_out_w": f"{ROOT}{self.out}.weight",
            "head_out_b": f"{ROOT}{self.out}.bias",
        }


BERT_HEAD = HeadLayout("bert", "bert.pooler.dense", "classifier", ("classifier", "pooler"), True)
ROBERTA_HEAD = HeadLayout(
    "roberta", "classifier.dense", "classifier.out_proj", ("classifier",), False
)
HEADS = {
    "bert": BERT_HEAD,
    "roberta": ROBERTA_HEAD,
    "xlm-roberta": ROBERTA_HEAD,
    "camembert": ROBERTA_HEAD,
}


def head_layout(model_type: str) -> HeadLayout:
    if model_type not in HEADS:
        raise ArtifactError(
            f"the {model_type} sequence-classification head has no layout this format knows "
            f"(known: {', '.join(sorted(HEADS))})"
        )
    return HEADS[model_type]


def lora_key(base: str, layer: int, proj: str, part: str) -> str:
    return f"{ROOT}{base}.encoder.layer.{layer}.attention.self.{proj}.lora_{part}.weight"


def _refuse(reason: str) -> ArtifactError:
    return ArtifactError(f"PEFT adapter not representable: {reason}")


@dataclass(frozen=True)
class LoraSettings:
    """What `check_config` accepts: where PEFT puts LoRA, its rank and scale, what it saves."""

    r: int
    alpha: float
    targets: frozenset[str]  # of TARGETS
    layers: frozenset[int] | None  # layers_to_transform; None: every layer
    excluded: frozenset[str]  # exclude_modules: module names, or suffixes after a "."
    modules_to_save: tuple[str, ...]

    def applies_to(self, module: str, proj: str, layer: int) -> str | None:
        """None when PEFT puts LoRA on `module`, else the setting that leaves it out."""
        if proj not in self.targets:
            return f"target_modules={sorted(self.targets)}"
        if self.layers is not None and layer not in self.layers:
            return f"layers_to_transform={sorted(self.layers)}"
        if any(module == name or module.endswith(f".{name}") for name in self.excluded):
            return "exclude_modules"
        return None


def _strings(config: dict, key: str) -> tuple[str, ...]:
    value = config.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise _refuse(f"{key} must be a list of module names, got {_short(value)}")
    return tuple(value)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _layers(config: dict) -> frozenset[int] | None:
    value = config.get("layers_to_transform")
    if value is None:
        return None
    items = [value] if isinstance(value, int) else value
    if not isinstance(items, list) or not all(_is_int(x) and 0 <= x < 10_000 for x in items):
        raise _refuse(f"layers_to_transform must be layer indices, got {_short(value)}")
    return frozenset(items)


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_config(config: dict) -> LoraSettings:
    """Refuse anything but plain LoRA for sequence classification, with the reason."""
    if config.get("peft_type") != "LORA":
        raise _refuse(f"peft_type is {_short(config.get('peft_type'))}; only LORA is supported")
    modules_to_save = _strings(config, "modules_to_save")
    task_type = config.get("task_type")
    if task_type is None and HEAD_MODULE not in modules_to_save:
        raise _refuse(
            f"task_type is None and modules_to_save {list(modules_to_save)} does not name the "
            f"head {HEAD_MODULE!r}: save the adapter with task_type='SEQ_CLS', or with "
            f"modules_to_save=[{HEAD_MODULE!r}]"
        )
    if task_type is not None and task_type != "SEQ_CLS":
        raise _refuse(
            f"task_type is {_short(task_type)}; only SEQ_CLS "
            "(a model with a sequence-classification head) is supported"
        )
    for key, value in sorted(config.items()):
        if key not in INFORMATIONAL and key not in CHECKED and value:
            raise _refuse(
                f"{key}={_short(value)} changes the adapter in a way this format cannot hold"
            )
    if config.get("bias", "none") != "none":
        raise _refuse(f"bias={_short(config['bias'])}: trained biases are not supported")
    init = config.get("init_lora_weights", True)
    if not any(init is x or (isinstance(init, str) and init == x) for x in PLAIN_INITS):
        raise _refuse(f"init_lora_weights={_short(init)} changes the base model's weights")
    targets = config.get("target_modules")
    if not isinstance(targets, list) or not targets:
        raise _refuse(f"target_modules must be a list of {TARGETS}, got {_short(targets)}")
    if not all(isinstance(t, str) for t in targets):
        raise _refuse(f"target_modules must be module names, got {_short(targets)}")
    other = sorted(set(targets) - set(TARGETS))
    if other:
        raise _refuse(f"LoRA on {_short(other)}; only query and value are supported")
    excluded = config.get("exclude_modules")
    if isinstance(excluded, str):
        raise _refuse("exclude_modules as a regular expression is not supported; list names")
    return LoraSettings(
        r=_rank(config.get("r")),
        alpha=_alpha(config.get("lora_alpha")),
        targets=frozenset(targets),
        layers=_layers(config),
        excluded=frozenset(_strings(config, "exclude_modules")),
        modules_to_save=modules_to_save,
    )


def _rank(r: object) -> int:
    if not _is_int(r) or not 1 <= r <= MAX_RANK:  # type: ignore[operator]
        raise _refuse(f"r must be an integer from 1 to {MAX_RANK}, got {_short(r)}")
    return int(r)  # type: ignore[call-overload]


def _alpha(alpha: object) -> float:
    if not isinstance(alpha, int | float) or isinstance(alpha, bool):
        raise _refuse(f"lora_alpha must be a positive number, got {_short(alpha)}")
    try:
        value = float(alpha)
    except OverflowError:
        value = math.inf
    if not (math.isfinite(value) and value > 0):
        raise _refuse(f"lora_alpha must be a positive finite number, got {_short(alpha)}")
    return value


def peft_config(r: int, alpha: float, base_model: str, layout: HeadLayout) -> dict:
    """The adapter_config.json our export writes (PEFT fills every other field's default)."""
    return {
        "peft_type": "LORA",
        "task_type": "SEQ_CLS",
        "base_model_name_or_path": base_model,
        "r": r,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "target_modules": list(TARGETS),
        "modules_to_save": list(layout.modules_to_save),
        "bias": "none",
        "fan_in_fan_out": False,
        "init_lora_weights": True,
        "use_dora": False,
        "use_rslora": False,
        "inference_mode": True,
    }
