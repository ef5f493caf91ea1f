"""`lash-tasks bench`: every figure of the benchmark in one run, side by side.

Cases (each can be chosen with --only):
  overhead     lash.session.step round trip (one-step turn) vs celery.accumulate, alternated
  turn         enqueue -> input completed vs the same no-op
  database     transactions and statements per one-step turn and per tool step
  latency      LLM of 500 ms, one worker process, threads pool at C = 16 and 64: efficiency
  scaling      1, 2, 4 worker processes with an instant LLM: steps/s and speed-up
  history      step at a 2,000-node path vs a 20-node path; rebuild 20,000 vs 50 nodes
  maintenance  tombstone + vacuum of many orphans while turns run: turn p99 vs idle
  events       a streamed answer: LLM server writes a token -> a live reader holds it
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lash_tasks.bench import database, events, history, maintenance_load, overhead, throughput
from lash_tasks.bench.fleet import BenchFleet, bench_fleet
from lash_tasks.bench.report import Progress, Row, ratio_chart_svg, render_table, write_json
from lash_tasks.errors import ValidationError

CASES = (
    "overhead",
    "turn",
    "database",
    "latency",
    "scaling",
    "history",
    "maintenance",
    "events",
)


def run_benchmarks(
    *,
    quick: bool = False,
    embedded: bool = False,
    only: Sequence[str] = (),
    json_out: Path | None = None,
    chart_out: Path | None = None,
) -> str:
    chosen = list(only) or list(CASES)
    unknown = sorted(set(chosen) - set(CASES))
    if unknown:
        raise ValidationError(f"unknown benchmark case(s) {unknown}; known: {', '.join(CASES)}")
    plan = _plan(quick)
    progress = Progress(sum(plan[case][0] for case in chosen))
    results: dict[str, Any] = {"machine": _machine(), "quick": quick, "embedded": embedded}
    started = time.monotonic()
    with bench_fleet(embedded) as fleet:
        for case in chosen:
            units, run = plan[case]
            progress.step(f"{case} ...", 0)
            results[case] = run(fleet, progress)
            if units:
                progress.step(f"{case} done", 0)
    results["wall_s"] = time.monotonic() - started
    rows = table_rows(results)
    if json_out is not None:
        write_json(json_out, results)
    if chart_out is not None:
        chart_out.parent.mkdir(parents=True, exist_ok=True)
        chart_out.write_text(ratio_chart_svg(chart_bars(results)))
    backend = "SQLite + folder broker" if embedded else "PostgreSQL + Redis"
    head = f"lash-tasks bench ({backend}, {'quick' if quick else 'full'}) on {_machine()['cpu']}"
    return head + "\n" + render_table(rows)


Case = Callable[[BenchFleet, Progress], dict[str, Any]]


def _plan(quick: bool) -> dict[str, tuple[int, Case]]:
    rounds = 40 if quick else 300
    window = 4.0 if quick else 15.0

    def overhead_case(fleet: BenchFleet, progress: Progress) -> dict[str, Any]:
        fleet.start_workers(1, 4)
        try:
            return overhead.step_vs_noop(
                fleet,
                rounds,
                lambda i: progress.step("overhead") if i % (rounds // 10) == 0 else None,
            )
        finally:
            fleet.stop_workers()

    def turn_case(fleet: BenchFleet, progress: Progress) -> dict[str, Any]:
        fleet.start_workers(1, 4)
        try:
            return overhead.turn_vs_noop(
                fleet,
                rounds // 2,
                lambda i: progress.step("turn") if i % (rounds // 20) == 0 else None,
            )
        finally:
            fleet.stop_workers()

    def database_case(fleet: BenchFleet, progress: Progress) -> dict[str, Any]:
        result = database.database_cost(fleet.database_url)
        progress.step("database")
        return result

    def latency_case(fleet: BenchFleet, progress: Progress) -> dict[str, Any]:
        out = {}
        for concurrency in (16, 64):
            out[f"c{concurrency}"] = throughput.latency_bound(fleet, concurrency, window)
            progress.step(f"latency C={concurrency}")
        return out

    def scaling_case(fleet: BenchFleet, progress: Progress) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for processes in (1, 2, 4):
            out[f"p{processes}"] = throughput.scaling(fleet, processes, window)
            progress.step(f"scaling {processes} processes")
        base = out["p1"]["steps_per_s"] or float("nan")
        for processes in (2, 4):
            out[f"p{processes}"]["speedup"] = out[f"p{processes}"]["steps_per_s"] / base
        out["cpus"] = os.cpu_count()
        return out

    def history_case(fleet: BenchFleet, progress: Progress) -> dict[str, Any]:
        step = history.long_path_step_ratio(fleet.database_url, 5 if quick else 20)
        progress.step("history: long path")
        rebuild = history.rebuild_ratio(
            fleet.database_url, 10 if quick else 30, total=2_000 if quick else 20_000
        )
        progress.step("history: rebuild")
        return {"step": step, "rebuild": rebuild}

    def maintenance_case(fleet: BenchFleet, progress: Progress) -> dict[str, Any]:
        result = maintenance_load.maintenance_under_load(fleet, 50 if quick else 1000, window)
        progress.step("maintenance")
        return result

    def events_case(fleet: BenchFleet, progress: Progress) -> dict[str, Any]:
        result = events.delta_latency_fleet(fleet, turns=8 if quick else 40)
        progress.step("events")
        return result

    return {
        "overhead": (10, overhead_case),
        "turn": (10, turn_case),
        "database": (1, database_case),
        "latency": (2, latency_case),
        "scaling": (3, scaling_case),
        "history": (2, history_case),
        "maintenance": (1, maintenance_case),
        "events": (1, events_case),
    }


def table_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    if "overhead" in results:
        o = results["overhead"]
        rows += [
            Row(
                "step overhead",
                "step p50 / p99",
                o["step_p50_ms"],
                " ms",
                f"p99 {o['step_p99_ms']:.1f} ms",
            ),
            Row(
                "step overhead",
                "no-op p50 / p99",
                o["noop_p50_ms"],
                " ms",
                f"p99 {o['noop_p99_ms']:.1f} ms",
            ),
            Row("step overhead", "ratio p50", o["ratio_p50"], "x", "<= 1.5", o["ratio_p50"] <= 1.5),
            Row("step overhead", "ratio p99", o["ratio_p99"], "x"),
        ]
    if "turn" in results:
        w = results["turn"]
        rows += [
            Row(
                "whole turn", "turn p50", w["turn_p50_ms"], " ms", f"p99 {w['turn_p99_ms']:.1f} ms"
            ),
            Row(
                "whole turn",
                "ratio p50 vs no-op",
                w["ratio_p50"],
                "x",
                "<= 2.0",
                w["ratio_p50"] <= 2.0,
            ),
        ]
    if "database" in results:
        d = results["database"]
        rows += [
            Row(
                "database",
                "tx per step (no tools)",
                d["step_transactions"],
                "",
                "2",
                d["step_transactions"] <= 2,
            ),
            Row(
                "database",
                "tx per one-step turn",
                d["turn_transactions"],
                "",
                "<= 3 incl. enqueue",
                d["turn_transactions"] <= 3,
            ),
            Row("database", "statements per one-step turn", d["turn_statements"]),
            Row("database", "tx per tool step", d["tool_step_transactions"]),
            Row("database", "statements per tool step", d["tool_step_statements"]),
        ]
    if "latency" in results:
        for value in results["latency"].values():
            rows.append(
                Row(
                    "latency-bound",
                    f"efficiency C={value['concurrency']}",
                    value["efficiency"],
                    "",
                    ">= 0.9",
                    value["efficiency"] >= 0.9,
                )
            )
            rows.append(
                Row("latency-bound", f"steps/s C={value['concurrency']}", value["steps_per_s"])
            )
    if "scaling" in results:
        s = results["scaling"]
        for processes in (1, 2, 4):
            entry = s[f"p{processes}"]
            rows.append(Row("scaling", f"steps/s, {processes} process(es)", entry["steps_per_s"]))
            if "speedup" in entry:
                rows.append(
                    Row(
                        "scaling",
                        f"speed-up x{processes}",
                        entry["speedup"],
                        "x",
                        f"{s['cpus']} CPUs",
                    )
                )
    if "history" in results:
        h = results["history"]
        rows += [
            Row(
                "history",
                "step 2,000 vs 20-node path",
                h["step"]["ratio"],
                "x",
                "<= 1.3",
                h["step"]["ratio"] <= 1.3,
            ),
            Row(
                "history",
                f"rebuild {h['rebuild']['big_nodes']} vs 50 nodes",
                h["rebuild"]["ratio"],
                "x",
                "<= 1.5",
                h["rebuild"]["ratio"] <= 1.5,
            ),
        ]
    if "maintenance" in results:
        m = results["maintenance"]
        rows += [
            Row("maintenance", f"tombstone {m['orphans']} orphans", m["tombstone_s"], " s"),
            Row("maintenance", "vacuum", m["vacuum_s"], " s"),
            Row(
                "maintenance",
                "turn p99 busy / idle",
                m["p99_ratio"],
                "x",
                "<= 1.2",
                m["p99_ratio"] <= 1.2,
            ),
        ]
    if "events" in results and "delta_p50_ms" in results["events"]:
        e = results["events"]
        target = f"< {e['target_ms']:.0f} ms"
        rows += [
            Row(
                "live events",
                "token -> reader p50",
                e["delta_p50_ms"],
                " ms",
                target,
                e["delta_p50_ms"] < e["target_ms"],
            ),
            Row("live events", "token -> reader p95", e["delta_p95_ms"], " ms"),
            Row(
                "live events",
                "first token -> reader p50",
                e["first_token_p50_ms"],
                " ms",
                f"p95 {e['first_token_p95_ms']:.1f} ms",
            ),
        ]
    return rows


def chart_bars(results: dict[str, Any]) -> list[tuple[str, float, float]]:
    bars: list[tuple[str, float, float]] = []
    if "overhead" in results:
        bars.append(("step / no-op (p50)", results["overhead"]["ratio_p50"], 1.5))
    if "turn" in results:
        bars.append(("turn / no-op (p50)", results["turn"]["ratio_p50"], 2.0))
    if "history" in results:
        bars.append(("step 2,000 / 20 path", results["history"]["step"]["ratio"], 1.3))
        bars.append(("rebuild big / small", results["history"]["rebuild"]["ratio"], 1.5))
    if "maintenance" in results:
        bars.append(("turn p99 busy / idle", results["maintenance"]["p99_ratio"], 1.2))
    return bars


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": f"{cpu} x{os.cpu_count()}",
        "python": platform.python_version(),
        "date": datetime.now(UTC).date().isoformat(),
    }
