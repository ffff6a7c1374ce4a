"""Data: random-access sources, per-example transforms and Grain pipelines."""
