"""Run the benchmark scenarios, each in a fresh process, and print a markdown table.

    python -m benchmarks                    # everything (about 15 minutes)
    python -m benchmarks --quick            # shorter runs, for development
    python -m benchmarks --only lateness --only idle
    python -m benchmarks --markdown out.md --json out.json

Scenarios: lateness, idle, burst, database, firetime, cli (see `benchmarks/README.md`). Each row
is run for ours (with INFO and with WARNING logs, on asyncio's event loop) and for APScheduler 3.11
on the same machine in the same invocation; `bare` rows are the floor (no scheduler bookkeeping
at all). Ours runs again on uvloop (INFO) in lateness, idle and burst: the loop the worker takes
by default where uvloop installs (WORKER_EVENT_LOOP=auto). `cli` times the command line's start.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import Result
from benchmarks.report import machine, render

SCENARIOS = (
    *("lateness", "idle", "burst", "database", "firetime", "cli", "status_page"),
    "metrics_scrape",
)
LEVELS = ("INFO", "WARNING")
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Plan:
    """Sizes and durations of one invocation."""

    sizes: tuple[int, ...] = (10, 100, 1000, 5000)
    lateness_s: int = 20
    idle_jobs: int = 200
    idle_s: int = 30
    burst_runs: int = 10_000
    burst_cap: int = 100
    burst_work_s: float = 0.01
    db_workers: tuple[int, ...] = (1, 3)
    # Issue 12's target: three workers on one database sustain 2,000 runs/s together.
    db_jobs: int = 2000
    db_s: int = 20
    cli_runs: int = 30
    page_passes: int = 20
    scrape_passes: int = 10
    only: frozenset[str] = field(default_factory=lambda: frozenset(SCENARIOS))


QUICK: dict[str, Any] = {
    "lateness_s": 5,
    "idle_s": 5,
    "db_s": 5,
    "cli_runs": 10,
    "page_passes": 5,
    "scrape_passes": 3,
}


@dataclass(slots=True)
class Row:
    """One scenario run: what it was, and its result (or the error it ended with)."""

    scenario: str
    scheduler: str
    log_level: str
    params: dict[str, Any]
    result: Result | None = None
    error: str | None = None
    loop: str = "asyncio"


def rows_for(plan: Plan) -> list[Row]:
    """Every run the plan asks for, in the order they run."""
    rows: list[Row] = []
    params: dict[str, Any]
    if "lateness" in plan.only:
        for n in plan.sizes:
            params = {"jobs": n, "duration_s": plan.lateness_s}
            rows += [Row("lateness", "ours", level, params) for level in LEVELS]
            rows.append(Row("lateness", "ours", "INFO", params, loop="uvloop"))
            rows.append(Row("lateness", "peer", "-", params))
            rows.append(Row("lateness", "bare", "-", params))
    if "idle" in plan.only:
        params = {"jobs": plan.idle_jobs, "duration_s": plan.idle_s}
        rows += [Row("idle", "ours", level, params) for level in LEVELS]
        rows.append(Row("idle", "ours", "INFO", params, loop="uvloop"))
        rows += [Row("idle", "peer", "-", params), Row("idle", "bare", "-", params)]
    if "burst" in plan.only:
        params = {"runs": plan.burst_runs, "cap": plan.burst_cap, "work_s": plan.burst_work_s}
        rows += [Row("burst", "ours", level, params) for level in LEVELS]
        rows.append(Row("burst", "ours", "INFO", params, loop="uvloop"))
        rows.append(Row("burst", "peer", "-", params))
    if "database" in plan.only:
        params = {"workers": list(plan.db_workers), "jobs": plan.db_jobs, "duration_s": plan.db_s}
        rows.append(Row("database", "ours", "both", params))
    if "firetime" in plan.only:
        rows.append(Row("firetime", "both", "-", {}))
    if "cli" in plan.only:
        rows.append(Row("cli", "ours", "-", {"runs": plan.cli_runs}))
    if "status_page" in plan.only:
        params = {"sizes": [100, 500, 1000], "runs": 30, "passes": plan.page_passes}
        rows.append(Row("status_page", "ours", "-", params))
    if "metrics_scrape" in plan.only:
        params = {"sizes": [100, 1000, 5000], "passes": plan.scrape_passes}
        rows.append(Row("metrics_scrape", "ours", "-", params))
    return rows


def _child_call(row: Row) -> tuple[str, dict[str, Any]]:
    if row.scenario == "database":
        return "database.run", {**row.params, "log_levels": list(LEVELS)}
    if row.scenario == "firetime":
        return "firetime.next_fire_time", {"peer": True}
    if row.scenario == "cli":
        return "cli.startup", row.params
    if row.scenario == "status_page":
        return "status_page.scale", row.params
    if row.scenario == "metrics_scrape":
        return "metrics_scrape.scale", row.params
    level = row.log_level if row.log_level in LEVELS else "WARNING"
    loop = {"loop": row.loop} if row.loop != "asyncio" else {}
    return f"{row.scheduler}.{row.scenario}", {**row.params, "log_level": level, **loop}


def run_row(row: Row, timeout_s: float) -> None:
    """Run one row in a fresh interpreter; fill in its result or its error."""
    name, params = _child_call(row)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "benchmarks.child", name, json.dumps(params), str(out)]
        try:
            proc = subprocess.run(
                cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            row.error = f"did not finish within {timeout_s:g} s"
            return
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            row.error = lines[-1] if lines else f"exit status {proc.returncode}"
            return
        row.result = json.loads(out.read_text(encoding="utf-8"))


def _timeout(row: Row) -> float:
    if row.scenario == "database":
        per_round = int(row.params["duration_s"]) + 30
        return 120 + per_round * len(row.params["workers"]) * len(LEVELS)
    return 300


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="short runs (about 3 minutes)")
    parser.add_argument(
        "--only", action="append", choices=SCENARIOS, help="run this scenario (repeatable)"
    )
    parser.add_argument("--sizes", help="lateness job counts, comma-separated (10,100,1000,5000)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the plan the arguments describe; print the table. Exit 1 when a run failed."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    plan = Plan(**QUICK) if args.quick else Plan()
    if args.only:
        plan = Plan(**{**plan_fields(plan), "only": frozenset(args.only)})
    if args.sizes:
        sizes = tuple(int(n) for n in args.sizes.split(","))
        plan = Plan(**{**plan_fields(plan), "sizes": sizes})
    rows = rows_for(plan)
    began = time.monotonic()
    for i, row in enumerate(rows, 1):
        label = (
            f"{row.scenario} {row.scheduler} {row.log_level} {row.loop} {json.dumps(row.params)}"
        )
        print(f"[{i}/{len(rows)}] {label}", file=sys.stderr, flush=True)
        run_row(row, _timeout(row))
        if row.error:
            print(f"    error: {row.error}", file=sys.stderr, flush=True)
    took_s = time.monotonic() - began
    table = render(rows, machine(), plan_fields(plan), took_s)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n", encoding="utf-8")
    if args.json:
        raw = [
            {"scenario": r.scenario, "scheduler": r.scheduler, "log_level": r.log_level,
             "loop": r.loop, "params": r.params, "result": r.result, "error": r.error}
            for r in rows
        ]  # fmt: skip
        args.json.write_text(json.dumps(raw, indent=1) + "\n", encoding="utf-8")
    return 1 if any(r.error for r in rows) else 0


def plan_fields(plan: Plan) -> dict[str, Any]:
    """The plan as keyword arguments (to derive a changed one)."""
    return {name: getattr(plan, name) for name in Plan.__dataclass_fields__}
