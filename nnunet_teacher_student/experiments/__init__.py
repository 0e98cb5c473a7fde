"""Experiments built from the workflow: the demo and the benchmark, with their presets."""
