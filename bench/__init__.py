"""Benchmarks: `python -m bench` runs each `*_bench.py` module (see `bench/__main__.py`)."""
