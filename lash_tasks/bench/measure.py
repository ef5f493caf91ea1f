"""Small measuring tools: percentiles, alternating timers, and SQL counting."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; samples need not be sorted."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


@dataclass
class Timings:
    """Wall times in seconds of one measured operation."""

    samples: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)

    @property
    def p50_ms(self) -> float:
        return percentile(self.samples, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.samples, 99) * 1000

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.samples) * 1000 if self.samples else float("nan")


def alternate(
    first: Callable[[], float],
    second: Callable[[], float],
    rounds: int,
    warmup: int = 5,
    progress: Callable[[int], None] | None = None,
) -> tuple[Timings, Timings]:
    """Run `first` and `second` in alternation, so that drift in the machine's load hits both
    alike and a ratio of the two is a fair comparison. Each returns the seconds it measured
    itself, so that set-up work stays outside the figure."""
    for _ in range(warmup):
        first()
        second()
    a, b = Timings(), Timings()
    for index in range(rounds):
        a.add(first())
        b.add(second())
        if progress is not None:
            progress(index + 1)
    return a, b


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


@dataclass
class SqlCount:
    transactions: int = 0
    statements: int = 0
    statement_texts: list[str] = field(default_factory=list)


@contextmanager
def counting_sql(engine: Engine, keep_texts: bool = False) -> Iterator[SqlCount]:
    """Count transactions (BEGIN, explicit or automatic) and statements sent on `engine`."""
    count = SqlCount()

    def on_begin(_conn: Any) -> None:
        count.transactions += 1

    def on_statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        count.statements += 1
        if keep_texts:
            count.statement_texts.append(" ".join(statement.split())[:160])

    event.listen(engine, "begin", on_begin)
    event.listen(engine, "before_cursor_execute", on_statement)
    try:
        yield count
    finally:
        event.remove(engine, "begin", on_begin)
        event.remove(engine, "before_cursor_execute", on_statement)
