"""How a benchmark run is shown: a progress bar, a table, JSON, and one SVG chart."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO


class Progress:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = max(1, total)
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()

    def step(self, label: str, units: int = 1) -> None:
        self.done = min(self.total, self.done + units)
        filled = round(30 * self.done / self.total)
        bar = "#" * filled + "-" * (30 - filled)
        line = f"[{bar}] {self.done}/{self.total} {label}"
        if self.tty:
            self.stream.write("\r" + line.ljust(100))
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


@dataclass(frozen=True)
class Row:
    case: str
    figure: str
    value: float | int | None
    unit: str = ""
    target: str = ""
    met: bool | None = None

    def cells(self) -> list[str]:
        verdict = {True: "met", False: "MISSED", None: ""}[self.met]
        return [self.case, self.figure, _fmt(self.value) + self.unit, self.target, verdict]


def _fmt(value: float | int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"


def render_table(rows: list[Row]) -> str:
    header = ["case", "figure", "value", "target", ""]
    table = [header, *(row.cells() for row in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")


def ratio_chart_svg(bars: list[tuple[str, float, float]]) -> str:
    """Horizontal bars of measured ratios, each with its target as a red tick.

    `bars` holds (label, measured, target); a bar left of its tick met the target.
    """
    width, left, row_h, top = 640, 230, 28, 30
    scale_max = max([2.0, *(max(m, tgt) * 1.1 for _, m, tgt in bars if not math.isnan(m))])
    height = top + row_h * len(bars) + 30
    plot = width - left - 20

    def x(value: float) -> float:
        return left + plot * min(value, scale_max) / scale_max

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="{left}" y="18" font-weight="bold">measured ratio (bar) vs target (red)</text>',
    ]
    for index, (label, measured, target) in enumerate(bars):
        y = top + index * row_h
        value = 0.0 if math.isnan(measured) else measured
        colour = "#4a8" if value <= target else "#d84"
        parts += [
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{label}</text>',
            f'<rect x="{left}" y="{y + 4}" width="{x(value) - left:.1f}" height="16" '
            f'fill="{colour}"/>',
            f'<line x1="{x(target):.1f}" x2="{x(target):.1f}" y1="{y}" y2="{y + 24}" '
            'stroke="red" stroke-width="2"/>',
            f'<text x="{x(value) + 4:.1f}" y="{y + 16}">{_fmt(measured)}</text>',
        ]
    axis_y = top + row_h * len(bars) + 5
    for tick in range(int(scale_max) + 1):
        parts.append(
            f'<text x="{x(tick):.1f}" y="{axis_y + 12}" text-anchor="middle">{tick}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
