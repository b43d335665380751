"""PEFT's save format for sequence classification: file names, tensor names, head layouts,
the settings every PEFT method shares, and what a method's PEFT format declares.

A PEFT directory (`save_pretrained`) holds `adapter_config.json` and `adapter_model.safetensors`:
per layer, `base_model.model.{base}.encoder.layer.{i}.{module}.{suffix}` (for LoRA `module` is
`attention.self.query` and `suffix` `lora_A.weight`), and the `modules_to_save` head tensors.
A method that converts declares a `PeftFormat` in its own module (`Method.peft`): which modules
it puts tensors on, their shapes, which of our tensors each becomes, and its own settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import Tensor

from adapters.dims import BackboneDims
from adapters.errors import ArtifactError

if TYPE_CHECKING:
    from adapters.config import MethodConfig

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
ROOT = "base_model.model."
# safetensors metadata our export writes, read back on import
META_FINGERPRINT = "unipelt.backbone_fingerprint"
META_LABELS = "unipelt.label_names"
META_TEXT_PAIR = "unipelt.text_pair"
META_MAX_LENGTH = "unipelt.max_length"

# Settings of every PEFT method that describe the adapter but do not change its forward.
INFORMATIONAL = frozenset(
    {"base_model_name_or_path", "revision", "inference_mode", "peft_version", "auto_mapping"}
    | {"layers_pattern", "ensure_weight_tying"}
)
# Settings of every PEFT method, checked in `placement`.
CHECKED = frozenset(
    {"peft_type", "task_type", "target_modules", "modules_to_save"}
    | {"layers_to_transform", "exclude_modules"}
)
HEAD_MODULE = "classifier"  # the head module of every known layout (HEADS below)


@dataclass(frozen=True)
class HeadLayout:
    """Where a model family's sequence-classification head lives in PEFT's weights.

    Every known head is `act(h_cls W_d + b_d) W_o + b_o` (`act` the family's: tanh, DeBERTa's
    `pooler_hidden_act`); `dense` may come from the frozen base model (BERT's pooler) when it
    is not in `modules_to_save`.
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
# DeBERTa's `ContextPooler` (its activation is the family's, `pooler_hidden_act`) is not in
# the encoder checkpoint and not in PEFT's default modules_to_save: it must be saved with it.
DEBERTA_HEAD = HeadLayout("deberta", "pooler.dense", "classifier", ("classifier", "pooler"), False)
HEADS = {
    "bert": BERT_HEAD,
    "roberta": ROBERTA_HEAD,
    "xlm-roberta": ROBERTA_HEAD,
    "camembert": ROBERTA_HEAD,
    "deberta-v2": DEBERTA_HEAD,
}


def head_layout(model_type: str) -> HeadLayout:
    if model_type not in HEADS:
        raise ArtifactError(
            f"the {model_type} sequence-classification head has no layout this format knows "
            f"(known: {', '.join(sorted(HEADS))})"
        )
    return HEADS[model_type]


def layer_key(base: str, layer: int, module: str, suffix: str) -> str:
    """The PEFT key of a per-layer tensor: `module` inside layer `layer`, then `suffix`."""
    return f"{ROOT}{base}.encoder.layer.{layer}.{module}.{suffix}"


def refuse(reason: str) -> ArtifactError:
    return ArtifactError(f"PEFT adapter not representable: {reason}")


def over_limit(what: str, limit: int, setting: str) -> ArtifactError:
    """`what`: "r=20 exceeds", "5000 labels exceed"."""
    where = f" ({setting})" if setting else ""
    return ArtifactError(f"PEFT adapter: {what} the limit of {limit}{where}")


def short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def strings(config: dict, key: str) -> tuple[str, ...]:
    """A list-of-names setting (absent: none)."""
    value = config.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise refuse(f"{key} must be a list of module names, got {short(value)}")
    return tuple(value)


def is_names(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


# The settings that name modules, renamed between a layout's names and ours.
NAMING = ("target_modules", "exclude_modules", "feedforward_modules")


def renamer(names: dict[str, str]) -> Callable[[str], str]:
    """A dotted name in a layout's PEFT names -> in ours (`Family.peft_names`: ours -> its).
    A name of ours that the layout calls otherwise is refused: PEFT would find no such
    module there."""
    ours = {theirs: mine for mine, theirs in names.items()}

    def rename(name: str) -> str:
        words = name.split(".")
        for w in words:
            if w in names and w not in ours:
                raise refuse(f"no module is named {w!r} on this backbone (its is {names[w]!r})")
        return ".".join(ours.get(w, w) for w in words)

    return rename


def names_to_ours(config: dict, names: dict[str, str]) -> dict:
    """The config with the module names of its naming settings in ours."""
    if not names:
        return config
    rename = renamer(names)
    out = dict(config)
    for key in NAMING:
        if is_names(config.get(key)):
            out[key] = [rename(n) for n in config[key]]
    return out


def names_to_layout(config: dict, names: dict[str, str]) -> dict:
    """Our export's config with its module names in the layout's."""
    out = dict(config)
    for key in NAMING:
        if is_names(config.get(key)):
            out[key] = [to_layout(n, names) for n in config[key]]
    return out


def to_layout(name: str, names: dict[str, str]) -> str:
    return ".".join(names.get(w, w) for w in name.split("."))


def _layers(config: dict) -> frozenset[int] | None:
    value = config.get("layers_to_transform")
    if value is None:
        return None
    items = [value] if isinstance(value, int) else value
    if not isinstance(items, list) or not all(is_int(x) and 0 <= x < 10_000 for x in items):
        raise refuse(f"layers_to_transform must be layer indices, got {short(value)}")
    return frozenset(items)


@dataclass(frozen=True)
class Placement:
    """Where PEFT puts a method's tensors: its target modules, layers, exclusions, and what
    else it saves."""

    targets: frozenset[str]
    layers: frozenset[int] | None  # layers_to_transform; None: every layer
    excluded: frozenset[str]  # exclude_modules: module names, or suffixes after a "."
    modules_to_save: tuple[str, ...]

    def targets_module(self, module: str) -> bool:
        """Whether target_modules names `module` as PEFT matches names: equal, or a suffix
        after a "."."""
        return any(_names(module, t) for t in self.targets)

    def applies_to(self, module: str, layer: int) -> str | None:
        """None when PEFT puts the method on `module` (its full name) in `layer`, else the
        setting that leaves it out."""
        if not self.targets_module(module):
            return f"target_modules={sorted(self.targets)}"
        if self.layers is not None and layer not in self.layers:
            return f"layers_to_transform={sorted(self.layers)}"
        if any(_names(module, name) for name in self.excluded):
            return "exclude_modules"
        return None


def _names(module: str, name: str) -> bool:
    return module == name or module.endswith(f".{name}")


@dataclass(frozen=True)
class LayerTensor:
    """A tensor PEFT saves on one module of every layer, and our tensor whose row it is."""

    module: str  # inside a layer: "attention.self.query"
    suffix: str  # after the module: "lora_A.weight"
    ours: str  # our artifact tensor (L, ...): PEFT's tensor is row [layer] of it
    shape: Callable[[Settings, BackboneDims], tuple[int, ...]]  # PEFT's shape
    to_ours: Callable[[Tensor], Tensor]  # PEFT's tensor -> our row
    to_peft: Callable[[Tensor], Tensor]  # our row -> PEFT's tensor


@dataclass(frozen=True)
class Settings:
    """A PEFT config as a format accepts it: the shared placement and its own values."""

    placement: Placement
    values: dict[str, Any] = field(default_factory=dict)


class PeftFormat:
    """One PEFT method's save format (`peft_type`), as the method module it becomes declares.

    Everything shared (file names, head, base model, labels, placement settings, dtypes and
    shapes from the header before any tensor is loaded) is checked by the converter; a format
    says what is its own."""

    peft_type = ""
    method = ""  # the method (`Method.name`) whose adapters these are
    preset = ""  # the preset a converted adapter starts from
    holds = ""  # what its tensors are, in refusals: "LoRA on query/value"
    targets: tuple[str, ...] = ()  # target_modules names it can represent
    informational: frozenset[str] = frozenset()  # its own settings that change no forward
    checked: frozenset[str] = frozenset()  # its own settings that `values` checks
    fill = 0.0  # our value where PEFT leaves a module or layer out (adds exactly nothing)

    def tensors(self) -> tuple[LayerTensor, ...]:
        raise NotImplementedError

    def values(self, config: dict, placement: Placement) -> dict[str, Any]:
        """Its own settings, checked (refused with the reason)."""
        return {}

    def check_limits(self, settings: Settings, limits: Any) -> None:
        """Refuse sizes over a server's limits (`peft_header.Limits`) before allocating."""

    def describe(self, settings: Settings, dims: BackboneDims) -> str:
        return f"hidden={dims.hidden}"

    def check_complete(self, found: set[tuple[int, str, str]]) -> None:
        """Refuse a set of (layer, module, suffix) PEFT would not apply as saved."""

    def method_config(self, settings: Settings) -> MethodConfig:
        from adapters.config import MethodConfig

        return MethodConfig.preset(self.preset)

    def exports(self, cfg: MethodConfig) -> bool:
        """Whether a task of this config is exactly an adapter of this format: the method
        alone, without gates."""
        return cfg.methods_on == [self.method]

    def config(self, cfg: MethodConfig, base_model: str, layout: HeadLayout) -> dict:
        """The adapter_config.json our export writes (PEFT fills in every other default)."""
        raise NotImplementedError


def placement(config: dict, fmt: PeftFormat) -> Placement:
    """The settings every PEFT method shares, checked; anything unknown that is set (and so
    changes the adapter) is refused with its name."""
    modules_to_save = strings(config, "modules_to_save")
    task_type = config.get("task_type")
    if task_type is None and HEAD_MODULE not in modules_to_save:
        raise refuse(
            f"task_type is None and modules_to_save {list(modules_to_save)} does not name the "
            f"head {HEAD_MODULE!r}: save the adapter with task_type='SEQ_CLS', or with "
            f"modules_to_save=[{HEAD_MODULE!r}]"
        )
    if task_type is not None and task_type != "SEQ_CLS":
        raise refuse(
            f"task_type is {short(task_type)}; only SEQ_CLS "
            "(a model with a sequence-classification head) is supported"
        )
    known = INFORMATIONAL | CHECKED | fmt.informational | fmt.checked
    for key, value in sorted(config.items()):
        if key not in known and value:
            raise refuse(
                f"{key}={short(value)} changes the adapter in a way this format cannot hold"
            )
    targets = config.get("target_modules")
    if not isinstance(targets, list) or not targets:
        raise refuse(f"target_modules must be a list of {fmt.targets}, got {short(targets)}")
    if not all(isinstance(t, str) for t in targets):
        raise refuse(f"target_modules must be module names, got {short(targets)}")
    other = sorted(set(targets) - set(fmt.targets))
    if other:
        raise refuse(
            f"{fmt.peft_type} on {short(other)}; only {', '.join(fmt.targets)} are supported"
        )
    if isinstance(config.get("exclude_modules"), str):
        raise refuse("exclude_modules as a regular expression is not supported; list names")
    return Placement(
        targets=frozenset(targets),
        layers=_layers(config),
        excluded=frozenset(strings(config, "exclude_modules")),
        modules_to_save=modules_to_save,
    )
