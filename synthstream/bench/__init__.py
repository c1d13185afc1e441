"""Benchmarks: each prints a table and JSON, and times a baseline in the same run."""
