"""The forward in its own process (CPU): the engine core that owns the backbone's compute.

Why: in one process the event loop's Python (HTTP parsing, validation, responses) and the
forward's op dispatch share one interpreter lock. The forward takes the lock between every
op, and while the event loop works through a burst of requests each forward thread waits
for it, so the forward runs far slower than the same forward alone (`docs/benchmarks.md`, the
serving path). Here the forward runs in a child process with its own interpreter: this
process keeps everything else (HTTP, tokenising, batching, the adapter tiers, routing); the
child holds the backbone and maps the adapter bank this process writes (`shared_bank.py`).

Per batch one message goes each way over a pipe: the padded token ids, mask, token types and
slots (NumPy arrays) and the batch plan; back come the logits, the gates when asked for, and
the child's CPU seconds. The child runs `workers` forward threads, one pipe each. If the child
dies, the batch in flight fails with `ForwardUnavailableError` (503) and the next batch starts a
new child.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import pickle
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from adapters.plan import BatchPlan
from service.engine.inference.cuda_graphs import Inputs
from service.engine.inference.shared_bank import SharedBank, shm_room
from service.errors import ForwardUnavailableError

log = logging.getLogger("unipelt.forward")
READY_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class ChildSpec:
    """What the child builds its forward from."""

    backbone_path: str
    fingerprint: str
    dtype: str
    bank: SharedBank
    workers: int
    intra_op: int


def refusals(device: str, backbone_path: Path | None, bank_bytes: int, shm: Path) -> list[str]:
    """Why the forward cannot run in its own process here; [] when it can."""
    checks = (
        ("the device is not a CPU", device != "cpu"),
        (
            "the backbone has no directory to load from",
            backbone_path is None or not Path(backbone_path).is_dir(),
        ),
        (
            f"{shm} lacks {bank_bytes} free bytes for the adapter bank",
            not shm_room(bank_bytes, shm),
        ),
    )
    return [why for why, failed in checks if failed]


class ForwardProcess:
    """`run(inputs, plan, want_gates)` -> (logits, gates, child CPU seconds), computed in the
    child; safe to call from `workers` threads at once."""

    def __init__(self, spec: ChildSpec, on_restart: Callable[[], None] | None = None) -> None:
        self.spec, self.on_restart = spec, on_restart
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()  # one (re)start at a time
        self._free: queue.Queue[Connection] = queue.Queue()
        self._process: Any = None
        self._generation = 0  # which child the free connections belong to
        self.restarts = 0

    def start(self) -> None:
        """Start the child and wait until it has built its forward."""
        with self._lock:
            self._spawn()

    def _spawn(self) -> None:
        ours, theirs = zip(*(self._context.Pipe() for _ in range(self.spec.workers)), strict=True)
        process = self._context.Process(
            target=child_main, args=(self.spec, list(theirs)), name="unipelt-forward", daemon=True
        )
        process.start()
        for conn in theirs:
            conn.close()
        for conn in ours:
            if not conn.poll(READY_TIMEOUT_S):
                process.kill()
                raise ForwardUnavailableError("the forward process did not start in time")
            ready = conn.recv()
            if ready != ("ready", self.spec.fingerprint):
                process.kill()
                raise ForwardUnavailableError(f"the forward process failed to start: {ready}")
        self._process, self._generation = process, self._generation + 1
        self._free = queue.Queue()
        for conn in ours:
            self._free.put(conn)
        log.info("forward process %d started (%d worker(s))", process.pid, self.spec.workers)

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def run(
        self, inputs: Inputs, plan: BatchPlan, want_gates: bool
    ) -> tuple[Tensor, Tensor | None, float]:
        free = self._free
        conn = free.get()
        try:
            conn.send_bytes(pickle.dumps((_arrays(inputs), plan, want_gates), protocol=5))
            reply = pickle.loads(conn.recv_bytes())  # noqa: S301 (our own child, a private pipe)
        except (EOFError, OSError) as exc:
            conn.close()
            self._restart(free)
            raise ForwardUnavailableError("the forward process stopped; it is restarting") from exc
        free.put(conn)
        if reply[0] == "error":
            raise RuntimeError(f"forward failed in the forward process: {reply[1]}")
        _, logits, gates, cpu_s = reply
        return torch.from_numpy(logits), None if gates is None else torch.from_numpy(gates), cpu_s

    def _restart(self, dead: queue.Queue[Connection]) -> None:
        """A new child, unless another thread has already started one since `dead`."""
        with self._lock:
            if dead is not self._free:
                return
            self._stop_child()
            self.restarts += 1
            if self.on_restart is not None:
                self.on_restart()
            log.warning("forward process stopped; starting a new one")
            self._spawn()

    def stop(self, timeout_s: float = 10.0) -> None:
        with self._lock:
            self._stop_child(timeout_s)

    def _stop_child(self, timeout_s: float = 5.0) -> None:
        while True:
            try:
                self._free.get_nowait().close()  # the child's threads see EOF and end
            except queue.Empty:
                break
        if self._process is not None:
            self._process.join(timeout_s)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(timeout_s)
            self._process = None


def _arrays(inputs: Inputs) -> tuple[np.ndarray, ...]:
    return tuple(t.numpy() for t in (inputs.ids, inputs.mask, inputs.types, inputs.slots))


# ---- the child ------------------------------------------------------------------------------
def child_main(spec: ChildSpec, conns: list[Connection]) -> None:
    """The forward process: build the model over the shared bank, then answer batches."""
    from adapters.backbone import load_backbone
    from adapters.model import UniPELTModel
    from adapters.packing import packing_for
    from service.threads import name_this_thread

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    name_this_thread("up-forward")
    torch.set_num_threads(spec.intra_op)
    try:
        backbone = load_backbone(spec.backbone_path).with_dtype(getattr(torch, spec.dtype))
        model = UniPELTModel(backbone).eval()
        bank = spec.bank.attach()
    except Exception as exc:  # reported to the parent, which refuses to start
        for conn in conns:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    gc.collect()
    gc.freeze()  # the model lives as long as the process: out of the collector's walks
    for conn in conns:
        conn.send(("ready", backbone.fingerprint))

    def serve(conn: Connection) -> None:
        name_this_thread("up-forward")
        torch.set_num_threads(spec.intra_op)
        while True:
            try:
                message = conn.recv_bytes()
            except (EOFError, OSError):
                return  # the parent closed the pipe or went away
            started = time.thread_time()
            try:
                arrays, plan, want_gates = pickle.loads(message)  # noqa: S301 (from the parent)
                ids, mask, types, slots = (torch.from_numpy(a) for a in arrays)
                packing = packing_for(plan, ids.shape[1], bank.dtype)
                with torch.inference_mode():
                    out = model(ids, mask, bank, slots, types, want_gates, plan, packing)
                gates = None if out.gates is None else out.gates.float().numpy()
                cpu_s = time.thread_time() - started
                reply: tuple = ("ok", out.logits.float().numpy(), gates, cpu_s)
            except Exception as exc:  # this batch fails; the process keeps serving
                reply = ("error", f"{type(exc).__name__}: {exc}")
            try:
                conn.send_bytes(pickle.dumps(reply, protocol=5))
            except (EOFError, OSError):
                return

    threads = [threading.Thread(target=serve, args=(c,), daemon=True) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
