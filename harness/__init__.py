"""Drivers shared by the tests and the benchmarks: task factories, service processes, Redis
and service slots, load generators and fault scenarios. Imports neither `tests` nor `bench`."""
