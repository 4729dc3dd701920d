"""Benchmarks: the service measured against the limits of its own stack.

``python -m benchmarks`` (``make bench``) runs every benchmark at full size;
``--quick`` (``make bench-quick``) runs them small enough to finish within a
minute. Results go to ``var/bench/results.json`` and a table on the console.
See docs/performance.md.
"""
