"""Pseudo-labels: running the teacher over the weak set, quality control, the folder format."""
