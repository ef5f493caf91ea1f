"""Run every benchmark and print figures: `python benchmarks/run.py [--quick]`.

The same as `lash-tasks bench`; kept so the benchmark can run from a checkout.
"""

from __future__ import annotations

import sys

from lash_tasks.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]]))
