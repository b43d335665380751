"""HTTP and scale benchmarks: the service over HTTP, loads, hot swaps, fan-out, faults, scale."""
