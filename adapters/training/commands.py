"""What each `unipelt` library subcommand does, given typed settings (`cli/` parses the flags
into them): train, evaluate, predict, the study and its timing, the demo."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from adapters.backbone import load_backbone
from adapters.config import MethodConfig
from adapters.data import GLUE_TASKS, load_generic, load_glue_split, normalise_task_name
from adapters.errors import ConfigError
from adapters.postprocess import RowPrediction
from adapters.tokenization import load_tokenizer
from adapters.training.columns import column_map, renamed_copy
from adapters.training.defaults import DEV_SIZE, TrainSettings
from adapters.training.demo import QUERIES, train_demo
from adapters.training.export import save_outcome
from adapters.training.inference import Predictor
from adapters.training.report import write_report
from adapters.training.run import train_task
from adapters.training.study import StudyConfig, run_study
from adapters.training.tasks import TaskData, file_task_data, glue_task_data
from adapters.training.timing import time_methods, timing_table

Log = Callable[[str], None]


def to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def to_stdout(line: str) -> None:
    print(line, flush=True)


@dataclass(frozen=True)
class Columns:
    """The user's column names for the text, the second text and the label."""

    text: str = "text"
    pair: str = "text_pair"
    label: str = "label"

    def mapping(self) -> dict[str, str]:
        return column_map(self.text, self.pair, self.label)


@dataclass(frozen=True)
class TaskSource:
    """Where a task's examples come from: a GLUE `task` under `data_dir`, or the user's files."""

    task: str | None = None
    data_dir: Path | None = None
    train_file: Path | None = None
    dev_file: Path | None = None
    test_file: Path | None = None
    columns: Columns = field(default_factory=Columns)
    labels: list[str] | None = None
    regression: bool = False
    name: str | None = None  # the task's name (default: the train file's stem)
    k: int | None = None  # training examples (None: all)
    dev_size: int = DEV_SIZE
    seed: int = 0


@dataclass(frozen=True)
class TrainJob:
    source: TaskSource
    method: MethodConfig
    settings: TrainSettings
    backbone: str | None = None  # local model dir or name (None: the packaged MiniLM)
    device: str = "cpu"
    output: Path | None = None  # artifact directory (None: metrics only)
    task_name: str | None = None  # the task's name in the artifact (None: the data's)
    progress: bool = True


@dataclass(frozen=True)
class EvalJob:
    artifact: Path
    backbone: str | None = None
    task: str | None = None  # a GLUE task under `data_dir` ...
    data_dir: Path | None = None
    split: str = "dev"
    file: Path | None = None  # ... or a labelled file
    columns: Columns = field(default_factory=Columns)


def training_device(name: str) -> str:
    """Check the device before any weight moves: a clear error instead of torch's."""
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"--device {name} is not a torch device ({exc})") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: torch sees no CUDA device on this machine")
    return name


def glue_dir(data_dir: Path | None) -> Path:
    if not data_dir:
        raise ConfigError("a GLUE task needs --data-dir (or UNIPELT_GLUE_DIR)")
    return Path(data_dir)


def task_data(source: TaskSource, workdir: Path) -> TaskData:
    if source.task and source.train_file:
        raise ConfigError("give either --task (GLUE) or --train-file, not both")
    if source.task:
        return glue_task_data(
            glue_dir(source.data_dir), source.task, source.k, source.seed, source.dev_size
        )
    if not source.train_file:
        raise ConfigError("give --task (a GLUE task) or --train-file")
    mapping = source.columns.mapping()
    train = renamed_copy(source.train_file, mapping, workdir)
    dev, test = [
        renamed_copy(f, mapping, workdir) if f else None
        for f in (source.dev_file, source.test_file)
    ]
    name = source.name or Path(source.train_file).stem
    return file_task_data(
        train,
        dev,
        test,
        source.labels,
        source.regression,
        name,
        source.k,
        source.seed,
        source.dev_size,
    )


