"""The adapter bank in shared memory, so a forward process reads the slots this process writes.

Each of the bank's tensors is moved into a file in a shared-memory directory (`/dev/shm`),
mapped by this process and by the forward process. A fresh file reads as zeros and commits
pages only as they are written, so a lazily allocated bank stays lazy. Slot writes, the
device table and the key tables are all plain in-place writes into these mappings: what the
pool writes is what the next forward reads, with no copy and no message.
"""

from __future__ import annotations

import itertools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from adapters.bank import SlotMeta, TaskBank
from adapters.dims import BackboneDims, BankSizes

SHM = Path("/dev/shm")
PREFIX = "unipelt-bank-"  # then the owning process's pid and a counter
_made = itertools.count()


def shared_dir(root: Path) -> Path:
    """A new directory name for one bank of this process."""
    return root / f"{PREFIX}{os.getpid()}-{next(_made)}"


def sweep_stale(root: Path) -> int:
    """Remove bank directories whose owning process is gone (one killed without its
    shutdown); returns how many."""
    removed = 0
    for path in root.glob(f"{PREFIX}*"):
        try:
            pid = int(path.name.removeprefix(PREFIX).split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
        except (ValueError, PermissionError):
            continue
    return removed


@dataclass(frozen=True)
class SharedTensor:
    path: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    def map(self) -> Tensor:
        numel = 1
        for n in self.shape:
            numel *= n
        flat = torch.from_file(self.path, shared=True, size=numel, dtype=self.dtype)
        return flat.view(self.shape)


@dataclass(frozen=True)
class SharedBank:
    """What a forward process needs to map the same bank."""

    directory: str
    tensors: dict[str, SharedTensor]
    table: SharedTensor
    key_tables: dict[str, SharedTensor]
    sizes: BankSizes
    dims: BackboneDims

    def attach(self) -> TaskBank:
        """The bank over the shared files (its host mirror is not shared: plans are built
        where slots are written)."""
        table = self.table.map()
        return TaskBank(
            {k: v.map() for k, v in self.tensors.items()},
            SlotMeta.empty(table.shape[0]),
            table,
            {k: v.map() for k, v in self.key_tables.items()},
            self.sizes,
            self.dims,
        )

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def shm_room(nbytes: int, directory: Path = SHM) -> bool:
    """Whether `directory` is there and has `nbytes` free (a shared file touched beyond its
    filesystem's room would kill the process with SIGBUS, so the whole bank must fit)."""
    try:
        stat = os.statvfs(directory)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize >= nbytes


def bank_bytes(bank: TaskBank) -> int:
    parts = [*bank.tensors.values(), bank.table, *bank.key_tables.values()]
    return sum(t.numel() * t.element_size() for t in parts)


def share_bank(bank: TaskBank, directory: Path) -> SharedBank:
    """Move a fresh bank's tensors into files under `directory` (created; the caller
    removes it). Weights are not copied (a fresh bank's unwritten slots are never read and a
    new file reads as zeros); the table and key tables are."""
    directory.mkdir(parents=True)

    def move(name: str, t: Tensor, copy: bool) -> tuple[Tensor, SharedTensor]:
        spec = SharedTensor(str(directory / name), tuple(t.shape), t.dtype)
        mapped = spec.map()
        if copy:
            mapped.copy_(t)
        return mapped, spec

    tensors, specs = {}, {}
    for name, t in bank.tensors.items():
        tensors[name], specs[name] = move(f"w.{name}", t, copy=False)
    table, table_spec = move("table", bank.table, copy=True)
    keys, key_specs = {}, {}
    for name, t in bank.key_tables.items():
        keys[name], key_specs[name] = move(f"keys.{name}", t, copy=True)
    bank.tensors, bank.table, bank.key_tables = tensors, table, keys
    bank._trimmed.clear()
    return SharedBank(str(directory), specs, table_spec, key_specs, bank.sizes, bank.dims)
