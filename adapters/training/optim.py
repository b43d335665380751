"""AdamW with torch's arithmetic, its CPU update done in cache-sized chunks.

torch's single-tensor AdamW (the CPU default) makes seven passes over every parameter-sized
tensor and allocates two fresh temporaries for each, every step. With millions of trainable
values (full fine-tuning, the prefix MLP) that update is a large share of a CPU step, mostly
memory traffic and page faults. `ChunkedAdamW` applies the same element-wise kernels in the
same order to slices that stay in cache, through one reused buffer: every element sees the
same operations on the same values, so parameters and state are bit-identical to
`torch.optim.AdamW(foreach=False)`, and its state dict is the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

# Elements per slice (1 MiB of float32): a multiple of every SIMD width, so a slice is
# vectorised exactly as the same elements of the whole tensor are.
CHUNK = 1 << 18


# (trainable parameters, learning rate, weight decay) -> the optimiser
OptimiserFactory = Callable[[list[nn.Parameter], float, float], torch.optim.Optimizer]


def make_optimiser(
    params: list[nn.Parameter], lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """AdamW for these parameters: the chunked update on a CPU, torch's own elsewhere."""
    if all(p.device.type == "cpu" for p in params):
        return ChunkedAdamW(params, lr=lr, weight_decay=weight_decay)
    return torch_adamw(params, lr, weight_decay)


def torch_adamw(
    params: list[nn.Parameter], lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """torch's AdamW with its default implementation for the device (the reference)."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


Slice = tuple[Tensor, Tensor, Tensor, Tensor, Tensor]  # param, grad, exp_avg, exp_avg_sq, scratch


@dataclass(frozen=True)
class _Scalars:
    """One tensor's step constants, computed as torch computes them."""

    beta1: float
    beta2: float
    step_size: float
    bias2_sqrt: float
    eps: float
    decayed: float | None  # the decoupled weight-decay factor; None without decay


class ChunkedAdamW(torch.optim.AdamW):
    """`torch.optim.AdamW` (no amsgrad, not maximising) with a sliced CPU update.

    One thread: cache-sized slices. More threads: whole tensors (torch splits them among
    threads exactly as for its own update), still without temporaries."""

    def __init__(self, params: Iterable[nn.Parameter], lr: float, weight_decay: float) -> None:
        super().__init__(params, lr=lr, weight_decay=weight_decay, foreach=False)
        self._buffer = torch.empty(0)

    @torch.no_grad()
    def step(self, closure=None) -> None:  # type: ignore[override]
        if closure is not None:
            raise ValueError("ChunkedAdamW takes no closure")
        chunk = CHUNK if torch.get_num_threads() == 1 else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse or p.is_complex() or group["amsgrad"] or group["maximize"]:
                    raise ValueError("ChunkedAdamW handles dense real gradients only")
                scalars = self._advance(p, group)
                state = self.state[p]
                for part in self._slices(p, p.grad, state["exp_avg"], state["exp_avg_sq"], chunk):
                    _update(part, scalars)

    def _advance(self, p: Tensor, group: dict) -> _Scalars:
        """Create the state on the first step, count the step, and derive its constants."""
        state = self.state[p]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        step = state["step"].item()
        (beta1, beta2), lr, decay = group["betas"], group["lr"], group["weight_decay"]
        return _Scalars(
            beta1,
            beta2,
            step_size=lr / (1 - beta1**step),
            bias2_sqrt=(1 - beta2**step) ** 0.5,
            eps=group["eps"],
            decayed=1 - lr * decay if decay != 0 else None,
        )

    def _slices(
        self, p: Tensor, grad: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, chunk: int | None
    ) -> Iterator[Slice]:
        """Matching slices of the four tensors plus a scratch slice of the shared buffer."""
        tensors = (p, grad, exp_avg, exp_avg_sq)
        n = p.numel()
        contiguous = all(t.is_contiguous() for t in tensors)
        size = min(n, chunk) if chunk is not None and contiguous else n
        if self._buffer.numel() < size or self._buffer.dtype != p.dtype:
            self._buffer = torch.empty(size, dtype=p.dtype, device=p.device)
        if size == n:
            yield (p, grad, exp_avg, exp_avg_sq, self._buffer[:n].view(p.shape))
            return
        a, b, c, d = (t.view(-1) for t in tensors)
        for start in range(0, n, size):
            end = min(start + size, n)
            cut = slice(start, end)
            yield (a[cut], b[cut], c[cut], d[cut], self._buffer[: end - start])


def _update(part: Slice, k: _Scalars) -> None:
    """torch's `_single_tensor_adam` on one slice, its temporaries written into the scratch."""
    p, grad, exp_avg, exp_avg_sq, denom = part
    if k.decayed is not None:
        p.mul_(k.decayed)
    exp_avg.lerp_(grad, 1 - k.beta1)
    exp_avg_sq.mul_(k.beta2).addcmul_(grad, grad, value=1 - k.beta2)
    torch.sqrt(exp_avg_sq, out=denom)
    denom.div_(k.bias2_sqrt).add_(k.eps)
    p.addcdiv_(exp_avg, denom, value=-k.step_size)
