"""PEFT's LoRA save format for sequence classification: file names, tensor names, head layouts,
and which adapter_config settings this library can represent exactly.

A PEFT directory (`save_pretrained`) holds `adapter_config.json` and `adapter_model.safetensors`:
`base_model.model.{base}.encoder.layer.{i}.attention.self.{query|value}.lora_{A|B}.weight`
(A: (r, d), B: (d, r); Linear weights are (out, in)) and the `modules_to_save` head tensors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
        "layers_to_transform",
        "exclude_modules",
        "ensure_weight_tying",
        "eva_config",
        "loftq_config",  # used only with init_lora_weights="loftq", refused below
    }
)
# Checked one by one in `check_config`.
CHECKED = frozenset(
    {"peft_type", "task_type", "r", "lora_alpha", "target_modules", "modules_to_save"}
    | {"init_lora_weights", "bias"}
)
# init_lora_weights values that only initialise A and B (the others rewrite base weights).
PLAIN_INITS = (True, False, "gaussian", "eva")
TARGETS = ("query", "value")


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


def check_config(config: dict) -> tuple[int, float]:
    """Refuse anything but plain LoRA for sequence classification; return (r, lora_alpha)."""
    if config.get("peft_type") != "LORA":
        raise _refuse(f"peft_type is {config.get('peft_type')!r}; only LORA is supported")
    if config.get("task_type") != "SEQ_CLS":
        raise _refuse(
            f"task_type is {config.get('task_type')!r}; only SEQ_CLS "
            "(a model with a sequence-classification head) is supported"
        )
    for key, value in sorted(config.items()):
        if key not in INFORMATIONAL and key not in CHECKED and value:
            raise _refuse(f"{key}={value!r} changes the adapter in a way this format cannot hold")
    if config.get("bias", "none") != "none":
        raise _refuse(f"bias={config['bias']!r}: trained biases are not supported")
    init = config.get("init_lora_weights", True)
    if init not in PLAIN_INITS:
        raise _refuse(f"init_lora_weights={init!r} changes the base model's weights")
    targets = config.get("target_modules")
    if isinstance(targets, str) or not targets:
        raise _refuse(f"target_modules must be a list of {TARGETS}, got {targets!r}")
    other = sorted(set(targets) - set(TARGETS))
    if other:
        raise _refuse(f"LoRA on {other}; only query and value are supported")
    r, alpha = config.get("r"), config.get("lora_alpha")
    if not isinstance(r, int) or isinstance(r, bool) or r < 1:
        raise _refuse(f"r must be a positive integer, got {r!r}")
    if not isinstance(alpha, int | float) or isinstance(alpha, bool) or alpha <= 0:
        raise _refuse(f"lora_alpha must be a positive number, got {alpha!r}")
    return r, float(alpha)


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
