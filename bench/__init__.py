"""The benchmark: `python -m bench` (or `make bench`) prints the figures `docs/PERFORMANCE.md` publishes.

It runs the real bot (`python bot.py`, as an operator does) against the test suite's loopback fakes,
which here answer after an emulated network round trip and enforce each platform's published rate
limits with the platform's own 429s. A benchmark, not a test: it measures and prints, it asserts nothing.
"""
