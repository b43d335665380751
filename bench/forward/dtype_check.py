"""`python -m bench.forward.dtype_check ARTIFACT --data-dir GLUE`: a trained adapter in low
precision.

Scores the artifact on its GLUE task's dev set (the study's test set) through the serving
forward (bank, plan, packed real tokens) with the backbone and bank in float32, bfloat16 and
float16, and compares each precision's logits with float32's: the largest absolute difference
against the bound the equality tests state (`8 u max(1, max |logit|)`, docs/architecture.md),
the share of examples whose predicted label is unchanged, and the task metric. Prints a table;
`--json` writes it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from adapters.bank import TaskBank
from adapters.data import GLUE_TASKS, load_glue_split, normalise_task_name
from adapters.model import UniPELTModel
from adapters.plan import plan_batch
from adapters.precision import precision_bound
from adapters.training.batching import Batch, encode_examples
from adapters.training.evaluate import predict_outputs, score
from adapters.training.inference import Predictor


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("artifact", type=Path)
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--split", default="dev")
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16", "float16"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args(argv)


def serving_forward(predictor: Predictor, dtype: torch.dtype):
    """The service's forward in `dtype`: a plan from host values, real tokens packed."""
    backbone = predictor.backbone.with_dtype(dtype)
    model = UniPELTModel(backbone).eval()
    artifact = predictor.artifact
    bank = TaskBank.from_tasks([(artifact.config, artifact.weights)], backbone.dims, dtype=dtype)
    labels = artifact.manifest.num_labels

    def forward(batch: Batch) -> torch.Tensor:
        lengths = batch.attention_mask.sum(1).tolist()
        padded = min(lengths) < batch.input_ids.shape[1]
        plan = plan_batch(bank, [0] * len(lengths), padded, lengths=lengths)
        slots = torch.zeros(len(lengths), dtype=torch.long)
        out = model(
            batch.input_ids, batch.attention_mask, bank, slots, batch.token_type_ids, plan=plan
        )
        return out.logits[:, :labels]

    return forward


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    predictor = Predictor.load(args.artifact)
    task = normalise_task_name(predictor.artifact.manifest.task)
    spec = GLUE_TASKS[task]
    examples = load_glue_split(args.data_dir, task, args.split)
    data = encode_examples(predictor.tokenizer, examples, predictor.max_length, spec.is_regression)
    outputs = {}
    for name in args.dtypes:
        print(f"{name} ...", file=sys.stderr, flush=True)
        outputs[name], _ = predict_outputs(
            serving_forward(predictor, getattr(torch, name)), data, 64
        )
    ref = outputs["float32"]
    rows = []
    for name, out in outputs.items():
        bound = precision_bound(getattr(torch, name), ref)
        same = (out.argmax(1) == ref.argmax(1)).float().mean() if not spec.is_regression else None
        rows.append(
            {
                "dtype": name,
                "metric": score(spec, out, data.labels)[spec.main_metric] * 100,
                "max_abs_diff": float((out - ref).abs().max()),
                "bound": bound,
                "within_bound": float((out - ref).abs().max()) <= bound,
                "same_prediction_pct": None if same is None else float(same) * 100,
            }
        )
    print(
        f"{args.artifact} on {task} {args.split} ({len(examples)} examples); max |logit| "
        f"{float(ref.abs().max()):.3f}"
    )
    print(f"| dtype | {spec.main_metric} | max abs diff vs float32 | bound | same prediction |")
    print("|---|---|---|---|---|")
    for r in rows:
        pct = "" if r["same_prediction_pct"] is None else f"{r['same_prediction_pct']:.2f}%"
        print(
            f"| {r['dtype']} | {r['metric']:.2f} | {r['max_abs_diff']:.2e} | "
            f"{r['bound']:.2e} | {pct} |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
