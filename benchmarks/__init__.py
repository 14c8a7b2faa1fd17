"""Benchmarks of the scheduler, side by side with APScheduler 3.11 (`make bench`).

Not part of the test suite: `python -m benchmarks` runs every scenario, each in a fresh process,
and prints a markdown table (see `benchmarks/README.md`).
"""
