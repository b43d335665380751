"""Inference: the batcher, the prepare/forward pipeline, the runner, tokenising, CUDA graphs,
row checks and fan-out."""
