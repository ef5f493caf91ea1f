"""Run every benchmark and print figures: `python benchmarks/run.py [--quick]`."""

from __future__ import annotations

import sys

from lash_tasks.bench import run_benchmarks

if __name__ == "__main__":
    print(run_benchmarks(quick="--quick" in sys.argv[1:]))
