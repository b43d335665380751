"""`python -m bench.run [--quick] [--out docs/benchmarks.md]`: every row in one process run."""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import shlex
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import torch

from adapters.backbone import load_backbone
from adapters.model import UniPELTModel
from adapters.tokenization import load_tokenizer
from bench.forward import inprocess
from bench.forward.peft_runners import peft_available
from bench.http.cluster import Cluster, drive, upload_tasks, warm
from bench.http.cold_load import measure_cold_load
from bench.http.hot_swap import measure_hot_swap
from bench.report import RowResult, paired_ratio, table, write_outputs
from bench.sizes import FULL, QUICK, RunSize, parse_workload
from bench.tasks import TaskSet
from bench.timing import run_groups
from bench.workload import GLUE_DIR, Encoder, load_texts, make_workload

THREADS = 2  # torch threads in this process and in each service replica
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        model = info.get("Model name", "?").strip()
        cpus = info.get("CPU(s)", "?").strip()
        hyper = info.get("Hypervisor vendor", "").strip()
        return f"{cpus} CPU cores, {model}" + (f" ({hyper} VM)" if hyper else "")
    except (OSError, subprocess.CalledProcessError):
        return f"{platform.processor() or platform.machine()}"


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    size = QUICK if args.quick else FULL
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    backbone = load_backbone()
    encoder = Encoder(load_tokenizer(backbone.path))
    texts, source = load_texts(args.glue_dir)
    n_requests = size.batch * (size.windows + 1)
    workloads = {
        key: make_workload(texts, *parse_workload(key), max(n_requests, size.http_requests))
        for key in size.workloads
    }
    apl, lora = TaskSet(backbone, "apl"), TaskSet(backbone, "l")
    log(f"making {size.max_tasks} APL and LoRA-only tasks")
    apl.weights(size.max_tasks)
    model = UniPELTModel(backbone).eval()
    missing_peft = None if args.no_peft else peft_available()
    notes = [
        "Latency of an in-process row: each request's completion time from the start of its "
        f"{size.batch}-request arrival window (what a full batcher holds), so grouped and "
        "per-request rows include waiting for the batches run before theirs. Tokenisation is "
        "excluded from in-process rows (texts tokenised once up front), padding included.",
    ]
    if args.no_peft or missing_peft:
        notes.append(f"PEFT rows skipped: {missing_peft or '--no-peft'}.")

    log("in-process rows")
    specs, checks = inprocess.build_specs(
        size, workloads, encoder, apl, lora, model, with_peft=not (args.no_peft or missing_peft)
    )
    notes += checks
    rows = inprocess.measure(specs, workloads, size, log)
    inprocess.add_ratios(rows)
    results: dict = {"rows": [], "notes": notes}
    meta = {
        "command": args.command,
        "mode": size.mode,
        "machine": machine(),
        "torch": torch.__version__,
        "threads": args.threads,
        "transformers": _version("transformers"),
        "peft": None if missing_peft or args.no_peft else _version("peft"),
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "texts": source,
        "batch": size.batch,
        "windows": size.windows,
        "http_repeats": size.http_repeats,
    }

    def save() -> None:
        """Write what is measured so far (a later phase failing keeps the earlier ones)."""
        results["rows"] = [r.summary() for r in rows]
        results["meta"] = meta | {"elapsed_s": time.perf_counter() - started}
        write_outputs(results, args.out, args.json)

    save()
    phases = []
    if not args.no_cold:
        phases.append(("cold load", partial(cold_phase, results, apl, size)))
    if not args.no_http:
        http = partial(http_phase, results, rows, size, workloads, encoder, apl, model)
        phases.append(("HTTP and hot swap", partial(http, args.threads)))
    if args.profile:
        profile = partial(profile_phase, results, size, workloads, encoder, apl, lora, model)
        phases.append(("profile", profile))
    for name, phase in phases:
        log(name)
        try:
            phase()
        except Exception as exc:  # report it in the results, keep the other phases
            log(f"{name} failed: {exc!r}")
            notes.append(f"{name} failed: {type(exc).__name__}: {exc}")
        save()
    print(table(results["rows"]))
    for note in notes:
        print(f"- {note}")
    for section in ("cold_load", "hot_swap", "profile"):
        if section in results:
            print("\n" + results[section]["markdown"])
    log(f"done in {results['meta']['elapsed_s']:.0f} s")
    return results


