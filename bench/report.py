"""Results: per-row statistics, ratios paired window by window, the markdown table."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.timing import median, percentile

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


@dataclass
class RowResult:
    key: str
    label: str
    workload: str  # "10u", "100z", ...
    batching: str
    per_window: list[float] = field(default_factory=list)  # sequences/s of each window
    latencies: list[float] = field(default_factory=list)  # seconds, every request
    ratios: dict[str, float] = field(default_factory=dict)  # name -> median ratio
    note: str = ""

    def add(self, seqs: int, seconds: float, latencies: list[float]) -> None:
        """One measured window (or HTTP burst): `seqs` sequences served in `seconds`."""
        self.per_window.append(seqs / seconds if seconds > 0 else math.nan)
        self.latencies.extend(latencies)

    @property
    def throughput(self) -> float:
        """Median over windows of sequences/s (robust to bursts of load from other jobs)."""
        return median(self.per_window)

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000

    def summary(self) -> dict:
        out = asdict(self)
        out.pop("latencies")
        out.update(throughput=self.throughput, p50_ms=self.p50_ms, p99_ms=self.p99_ms)
        return out


def paired_ratio(row: RowResult, base: RowResult) -> float:
    """Median over windows of row/base throughput; window i of both rows holds the same
    requests and was measured back to back with it."""
    pairs = [a / b for a, b in zip(row.per_window, base.per_window) if b > 0 and a == a]
    return median(pairs)


RATIO_COLUMNS = (
    ("ceiling", "x ceiling"),
    ("peft_request", "x PEFT set_adapter/request"),
    ("peft_mixed", "x PEFT adapter_names"),
    ("engine", "x engine"),
)


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}"


def table(rows: list[dict]) -> str:
    """The main markdown table, from `RowResult.summary()` dicts."""
    head = ["row", "tasks", "batches", "seq/s", "p50 ms", "p99 ms"] + [c for _, c in RATIO_COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["label"], r["workload"], r["batching"], fmt(r["throughput"])]
        cells += [fmt(r["p50_ms"], 0), fmt(r["p99_ms"], 0)]
        cells += [fmt(r["ratios"].get(k), 2) for k, _ in RATIO_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(results: dict) -> str:
    """The generated block of docs/benchmarks.md: setup, main table, cold load, hot swap."""
    meta = results["meta"]
    out = [
        f"Command: `{meta['command']}` ({meta['mode']} mode, {meta['elapsed_s']:.0f} s)",
        "",
        f"Machine: {meta['machine']}; torch {meta['torch']} ({meta['threads']} threads), "
        f"transformers {meta['transformers']}, peft {meta['peft'] or 'not installed'}; "
        f"started {meta['started']}.",
        "",
        f"Workload: {meta['texts']}; batch size {meta['batch']}; {meta['windows']} arrival "
        f"windows of {meta['batch']} requests, each run by every row back to back (order "
        "rotated per window). seq/s: median over windows; each ratio: median over windows of "
        "the two rows' throughputs on the same window. Tasks: `Nu` = N tasks with uniform "
        "popularity, `Nz` = Zipf (s = 1).",
        "",
        table(results["rows"]),
        "",
    ]
    out += [f"- {n}" for n in results.get("notes", [])]
    for section in ("cold_load", "hot_swap", "profile"):
        if results.get(section):
            out += ["", results[section]["markdown"]]
    return "\n".join(out).rstrip() + "\n"


def write_outputs(results: dict, md_path: Path | None, json_path: Path | None) -> None:
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    if md_path is not None:
        replace_block(md_path, BEGIN, END, markdown(results))


def replace_block(md_path: Path, begin: str, end: str, body: str) -> None:
    """Put `body` between the `begin` and `end` markers of the file (appended when absent)."""
    block = f"{begin}\n{body.rstrip()}\n{end}\n"
    text = md_path.read_text() if md_path.exists() else ""
    if begin in text and end in text:
        before, rest = text.split(begin, 1)
        text = before + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        text = (text.rstrip() + "\n\n" if text else "") + block
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(text)
