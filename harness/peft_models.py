"""Real PEFT sequence-classification adapters (LoRA, (IA)^3) with non-trivial weights, saved
by PEFT."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from adapters.backbone import Backbone


def base_classifier(base_path: Path | str, num_labels: int, seed: int = 0):
    """`AutoModelForSequenceClassification` on the backbone directory (head: random)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from adapters.families import family_for

    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(str(base_path), local_files_only=True)
    options = family_for(config.model_type).load_options()
    return AutoModelForSequenceClassification.from_pretrained(
        str(base_path), num_labels=num_labels, local_files_only=True, **options
    ).eval()


def make_peft_adapter(
    base_path: Path | str,
    out_dir: Path,
    num_labels: int = 3,
    seed: int = 0,
    lora_std: float = 0.5,
    **lora: object,
):
    """Save a LoRA adapter whose LoRA and head weights are all random; return the PeftModel."""
    from peft import LoraConfig, TaskType, get_peft_model

    options: dict[str, Any] = {
        "r": 4,
        "lora_alpha": 8,
        "target_modules": ["query", "value"],
        **lora,
    }
    config = LoraConfig(task_type=TaskType.SEQ_CLS, lora_dropout=0.0, **options)
    model = get_peft_model(base_classifier(base_path, num_labels, seed), config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:  # LoRA A/B (large enough to matter) and the head copy
                p.copy_(torch.randn_like(p) * (lora_std if "lora_" in name else 0.2))
    model.save_pretrained(str(out_dir))
    return model.eval()


def make_peft_ia3_adapter(
    base_path: Path | str,
    out_dir: Path,
    num_labels: int = 3,
    seed: int = 0,
    ia3_std: float = 1.0,
    **ia3: object,
):
    """Save an (IA)^3 adapter (PEFT's default modules unless given) whose vectors are
    1 + N(0, ia3_std) and whose head is random; return the PeftModel."""
    from peft import IA3Config, TaskType, get_peft_model

    config = IA3Config(task_type=TaskType.SEQ_CLS, **ia3)  # type: ignore[arg-type]
    model = get_peft_model(base_classifier(base_path, num_labels, seed), config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ia3_l" in name:
                p.copy_(1 + torch.randn_like(p) * ia3_std)
            elif p.requires_grad:  # the head copy
                p.copy_(torch.randn_like(p) * 0.2)
    model.save_pretrained(str(out_dir))
    return model.eval()


def load_peft(base_path: Path | str, peft_dir: Path, num_labels: int):
    from peft import PeftModel

    return PeftModel.from_pretrained(base_classifier(base_path, num_labels), str(peft_dir)).eval()


def peft_logits(model, ids: Tensor, mask: Tensor, types: Tensor | None) -> Tensor:
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits


def saved_encoder(backbone, directory: Path) -> Path:
    """Save a test backbone's encoder so transformers (and PEFT) can load it by path."""
    backbone.model.save_pretrained(str(directory))
    return directory


def lora_effect(model, ids: Tensor, mask: Tensor, types: Tensor | None) -> float:
    """Largest logit change the LoRA weights make (B zeroed for the comparison, then restored)."""
    with_lora = peft_logits(model, ids, mask, types)
    saved = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in saved:
                p.zero_()
        without = peft_logits(model, ids, mask, types)
        for n, p in model.named_parameters():
            if n in saved:
                p.copy_(saved[n])
    return float((with_lora - without).abs().max())


def adapter_name(task: int) -> str:
    return f"t{task}"


def build_peft_model(backbone: Backbone, weights: list[dict[str, Tensor]], rank: int, alpha: float):
    """A PeftModel with adapters t0..t{N-1} carrying exactly our LoRA-only tasks' weights.

    It wraps a private copy of the backbone: PEFT replaces the model's Linear modules in
    place, so the shared backbone must not be the one it wraps.
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,  # type: ignore[arg-type]  # annotated int; PEFT scales by alpha / r
        lora_dropout=0.0,
        target_modules=["query", "value"],
    )
    base = copy.deepcopy(backbone.model)
    model = get_peft_model(base, config, adapter_name=adapter_name(0))
    for task in range(1, len(weights)):
        model.add_adapter(adapter_name(task), config)
    base_model: Any = model.get_base_model()  # a transformers model: attributes are dynamic
    layers = base_model.encoder.layer
    with torch.no_grad():
        for task, w in enumerate(weights):
            name = adapter_name(task)
            for index, layer in enumerate(layers):
                for proj, module in (
                    ("q", layer.attention.self.query),
                    ("v", layer.attention.self.value),
                ):
                    # ours: x @ A (d, r) @ B (r, d); PEFT: Linear weights are (out, in).
                    module.lora_A[name].weight.copy_(w[f"lora_{proj}_A"][index].t())
                    module.lora_B[name].weight.copy_(w[f"lora_{proj}_B"][index].t())
    return model.eval()


def save_word_tokenizer(directory: Path, vocab_size: int) -> None:
    """A RoBERTa-style word-level fast tokenizer (`<s> A </s>`, words `w0`, `w1`, ...) saved
    next to a tiny encoder, so the service can load that directory as its backbone."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<s>", "<pad>", "</s>", "<unk>"] + [f"w{i}" for i in range(vocab_size - 4)]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, "<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    ).save_pretrained(str(directory))
