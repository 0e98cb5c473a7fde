"""Running the method as steps: configuration, step runner, freshness rules, preflight checks."""
