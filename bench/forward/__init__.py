"""Serving-forward benchmarks: the mixed forward, the engine's runners, PEFT, the prepare stage."""
