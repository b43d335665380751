"""A smoke demo: train a small APL sentiment adapter on a few sentences, then predict."""

from __future__ import annotations

from adapters.backbone import Backbone, load_backbone
from adapters.config import MethodConfig
from adapters.data import Example, TaskSpec
from adapters.tokenization import load_tokenizer
from adapters.training.defaults import TrainSettings
from adapters.training.run import RunOutcome, train_task
from adapters.training.tasks import TaskData

POSITIVE = (
    "a wonderful, moving film",
    "the cast is superb and the story is delightful",
    "I loved every minute of it",
    "a smart, funny and warm comedy",
    "beautifully shot and brilliantly acted",
    "one of the best films of the year",
    "charming from start to finish",
    "an absolute joy to watch",
)
NEGATIVE = (
    "a dull, lifeless mess",
    "the plot is boring and the acting is terrible",
    "I hated every minute of it",
    "a clumsy, unfunny and tedious comedy",
    "badly written and poorly directed",
    "one of the worst films of the year",
    "tiresome from start to finish",
    "a complete waste of time",
)
QUERIES = ("what a great, touching story", "an awful and boring film")
SPEC = TaskSpec("demo-sentiment", ("negative", "positive"), False, ("accuracy",), "accuracy")


def demo_data() -> TaskData:
    train = [Example(t, None, 1) for t in POSITIVE] + [Example(t, None, 0) for t in NEGATIVE]
    return TaskData(SPEC, train, [], [])


def train_demo(backbone: Backbone | None = None, epochs: int = 8) -> RunOutcome:
    """Head + UniPELT (APL) on 16 sentences: 8 epochs of one batch each (a few seconds)."""
    backbone = backbone or load_backbone()
    settings = TrainSettings(epochs=epochs, lr=1e-3, warmup_ratio=0.0)
    tokenizer = load_tokenizer(backbone.path)
    return train_task(demo_data(), MethodConfig.preset("apl"), backbone, tokenizer, settings)
