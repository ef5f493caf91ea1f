"""The benchmark behind `lash-tasks bench`: figures and ratios measured side by side."""

from lash_tasks.bench.runner import CASES, run_benchmarks

__all__ = ["CASES", "run_benchmarks"]
