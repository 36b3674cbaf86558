"""Benchmarks beside the reference approach: see bench/landscape.py and docs/performance.md."""
