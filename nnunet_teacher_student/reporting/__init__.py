"""Reports and figures: the run report, its tables and figures (the benchmark report lives in ``experiments``)."""
