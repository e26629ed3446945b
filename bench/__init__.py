"""Benchmarks: ``python -m bench.run`` (results in ``bench/RESULTS.md``)."""
