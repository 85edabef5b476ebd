"""make bench: cfexp measured beside the tools people use instead, each figure written to BENCHMARKS.md."""
