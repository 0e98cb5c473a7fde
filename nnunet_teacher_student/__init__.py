"""Teacher-student lung tumour segmentation from mixed supervision, as an nnU-Net v2 plugin."""

__version__ = "0.1.0"
