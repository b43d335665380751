"""Training studies and parity: learning-rate sweeps, reference loops, one training step."""
