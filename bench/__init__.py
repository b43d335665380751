"""Benchmarks, grouped by family: `bench.forward` (the serving forward), `bench.http` (HTTP
and scale), `bench.training` (training studies and parity); `bench.run` runs the serving
benchmark's every row in one process: `python -m bench.run [--quick] [--out docs/benchmarks.md]`."""
