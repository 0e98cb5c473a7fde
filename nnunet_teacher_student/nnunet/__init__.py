"""nnU-Net glue: its folders and environment, plans, raw datasets, folds (splits_final.json)."""
