"""Serving benchmark: ceiling, mixed-task and grouped forwards, PEFT baselines, HTTP, cold load
and hot swap. Run it with `python -m bench.run [--quick] [--out docs/benchmarks.md]`."""
