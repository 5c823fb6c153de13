"""Benchmarks: real broker, every figure measured beside its baseline in the same run."""