def cold_phase(results: dict, apl: TaskSet, size: RunSize) -> None:
    results["cold_load"] = measure_cold_load(apl, size.cold_tasks, size.cold_passes)


def profile_phase(results: dict, size: RunSize, workloads, encoder, apl, lora, model) -> None:
    from bench.forward.profile import profile_section

    results["profile"] = profile_section(size, workloads, encoder, apl, lora, model)


def http_phase(results, rows, size: RunSize, workloads, encoder, apl: TaskSet, model, threads):
    """HTTP bursts alternating with the engine on the same requests, then the hot swap."""
    from bench.forward.engine_runners import bank_forward, chunks

    n, _ = parse_workload(size.http)
    bank = apl.bank(n)
    requests = list(workloads[size.http].requests[: size.http_requests])
    engine = RowResult("engine_ref", "engine reference", size.http, f"{size.batch} mixed")
    http = RowResult(
        f"http_{size.http}", "HTTP end to end, APL, saturation", size.http, f"<={size.batch} mixed"
    )
    forward = bank_forward(model, bank, encoder)
    with Cluster(size.batch, slots=max(128, n), threads=threads) as cluster:
        a, b = cluster.replicas
        upload_tasks(a.url, apl, n)
        warm(a.url, n)
        drive(a.url, requests[: size.http_concurrency], size.http_concurrency, size.http_max_s)
        for rep in range(size.http_repeats):
            done = run_groups(requests, chunks(len(requests), size.batch), forward)
            engine.add(len(requests), max(done), done)
            count, elapsed, lats, statuses = drive(
                a.url, requests, size.http_concurrency, size.http_max_s
            )
            http.add(count, elapsed, lats)
            log(
                f"  burst {rep + 1}: engine {engine.per_window[-1]:.1f} seq/s, "
                f"HTTP {http.per_window[-1]:.1f} seq/s, statuses {dict(statuses)}"
            )
        http.ratios["engine"] = paired_ratio(http, engine)
        http.note = f"engine reference {engine.throughput:.1f} seq/s"
        rows.append(http)
        results["notes"].append(
            f"HTTP: two uvicorn replicas ({threads} torch threads each, batch {size.batch}, "
            f"window 5 ms, mixed policy) on one embedded Redis; {size.http_concurrency} "
            "concurrent httpx requests of one text each against replica A, client on the same "
            "2 cores. x engine = HTTP seq/s / the in-process mixed forward on the same "
            f"requests ({engine.throughput:.1f} seq/s), measured alternately with it; HTTP "
            "includes tokenisation, JSON and queueing."
        )
        results["hot_swap"] = measure_hot_swap(a, b, apl, size.swaps)


def _version(package: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:
        return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small run (under a minute)")
    p.add_argument("--out", type=Path, help="markdown file to write the results block into")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="JSON results file")
    p.add_argument("--glue-dir", type=Path, default=GLUE_DIR)
    p.add_argument("--threads", type=int, default=THREADS, help="torch threads (default 2)")
    p.add_argument("--no-peft", action="store_true", help="skip the PEFT rows")
    p.add_argument("--no-http", action="store_true", help="skip HTTP and hot swap")
    p.add_argument("--no-cold", action="store_true", help="skip the cold-load measurement")
    p.add_argument("--profile", action="store_true", help="add the forward profile section")
    args = p.parse_args(argv)
    given = argv if argv is not None else sys.argv[1:]
    args.command = " ".join(["python -m bench.run", shlex.join(given)]).strip()
    return args


if __name__ == "__main__":
    main()
