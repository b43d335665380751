"""Training defaults: a step budget for small K, early stopping, schedules, head starts."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from adapters.config import MethodConfig
from adapters.errors import ConfigError
from adapters.training.batching import EncodedSet, collate, encode_examples, train_order
from adapters.training.defaults import PATIENCE, STEP_BUDGET, TrainSettings
from adapters.training.learner import Learner
from adapters.training.run import EncodedTask, train_encoded
from adapters.training.trainer import linear_schedule, train
from tests.unit import test_training_toy as toy
from tests.unit.test_training_toy import one_thread  # noqa: F401  (autouse fixture)

P = MethodConfig.preset


def _task(spec, n_train: int, n_dev: int = 16) -> EncodedTask:
    tok, reg = toy.toy_tokenizer(), spec.is_regression
    sets = [encode_examples(tok, toy.toy_examples(n, s, reg), 32, reg) for n, s in ((n_train, 0),
            (n_dev, 1), (8, 2))]  # fmt: skip
    return EncodedTask(spec, *sets)


def test_small_k_gets_a_step_budget_and_large_k_ten_epochs():
    default = TrainSettings()
    assert default.max_steps(7) == STEP_BUDGET  # K=100, batch 16
    assert default.max_steps(4210) == 42100  # all of SST-2: 10 epochs
    assert TrainSettings(epochs=10).max_steps(7) == 70  # an explicit cap is kept
    assert default.eval_interval(STEP_BUDGET) == 25
    assert TrainSettings(eval_every=7).eval_interval(STEP_BUDGET) == 7


def test_default_k100_run_is_ended_by_early_stopping_not_the_cap(tiny_bert):
    """With every default but a learning rate too small to improve the dev score, a K=100 run
    stops after `patience` evaluations without gain, long before its step cap."""
    task = _task(toy.TOY_SPEC, 100)
    settings = TrainSettings(lr=1e-12)
    result = train(Learner(P("l"), tiny_bert, 2), task.train, task.dev, toy.TOY_SPEC, settings)
    every, cap = settings.eval_interval(STEP_BUDGET), settings.max_steps(7)
    patience = settings.resolved(100).patience
    assert patience == PATIENCE
    assert result.stopped_early
    assert result.steps == every * (patience + 1) < cap
    assert [h["step"] for h in result.history][:2] == [every, 2 * every]


def test_default_patience_covers_five_epochs_and_at_least_six_evaluations():
    default = TrainSettings()
    assert default.resolved(100).patience == 6  # 7 steps an epoch, dev every 25
    assert default.resolved(1000).patience == 12  # 63 steps an epoch: 12 x 25 <= 5 epochs
    assert default.resolved(67349).patience == 15  # all of SST-2: dev every 1,316 steps
    assert TrainSettings(patience=3).resolved(1000).patience == 3  # a given one is kept
    assert default.resolved(1000).resolved(100).patience == 12  # resolved once


def test_training_waits_the_resolved_patience(tiny_bert):
    """32 examples, dev after every step: 5 epochs are 10 evaluations, more than 6."""
    task = _task(toy.TOY_SPEC, 32)
    settings = TrainSettings(lr=1e-12, min_steps=0, epochs=None, eval_every=1)
    assert settings.resolved(32).patience == 10
    result = train(Learner(P("l"), tiny_bert, 2), task.train, task.dev, toy.TOY_SPEC, settings)
    assert result.stopped_early and result.steps == 11 < settings.max_steps(2)
    outcome = train_encoded(task, P("l"), tiny_bert, settings)
    assert outcome.settings.patience == 10  # what the record and the artifact store


def test_regression_head_starts_at_the_mean_training_label(tiny_bert):
    task = _task(toy.TOY_REGRESSION, 32)
    mean = float(task.train.labels.mean())
    assert 0.2 < mean < 0.8
    settings = TrainSettings(lr=1e-12, epochs=1, batch_size=8)
    outcome = train_encoded(task, P("apl"), tiny_bert, settings)
    bias = outcome.learner.task.weights["head_out_b"]
    assert bias.shape == (1,) and bias.item() == pytest.approx(mean, abs=1e-6)
    classifier = train_encoded(_task(toy.TOY_SPEC, 32), P("apl"), tiny_bert, settings)
    assert torch.allclose(classifier.learner.task.weights["head_out_b"], torch.zeros(2), atol=1e-9)


def test_constant_schedule_keeps_the_rate_after_warmup():
    decay, constant = linear_schedule(2, 10), linear_schedule(2, 10, constant=True)
    assert [round(constant(s), 3) for s in range(5)] == [0.333, 0.667, 1.0, 1.0, 1.0]
    assert decay(2) == 1.0 and decay(6) == 0.5 and decay(10) == 0.0
    with pytest.raises(ConfigError, match="schedule"):
        TrainSettings(schedule="cosine")


def test_learner_and_batches_live_on_the_backbone_device(tiny_bert):
    """A CPU test of the device plumbing (CUDA itself needs a GPU to prove)."""
    task = _task(toy.TOY_SPEC, 8)
    for method in ("apl", "ft"):
        learner = Learner(P(method), tiny_bert, 2)
        device = next(tiny_bert.model.parameters()).device
        assert learner.device == device
        assert all(p.device == device for p in learner.parameters())
    batch = collate(task.train, [0, 1]).to("cpu")
    assert batch.input_ids.device.type == "cpu" and learner(batch).shape == (2, 2)


def test_a_small_training_set_gets_new_batches_every_epoch():
    """Length grouping of a set within one window used to cut the same length-sorted batches
    every epoch; now only larger sets are grouped."""
    data = EncodedSet([[5] * n for n in range(1, 101)], None, torch.zeros(100), 0, False)
    order = torch.Generator().manual_seed(0)
    epochs = [{frozenset(b) for b in train_order(data, 16, order, True)} for _ in range(2)]
    assert epochs[0] != epochs[1]
    big = EncodedSet([[5] * (n % 40 + 1) for n in range(2000)], None, torch.zeros(2000), 0, False)
    widths = [max(len(big.input_ids[i]) for i in b) for b in train_order(big, 16, order, True)]
    assert sum(widths) < 0.8 * 125 * 40  # grouped: far less padding than random batches


def test_full_finetuning_matches_transformers_step_for_step(tiny_bert):
    """Our FT learner and BertForSequenceClassification, from the same weights and without
    dropout, give the same logits, the same gradient for every weight, and the same AdamW
    trajectory: FT trains every weight at the learning rate it is given."""
    from transformers import BertForSequenceClassification

    task = _task(toy.TOY_SPEC, 32)
    ours = Learner(P("ft"), tiny_bert, 2)
    ref = BertForSequenceClassification(tiny_bert.config)
    ref.bert.load_state_dict(tiny_bert.model.state_dict())
    w = ours.task.weights
    with torch.no_grad():
        ref.bert.pooler.dense.weight.copy_(w["head_dense_w"].t())
        ref.bert.pooler.dense.bias.copy_(w["head_dense_b"])
        ref.classifier.weight.copy_(w["head_out_w"].t())
        ref.classifier.bias.copy_(w["head_out_b"])
    ours.eval(), ref.eval()  # no dropout: the two must agree exactly
    ref_params = [p for p in ref.parameters() if p.requires_grad]
    assert ours.training_parameter_count() == sum(p.numel() for p in ref_params)
    optimisers = [torch.optim.AdamW(ours.trainable(), 1e-3), torch.optim.AdamW(ref_params, 1e-3)]
    for step in range(3):
        batch = collate(task.train, list(range(8 * step, 8 * step + 8)))
        a = ours(batch)
        b = ref(batch.input_ids, batch.attention_mask, batch.token_type_ids).logits
        assert torch.allclose(a, b, atol=1e-5), step
        for opt, logits in zip(optimisers, (a, b)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(logits, batch.labels).backward()
            opt.step()
    emb = ours.model.encoder.embeddings.word_embeddings.weight
    assert torch.allclose(emb, ref.bert.embeddings.word_embeddings.weight, atol=1e-5)
    assert not torch.equal(emb, tiny_bert.model.embeddings.word_embeddings.weight)


def test_test_labels_play_no_part_in_training_or_selection(tiny_bert):
    task = _task(toy.TOY_SPEC, 32)
    flipped = EncodedTask(task.spec, task.train, task.dev, replace(task.test))
    flipped.test.labels = 1 - task.test.labels
    settings = TrainSettings(lr=1e-2, epochs=3, batch_size=8, eval_every=2)
    a, b = (train_encoded(t, P("apl"), tiny_bert, settings) for t in (task, flipped))
    assert a.result.best_step == b.result.best_step and a.result.best_dev == b.result.best_dev
    wa, wb = a.learner.task.export(), b.learner.task.export()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.test.metrics["accuracy"] + b.test.metrics["accuracy"] == pytest.approx(1.0)