def train(job: TrainJob, log: Log = to_stderr) -> dict[str, Any]:
    """Train one task (and save its artifact when `job.output` is set); its metrics."""
    device = training_device(job.device)
    cfg = job.method
    if cfg.full_finetune and job.output:
        raise ConfigError(
            "full fine-tuning trains the whole backbone; its result is not an adapter artifact "
            "and cannot be saved. Drop --output to get its metrics."
        )
    with tempfile.TemporaryDirectory(prefix="unipelt-") as workdir:
        data = task_data(job.source, Path(workdir))
    backbone = load_backbone(job.backbone, device=device)
    log(
        f"{data.spec.name}: {len(data.train)} train / {len(data.dev)} dev / {len(data.test)} "
        f"test examples; method {cfg.name}, lr {job.settings.learning_rate(cfg):g}"
    )
    outcome = train_task(
        data, cfg, backbone, load_tokenizer(backbone.path), job.settings, job.progress
    )
    r = outcome.result
    log(
        f"{r.steps} steps ({r.epochs:.1f} epochs), best dev at step {r.best_step}, "
        f"{r.seconds_per_step:.3f} s/step"
    )
    if job.output:
        path = save_outcome(outcome, job.output, job.task_name or data.spec.name)
        log(f"artifact written to {path}")
    return outcome.metrics()


def evaluate(job: EvalJob) -> dict[str, Any]:
    """The artifact's metrics on a GLUE split or a labelled file."""
    predictor = Predictor.load(job.artifact, job.backbone)
    manifest = predictor.artifact.manifest
    if job.file:
        regression = manifest.problem_type == "regression"
        labels = manifest.label_names or None
        with tempfile.TemporaryDirectory(prefix="unipelt-") as workdir:
            path = renamed_copy(job.file, job.columns.mapping(), Path(workdir))
            examples, spec = load_generic(path, labels, regression, manifest.task)
    elif job.task:
        key = normalise_task_name(job.task)
        examples = load_glue_split(glue_dir(job.data_dir), key, job.split)
        spec = GLUE_TASKS[key]
    else:
        raise ConfigError("give --task (with --data-dir) or --file")
    result = predictor.evaluate(examples, spec)
    return {"examples": len(examples), **result.metrics}


def predict(
    artifact: Path, backbone: str | None, texts: list[str], pairs: list[str] | None
) -> list[RowPrediction]:
    """The artifact's prediction for each text (and its pair, for a pair task)."""
    if pairs is not None and len(pairs) != len(texts):
        raise ConfigError(f"{len(texts)} texts but {len(pairs)} --pair values")
    if not texts:
        raise ConfigError("no texts given (as arguments or on stdin)")
    predictor = Predictor.load(artifact, backbone)
    if predictor.artifact.manifest.tokenizer.text_pair and pairs is None:
        raise ConfigError("this task takes text pairs: give --pair once per text")
    return predictor.predict(texts, pairs)


def study(
    config: StudyConfig | None, out: Path, with_plot: bool, log: Log = to_stdout
) -> list[Path]:
    """Run the study's pending runs (none when `config` is None: the report only), then
    rebuild its report under `out`; the files written."""
    if config is not None:
        total = len(config.grid())
        log(f"study: {total} runs, {total - len(config.pending())} already done")
        run_study(config, lambda done, total, record: log(_run_line(done, total, record)))
    return write_report(out, with_plot=with_plot)


def timing(backbone_name: str | None, methods: list[str], batch_size: int, out: Path) -> str:
    """Same-batch, round-robin speed of each method on this machine (see `timing.py`),
    written to `out/timing.md`; the text written."""
    backbone = load_backbone(backbone_name)
    table = timing_table(time_methods(backbone, methods, batch_size))
    header = (
        f"Synthetic batches: train {batch_size} x 32 tokens, inference 64 x 32 tokens; "
        f"{torch.get_num_threads()} thread(s); median of 3 round-robin rounds."
    )
    out.mkdir(parents=True, exist_ok=True)
    text = f"{header}\n\n{table}"
    (out / "timing.md").write_text(text + "\n")
    return text


def demo(backbone_name: str | None, log: Log = to_stdout) -> list[tuple[str, RowPrediction]]:
    """Train a tiny sentiment adapter, save it, load it back; its predictions of the demo
    queries."""
    backbone = load_backbone(backbone_name)
    outcome = train_demo(backbone)
    log(f"trained {outcome.learner.cfg.name} for {outcome.result.steps} steps")
    with tempfile.TemporaryDirectory(prefix="unipelt-demo-") as workdir:
        path = save_outcome(outcome, Path(workdir) / "demo", "demo-sentiment")
        predictor = Predictor.load(path, backbone)
        return list(zip(QUERIES, predictor.predict(list(QUERIES))))


def _run_line(done: int, total: int, record: dict) -> str:
    return (
        f"[{done}/{total}] {record['run_id']}: test {record['test_main']:.4f} "
        f"dev {record['dev_main'] or 0:.4f} steps {record['steps']} "
        f"{record['seconds_per_step']:.3f} s/step {record['wall_seconds']:.0f} s"
    )
