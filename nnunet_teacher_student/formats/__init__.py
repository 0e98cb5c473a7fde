"""The on-disk formats: axial boxes, the simulated box annotator, the weak set (images + boxes)."""
