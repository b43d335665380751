"""Load a saved artifact on its backbone, then predict texts or score a labelled set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from adapters.artifact import Artifact, load_artifact, parse_manifest
from adapters.backbone import Backbone, load_backbone
from adapters.bank import TaskBank
from adapters.constants import MANIFEST_FILE
from adapters.data import DataError, Example, TaskSpec
from adapters.errors import ArtifactError
from adapters.model import UniPELTModel
from adapters.postprocess import RowPrediction, row_predictions
from adapters.tokenization import encode, load_tokenizer
from adapters.training.batching import Batch, encode_examples
from adapters.training.evaluate import Evaluation, evaluate

PREDICT_BATCH = 64


@dataclass
class Predictor:
    artifact: Artifact
    backbone: Backbone
    model: UniPELTModel
    bank: TaskBank
    tokenizer_: object | None = None

    @classmethod
    def load(
        cls, directory: Path | str, backbone: str | Backbone | None = None, tokenizer=None
    ) -> Predictor:
        """`backbone=None` loads the backbone the manifest names (it must be resolvable);
        the tokenizer is the backbone's unless given, read when first needed."""
        if not isinstance(backbone, Backbone):
            path = Path(directory) / MANIFEST_FILE
            if not path.is_file():
                raise ArtifactError(f"artifact file missing: {path}")
            backbone = load_backbone(backbone or parse_manifest(path.read_bytes()).backbone.name)
        artifact = load_artifact(Path(directory), backbone)
        bank = TaskBank.from_tasks([(artifact.config, artifact.weights)], backbone.dims)
        model = UniPELTModel(backbone).eval()
        return cls(artifact, backbone, model, bank, tokenizer)

    @property
    def tokenizer(self):
        if self.tokenizer_ is None:
            self.tokenizer_ = load_tokenizer(self.backbone.path)
        return self.tokenizer_

    @property
    def label_names(self) -> list[str]:
        return self.artifact.manifest.label_names

    @property
    def max_length(self) -> int:
        return self.artifact.manifest.tokenizer.max_length

    def forward(self, batch: Batch) -> Tensor:
        return self.logits(batch.input_ids, batch.attention_mask, batch.token_type_ids)

    def logits(self, ids: Tensor, mask: Tensor, types: Tensor | None) -> Tensor:
        slots = torch.zeros(ids.shape[0], dtype=torch.long)
        with torch.inference_mode():
            out = self.model(ids, mask, self.bank, slots, types)
        return out.logits[:, : self.artifact.manifest.num_labels]

    def predict(self, texts: list[str], pairs: list[str] | None = None) -> list[RowPrediction]:
        """One prediction per text (label and scores, or the regression value)."""
        out: list[RowPrediction] = []
        for start in range(0, len(texts), PREDICT_BATCH):
            chunk = texts[start : start + PREDICT_BATCH]
            chunk_pairs: list[str | None] | None = (
                list(pairs[start : start + PREDICT_BATCH]) if pairs else None
            )
            enc = encode(self.tokenizer, chunk, chunk_pairs, self.max_length)
            logits = self.logits(enc.input_ids, enc.attention_mask, enc.token_type_ids)
            names = [self.label_names] * len(chunk)
            out += row_predictions(logits, names)
        return out

    def check_spec(self, spec: TaskSpec) -> None:
        """The data's labels must be the artifact's, in the same order."""
        manifest = self.artifact.manifest
        if spec.is_regression != (manifest.problem_type == "regression"):
            raise DataError(f"data task {spec.name!r} and the artifact differ in problem type")
        if list(spec.label_names) != manifest.label_names:
            raise DataError(
                f"data labels {list(spec.label_names)} differ from the artifact's "
                f"{manifest.label_names}"
            )

    def evaluate(self, examples: list[Example], spec: TaskSpec) -> Evaluation:
        self.check_spec(spec)
        data = encode_examples(self.tokenizer, examples, self.max_length, spec.is_regression)
        return evaluate(self.forward, data, spec, PREDICT_BATCH)
