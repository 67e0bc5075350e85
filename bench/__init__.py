"""Benchmarks: each prints our figure next to its same-run baseline (BENCHMARKS.md)."""
