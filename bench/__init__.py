"""Benchmarks beside the reference approach (issue 8): see bench/landscape.py and docs/performance.md."""
