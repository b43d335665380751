"""`unipelt import-peft` and `unipelt export-peft`: PEFT adapter directories <-> our artifacts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.library import Handler, names


def add_peft_commands(sub) -> None:
    p = sub.add_parser("import-peft", help="convert a PEFT (SEQ_CLS) directory to an artifact")
    p.add_argument("peft_dir", type=Path, help="directory written by PEFT's save_pretrained")
    p.add_argument("--output", type=Path, required=True, help="artifact directory to write")
    p.add_argument("--task", default="imported", help="task name in the artifact")
    p.add_argument("--labels", type=names, help="class names in head order (comma-separated)")
    p.add_argument("--text-pair", action="store_true", default=None, help="inputs are text pairs")
    p.add_argument("--max-length", type=int, default=None, help="tokens per input (128)")
    p.add_argument("--backbone", default=None, help="local model dir or name (default: MiniLM)")
    e = sub.add_parser("export-peft", help="write a one-method artifact as a PEFT directory")
    e.add_argument("artifact", type=Path)
    e.add_argument("--output", type=Path, required=True, help="PEFT directory to write")
    e.add_argument("--backbone", default=None, help="default: the one the manifest names")


def import_peft_command(args: argparse.Namespace) -> int:
    from adapters.artifact import load_artifact, save_artifact
    from adapters.backbone import load_backbone
    from adapters.peft_import import ImportOptions, import_peft, read_peft_dir

    backbone = load_backbone(args.backbone)
    options = ImportOptions(
        task=args.task,
        labels=args.labels,
        text_pair=args.text_pair,
        max_length=args.max_length,
        load_base_model=True,
    )
    manifest, weights = import_peft(*read_peft_dir(args.peft_dir), backbone, options)
    path = save_artifact(args.output, manifest, weights)
    load_artifact(path, backbone)  # read back exactly as the server will
    labels = ", ".join(manifest.label_names) or "regression"
    method = manifest.method_config
    sizes = f" r={method.lora_r}" if method.lora else ""
    print(f"wrote {path}: task {manifest.task}, method {method.name}{sizes}, {labels}")
    return 0


def export_peft_command(args: argparse.Namespace) -> int:
    from adapters.artifact import load_artifact, parse_manifest
    from adapters.backbone import load_backbone
    from adapters.constants import MANIFEST_FILE
    from adapters.peft_export import export_peft

    manifest_path = args.artifact / MANIFEST_FILE
    name = args.backbone or parse_manifest(manifest_path.read_bytes()).backbone.name
    backbone = load_backbone(name)
    path = export_peft(load_artifact(args.artifact, backbone), backbone, args.output)
    print(f"wrote {path} (load with PeftModel.from_pretrained)", file=sys.stderr)
    return 0


def peft_handlers() -> dict[str, Handler]:
    return {"import-peft": import_peft_command, "export-peft": export_peft_command}
