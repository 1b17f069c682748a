"""Benchmarks: run with `make bench`; they print their figures and assert nothing on time."""
