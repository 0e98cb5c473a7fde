"""Reports and figures: the run report and the benchmark report."""
