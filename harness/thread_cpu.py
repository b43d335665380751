"""CPU seconds a process and its children have used, summed by thread name (Linux /proc)."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """{name: user + system seconds} over the process's threads: the main thread (the event
    loop) is "main", threads named "up-<x>" are "<x>", the rest "other"; every child process
    (the forward process) adds its total as "child"."""
    out: dict[str, float] = {}
    for tid, name, seconds in _threads(pid):
        key = "main" if tid == pid else name[3:] if name.startswith("up-") else "other"
        out[key] = out.get(key, 0.0) + seconds
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for child in children:
        out["child"] = out.get("child", 0.0) + sum(s for _, _, s in _threads(child.pid))
    return out


def _threads(pid: int) -> list[tuple[int, str, float]]:
    rows: list[tuple[int, str, float]] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return rows
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        rows.append((int(task.name), name, (int(fields[11]) + int(fields[12])) / TICKS))
    return rows
