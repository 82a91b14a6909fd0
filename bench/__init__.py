"""Benchmarks of conch-container against the references it competes with.

Run with ``./bench/run``; see ``docs/performance.md``. Nothing here is part of
the test suite, and nothing here asserts on timing: figures are printed side by
side with references measured in the same run.
"""
