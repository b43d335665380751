"""The sliced AdamW gives torch's AdamW bit for bit; the training loop's losses are a plain
torch loop's, step by step."""

from __future__ import annotations

import pytest
import torch

from adapters.config import MethodConfig
from adapters.training.batching import collate, train_order
from adapters.training.defaults import TrainSettings
from adapters.training.learner import Learner
from adapters.training.optim import CHUNK, ChunkedAdamW, make_optimiser
from adapters.training.trainer import Trainer, linear_schedule, task_loss
from tests.unit.test_training import toy  # noqa: F401  (fixture)
from tests.unit.test_training_toy import TOY_SPEC, one_thread  # noqa: F401  (fixture)

SHAPES = [(2 * CHUNK + 77,), (300, 7), (1, 1), (5, 3, 2), (CHUNK,)]


def _params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(s, generator=g)) for s in SHAPES]
    # a non-contiguous parameter: the update goes through whole-tensor ops
    params.append(torch.nn.Parameter(torch.randn(6, 4, generator=g).t()))
    return params


def _run(optimiser_class, threads: int, weight_decay: float) -> list[torch.Tensor]:
    params = _params(0)
    kwargs = {"foreach": False} if optimiser_class is torch.optim.AdamW else {}
    opt = optimiser_class(params, lr=1e-3, weight_decay=weight_decay, **kwargs)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, linear_schedule(2, 6))
    g = torch.Generator().manual_seed(1)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for step in range(6):
            for i, p in enumerate(params):
                # step 3 leaves one parameter without a gradient; tiny and large gradients
                p.grad = None if (step, i) == (3, 1) else torch.randn(p.shape, generator=g)
                if p.grad is not None and step % 2:
                    p.grad.mul_(1e-6)
            opt.step()
            schedule.step()
    finally:
        torch.set_num_threads(before)
    return [p.detach().clone() for p in params] + [t for p in params for t in opt.state[p].values()]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_chunked_adamw_is_torch_adamw_bit_for_bit(threads, weight_decay):
    ours = _run(ChunkedAdamW, threads, weight_decay)
    torch_s = _run(torch.optim.AdamW, threads, weight_decay)
    assert len(ours) == len(torch_s)
    for a, b in zip(ours, torch_s):
        assert torch.equal(a, b)


def test_chunked_adamw_state_dict_is_torch_layout():
    params = _params(0)
    ours, theirs = ChunkedAdamW(params, 1e-3, 0.0), torch.optim.AdamW(params, 1e-3)
    for p in params:
        p.grad = torch.ones_like(p)
    ours.step()
    theirs.step()
    a, b = ours.state_dict(), theirs.state_dict()
    assert a["state"].keys() == b["state"].keys()
    for key in a["state"]:
        assert a["state"][key].keys() == b["state"][key].keys()
        for name, value in a["state"][key].items():
            assert value.dtype == b["state"][key][name].dtype


def test_make_optimiser_rejects_sparse_gradients():
    p = torch.nn.Parameter(torch.zeros(3, 2))
    opt = make_optimiser([p], 1e-3, 0.0)
    p.grad = torch.zeros(3, 2).to_sparse()
    with pytest.raises(ValueError, match="dense"):
        opt.step()


@pytest.mark.parametrize("method", ["apl", "l", "ft"])
def test_trainer_losses_are_a_plain_torch_loop_s(tiny_bert, toy, method):  # noqa: F811
    """Trainer.step against AdamW(foreach=False) + clipping + the schedule written out."""
    data = toy(n_train=40).train
    settings = TrainSettings(seed=3)
    steps = 8

    def batches():
        order = torch.Generator().manual_seed(settings.seed)
        while True:
            yield from train_order(data, settings.batch_size, order, True)

    def run(plain: bool) -> tuple[list[float], list[torch.Tensor]]:
        torch.manual_seed(settings.seed)
        learner = Learner(MethodConfig.preset(method), tiny_bert, 2)
        trainer = Trainer(learner, TOY_SPEC, settings, steps)
        params = learner.trainable()
        lr, decay = settings.learning_rate(learner.cfg), settings.weight_decay
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=decay, foreach=False)
        warmup = int(settings.warmup_ratio * steps)
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, linear_schedule(warmup, steps))
        learner.train()
        losses = []
        for step, index in zip(range(steps), batches()):
            if not plain:
                losses.append(trainer.step(data, index, step))
                continue
            batch = collate(data, index)
            loss = task_loss(TOY_SPEC, learner(batch), batch.labels)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
            opt.step()
            schedule.step()
            losses.append(loss.item())
        return losses, [p.detach().clone() for p in params]

    ours, plain = run(False), run(True)
    assert ours[0] == plain[0]
    assert len(set(ours[0])) == steps  # it trains: every step's loss differs
    assert all(torch.equal(a, b) for a, b in zip(ours[1], plain[1]))
