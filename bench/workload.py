"""Seeded request streams: N tasks with uniform or Zipf popularity over GLUE dev sentences.

Every workload of a run shares one text sequence (same texts, same order), so every row of the
table pads the same batches; only the task of each request differs between workloads.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

GLUE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"
SENTENCE_TASKS = ("sst2", "cola")  # single-sentence dev sets: 5-55 tokens, mean about 18
POPULARITIES = ("uniform", "zipf")
ZIPF_S = 1.0
_WORDS = [
    "the",
    "a",
    "film",
    "movie",
    "plot",
    "actor",
    "story",
    "scene",
    "great",
    "dull",
    "funny",
    "sad",
    "long",
    "short",
    "quite",
    "very",
    "not",
    "really",
    "with",
    "without",
    "and",
    "but",
    "because",
    "although",
    "music",
    "ending",
    "character",
    "direction",
]


@dataclass(frozen=True)
class Request:
    task: int  # index into the run's task list
    text: str


@dataclass(frozen=True)
class Workload:
    tasks: int
    popularity: str
    requests: tuple[Request, ...]

    @property
    def key(self) -> str:
        return f"{self.tasks}{self.popularity[0]}"  # "100z", "10u"

    def windows(self, size: int) -> list[list[Request]]:
        """Consecutive arrival windows of `size` requests (what a full batcher holds)."""
        r = self.requests
        return [list(r[i : i + size]) for i in range(0, len(r) - size + 1, size)]


def load_texts(glue_dir: Path = GLUE_DIR, seed: int = 0) -> tuple[list[str], str]:
    """GLUE dev sentences when the folder is there, else synthetic sentences of 3-45 words."""
    texts: list[str] = []
    if all((glue_dir / d / "dev.tsv").exists() for d in ("SST-2", "CoLA")):
        from adapters.data.glue import load_glue_split

        for task in SENTENCE_TASKS:
            texts += [e.text for e in load_glue_split(glue_dir, task, "dev")]
        source = f"GLUE dev sentences ({', '.join(SENTENCE_TASKS)}, {len(texts)} texts)"
    else:
        rng = random.Random(seed)
        for _ in range(2000):
            texts.append(" ".join(rng.choices(_WORDS, k=rng.randint(3, 45))))
        source = "synthetic sentences of 3-45 words (GLUE dev sets not found)"
    return texts, source


def popularity_weights(n_tasks: int, popularity: str) -> list[float]:
    if popularity == "uniform":
        return [1.0] * n_tasks
    if popularity == "zipf":
        return [1.0 / (rank + 1) ** ZIPF_S for rank in range(n_tasks)]
    raise ValueError(f"popularity must be one of {POPULARITIES}, got {popularity!r}")


def make_workload(
    texts: list[str], n_tasks: int, popularity: str, n_requests: int, seed: int = 0
) -> Workload:
    """`n_requests` requests; texts drawn with `seed` alone, tasks with (`seed`, N, popularity)."""
    text_rng = random.Random(seed)
    chosen = [text_rng.choice(texts) for _ in range(n_requests)]
    task_rng = random.Random(f"{seed}-{n_tasks}-{popularity}")
    weights = popularity_weights(n_tasks, popularity)
    tasks = task_rng.choices(range(n_tasks), weights=weights, k=n_requests)
    requests = tuple(Request(t, x) for t, x in zip(tasks, chosen))
    return Workload(n_tasks, popularity, requests)


class Encoder:
    """Tokenises each distinct text once (truncated to `max_length`), pads batches."""

    def __init__(self, tokenizer, max_length: int = 128) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._ids: dict[str, list[int]] = {}

    def ids(self, text: str) -> list[int]:
        ids = self._ids.get(text)
        if ids is None:
            enc = self.tokenizer(text, truncation=True, max_length=self.max_length)
            ids = self._ids[text] = list(enc["input_ids"])
        return ids

    def batch(self, requests: list[Request]) -> tuple[Tensor, Tensor]:
        """(input_ids, attention_mask), each (B, T) padded to the batch's longest row."""
        rows = [self.ids(r.text) for r in requests]
        longest = max(len(r) for r in rows)
        ids = torch.full((len(rows), longest), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return ids, mask
