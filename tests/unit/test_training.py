"""The training loop on the tiny random encoder: learning, early stopping, determinism."""

from __future__ import annotations

import pytest
import torch

from adapters.artifact import load_artifact
from adapters.config import MethodConfig
from adapters.errors import ConfigError
from adapters.training.batching import encode_examples
from adapters.training.defaults import TrainSettings, default_learning_rate
from adapters.training.evaluate import evaluate, evaluate_learner
from adapters.training.export import artifact_task_name, build_manifest, save_outcome
from adapters.training.inference import Predictor
from adapters.training.learner import Learner
from adapters.training.run import EncodedTask, train_encoded
from adapters.training.trainer import task_loss, train
from tests.unit.test_training_toy import (  # noqa: F401  (one_thread: autouse fixture)
    TOY_REGRESSION,
    TOY_SPEC,
    one_thread,
    toy_examples,
    toy_tokenizer,
)

P = MethodConfig.preset


@pytest.fixture(scope="module")
def toy():
    tok = toy_tokenizer()

    def make(spec=TOY_SPEC, n_train=96, n_dev=48, n_test=32):
        reg = spec.is_regression
        sets = [
            encode_examples(tok, toy_examples(n, seed, reg), 32, reg)
            for n, seed in ((n_train, 0), (n_dev, 1), (n_test, 2))
        ]
        return EncodedTask(spec, *sets)

    return make


def _loss(learner, data, spec) -> float:
    ev = evaluate_learner(learner, data, spec, 64)
    return float(task_loss(spec, ev.outputs, data.labels))


@pytest.mark.parametrize(
    ("preset", "lr"),
    [
        ("ft", 2e-5),
        ("bitfit", 5e-3),
        ("a", 1e-3),
        ("p", 2e-4),
        ("l", 5e-4),
        ("ap", 5e-4),
        ("apl", 5e-4),
        ("apl-nogate", 5e-4),
        ("head", 1e-3),
        ("ia3", 1e-2),
    ],
)
def test_default_learning_rates(preset, lr):
    assert default_learning_rate(P(preset)) == lr
    assert TrainSettings(lr=0.1).learning_rate(P(preset)) == 0.1


@pytest.mark.parametrize(
    ("field", "value"),
    [("epochs", 0), ("batch_size", -1), ("lr", 0.0), ("warmup_ratio", 1.0), ("eval_every", -2)],
)
def test_settings_name_the_wrong_value(field, value):
    with pytest.raises(ConfigError, match=field):
        TrainSettings(**{field: value})


@pytest.mark.parametrize(("spec", "method"), [(TOY_SPEC, "apl"), (TOY_REGRESSION, "apl")])
def test_loss_goes_down_and_dev_score_is_high(tiny_bert, toy, spec, method):
    task = toy(spec)
    torch.manual_seed(0)
    before = _loss(Learner(P(method), tiny_bert, spec.num_labels), task.train, spec)
    settings = TrainSettings(lr=1e-2, epochs=15, batch_size=16, patience=15)
    outcome = train_encoded(task, P(method), tiny_bert, settings)
    after = _loss(outcome.learner, task.train, spec)
    assert after < 0.5 * before
    assert outcome.result.best_dev[spec.main_metric] > 0.7
    assert set(outcome.metrics()) == {
        f"{s}_{m}" for s in ("dev", "test") for m in spec.metric_names
    }


def test_ia3_trains_every_vector(tiny_bert, toy):
    """Gradients reach all four (IA)^3 vectors (AdamW moves any parameter with a gradient)."""
    outcome = train_encoded(toy(), P("ia3"), tiny_bert, TrainSettings(lr=1e-2, epochs=1))
    weights = outcome.learner.task.export()
    for name in ("ia3_k", "ia3_v", "ia3_attn_out", "ia3_ff"):
        assert (weights[name] - 1).abs().max() > 1e-3, name


def test_early_stopping_stops_and_keeps_the_best_state(tiny_bert, toy):
    task = toy()
    settings = TrainSettings(lr=1e-12, epochs=50, batch_size=16, patience=2, eval_every=1)
    learner = Learner(P("l"), tiny_bert, 2)
    result = train(learner, task.train, task.dev, TOY_SPEC, settings)
    # The dev score cannot improve: evaluation 1 sets the best, 2 and 3 exhaust patience.
    assert result.stopped_early and result.steps == 3 and result.best_step == 1
    assert len(result.history) == 3
    kept = evaluate_learner(learner, task.dev, TOY_SPEC, 64).metrics
    assert kept == result.best_dev


def test_same_seed_same_weights_other_seed_differs(tiny_bert, toy):
    task = toy(n_train=32, n_dev=16, n_test=8)

    def weights(seed):
        settings = TrainSettings(lr=1e-2, epochs=2, batch_size=8, seed=seed)
        return train_encoded(task, P("apl"), tiny_bert, settings).learner.task.export()

    a, b, c = weights(0), weights(0), weights(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_training_leaves_the_shared_backbone_untouched(tiny_bert, toy):
    before = {k: v.clone() for k, v in tiny_bert.model.state_dict().items()}
    task = toy(n_train=32, n_dev=16, n_test=8)
    for method in ("apl", "bitfit", "ft"):
        train_encoded(task, P(method), tiny_bert, TrainSettings(lr=1e-2, epochs=1))
    after = tiny_bert.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in tiny_bert.model.parameters())


def test_full_finetune_trains_a_copy_and_counts_it(tiny_bert, toy):
    learner = Learner(P("ft"), tiny_bert, 2)
    assert learner.backbone.model is not tiny_bert.model
    assert learner.training_parameter_count() > tiny_bert.parameter_count() // 2
    ft_task = toy(n_train=16, n_dev=8, n_test=8)
    outcome = train_encoded(ft_task, P("ft"), tiny_bert, TrainSettings(lr=1e-3, epochs=1))
    with pytest.raises(ConfigError, match="not an adapter"):
        build_manifest(outcome, "toy")


def test_saved_artifact_predicts_like_the_trained_learner(tiny_bert, toy, tmp_path):
    task = toy(n_train=32, n_dev=16, n_test=16)
    outcome = train_encoded(task, P("apl"), tiny_bert, TrainSettings(lr=1e-2, epochs=2))
    path = save_outcome(outcome, tmp_path / "toy", "Toy Task")
    artifact = load_artifact(path, tiny_bert)
    assert artifact.manifest.task == "toy-task"
    assert artifact.manifest.metrics == pytest.approx(outcome.metrics())
    assert artifact.manifest.trainable_parameters == outcome.learner.kept_parameter_count()
    predictor = Predictor.load(path, tiny_bert)
    again = evaluate(predictor.forward, task.test, TOY_SPEC, 8)
    assert torch.allclose(again.outputs, outcome.test.outputs, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "slug"), [("SST-2", "sst-2"), ("My Task.v2", "my-task.v2"), ("x", "x")]
)
def test_artifact_task_names(name, slug):
    assert artifact_task_name(name) == slug


def test_method_timing_table(tiny_bert):
    from adapters.training.timing import time_methods, timing_table

    timings = time_methods(tiny_bert, ["ft", "apl"], batch_size=4, length=8, rounds=1, repeats=1)
    assert [t.method for t in timings] == ["ft", "apl"]
    assert all(t.train_step > 0 and t.inference > 0 for t in timings)
    table = timing_table(timings)
    assert "| Fine-tuning |" in table and "| 100% |" in table and "| UniPELT (APL) |" in table
