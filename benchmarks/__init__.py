"""Benchmarks of latency-tui's own engine: what the harness adds to what it measures.

Run ``python -m benchmarks.run`` (or ``python benchmarks/run.py``) from the repository root;
``--quick`` or ``--smoke`` for shorter runs, ``--json PATH`` to save the figures.
"""
