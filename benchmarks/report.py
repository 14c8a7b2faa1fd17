"""The markdown the runner prints: the machine, one table per scenario, and the targets
(checked in targets.py)."""

from __future__ import annotations

import math
import os
import platform
import sys
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from benchmarks.common import Result
from benchmarks.targets import RowLike, targets


def machine() -> str:
    """One line naming the machine, the interpreter and the peer's version."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()} ({sys.implementation.name}), "
        f"APScheduler {_version('apscheduler')}, structlog {_version('structlog')}, "
        f"uvloop {_version('uvloop')}"
    )


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def _ms(value: Any) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _pct(cpu_per_s: Any) -> str:
    return "-" if not isinstance(cpu_per_s, int | float) else f"{cpu_per_s * 100:.2f}%"


def _who(row: RowLike) -> str:
    who = {
        "ours": "financial worker",
        "peer": f"APScheduler {_version('apscheduler')}",
        "bare": "bare dispatcher (floor)",
    }.get(row.scheduler, row.scheduler)
    return f"{who} on uvloop" if row.loop == "uvloop" else who


def _logs(row: RowLike) -> str:
    return {"ours": row.log_level, "peer": "stdlib WARNING", "bare": "none"}.get(
        row.scheduler, row.log_level
    )


def _us_per_run(r: Result) -> str:
    """Process CPU over the run divided by the runs that started in it, in µs."""
    if not r.get("runs") or "cpu_s" not in r:
        return "-"
    return f"{r['cpu_s'] / r['runs'] * 1e6:.0f}"


def _table(head: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return lines


def _failed(row: RowLike, width: int, lead: Sequence[str]) -> list[str]:
    return [*lead, f"error: {row.error}", *(["-"] * (width - len(lead) - 1))]


def _lateness(rows: list[RowLike]) -> list[str]:
    head = ["jobs/s", "scheduler", "logs", "p50 ms", "p99 ms", "max ms", "runs expected",
            "observed", "duplicates", "CPU (of one core)", "CPU µs per run",
            "peak RSS MiB"]  # fmt: skip
    body: list[list[str]] = []
    for row in rows:
        lead = [str(row.params["jobs"]), _who(row), _logs(row)]
        r = row.result
        if r is None:
            body.append(_failed(row, len(head), lead))
            continue
        if r.get("overloaded"):
            # The watchdog cut it short: runs not started by then count as missed.
            lead[1] += " (fell behind; cut short)"
        body.append([
            *lead, _ms(r["p50_ms"]), _ms(r["p99_ms"]), _ms(r["max_ms"]), str(r["expected"]),
            str(r["observed"]), str(r["duplicates"]), _pct(r["cpu_per_s"]), _us_per_run(r),
            f"{r['rss_mb']:.0f}",
        ])  # fmt: skip
    seconds = rows[0].params["duration_s"] if rows else 0
    title = (
        f"### Start lateness: N jobs firing every second (`* * * * * *`), {seconds} ticks each\n\n"
        "Lateness is the job's first instruction minus its tick. CPU is process CPU seconds per "
        "wall second over the run; CPU per run is the same CPU seconds divided by the runs that "
        "started in that time (the warm-up tick's and the last tick's included)."
    )
    return [title, "", *_table(head, body), "", *_side_by_side(rows)]


_SIDES = (
    ("ours", "INFO", "asyncio"),
    ("ours", "WARNING", "asyncio"),
    ("ours", "INFO", "uvloop"),
    ("peer", "-", "asyncio"),
    ("bare", "-", "asyncio"),
)


def _side_by_side(rows: list[RowLike]) -> list[str]:
    """The lateness rows again, one column per side: p99, CPU and peak RSS at each N."""
    by_side = {(r.scheduler, r.log_level, r.loop, r.params["jobs"]): r for r in rows}
    sizes = sorted({int(r.params["jobs"]) for r in rows})
    labels = {"ours": "financial worker", "peer": f"APScheduler {_version('apscheduler')}",
              "bare": "bare heap (floor)"}  # fmt: skip
    head = ["jobs/s", "figure"] + [
        (f"{labels[who]}, {level}" + (", uvloop" if loop == "uvloop" else ""))
        if who == "ours"
        else labels[who]
        for who, level, loop in _SIDES
    ]
    figures: list[tuple[str, Callable[[Result], str]]] = [
        ("p99 lateness ms", lambda r: _ms(r["p99_ms"])),
        ("CPU, of one core", lambda r: _pct(r["cpu_per_s"])),
        ("CPU µs per run", _us_per_run),
        ("peak RSS MiB", lambda r: f"{r['rss_mb']:.0f}"),
    ]
    body: list[list[str]] = []
    for n in sizes:
        for name, show in figures:
            cells = [str(n), name]
            for who, level, loop in _SIDES:
                row = by_side.get((who, level, loop, n))
                if row is None or row.result is None:
                    cells.append("-")
                    continue
                mark = " (cut short)" if row.result.get("overloaded") else ""
                cells.append(show(row.result) + mark)
            body.append(cells)
    title = "Side by side (the same runs):"
    return [title, "", *_table(head, body)]


def _idle(rows: list[RowLike]) -> list[str]:
    head = ["scheduler", "logs", "CPU seconds", "over wall seconds", "CPU (of one core)",
            "loop wake-ups"]  # fmt: skip
    body: list[list[str]] = []
    for row in rows:
        lead = [_who(row), _logs(row)]
        r = row.result
        if r is None:
            body.append(_failed(row, len(head), lead))
            continue
        cpu = [f"{r['cpu_s']:.4f}", f"{r['wall_s']:.1f}", _pct(r["cpu_s"] / r["wall_s"])]
        wakeups = r.get("wakeups")  # None on uvloop: not countable there
        body.append([*lead, *cpu, "-" if wakeups is None else str(wakeups)])
    jobs = rows[0].params["jobs"] if rows else 0
    return [f"### Idle: {jobs} jobs on `0 3 * * *`, nothing due", "", *_table(head, body)]


def _burst(rows: list[RowLike]) -> list[str]:
    head = ["scheduler", "logs", "runs completed", "seconds from the tick to the last done"]
    body: list[list[str]] = []
    for row in rows:
        lead = [_who(row), _logs(row)]
        r = row.result
        if r is None:
            body.append(_failed(row, len(head), lead))
            continue
        body.append([*lead, f"{r['completed']} / {r['expected']}", f"{r['seconds']:.3f}"])
    p = rows[0].params if rows else {"runs": 0, "cap": 0, "work_s": 0}
    title = (
        f"### Burst: {p['runs']:,} runs due at the same second, at most {p['cap']} at once, "
        f"each awaiting {p['work_s'] * 1000:g} ms (floor: "
        f"{p['runs'] / p['cap'] * p['work_s']:g} s)\n\nAPScheduler's asyncio executor has no "
        "cap of its own: its jobs share an `asyncio.Semaphore`."
    )
    return [title, "", *_table(head, body)]


def _database(rows: list[RowLike]) -> list[str]:
    head = ["workers", "logs", "runs/s", "p50 ms", "p99 ms", "max ms", "runs expected",
            "observed", "duplicates", "round trips per run", "final statuses",
            "CPU per worker", "peak RSS MiB"]  # fmt: skip
    body: list[list[str]] = []
    p = rows[0].params if rows else {"jobs": 0, "duration_s": 0}
    for row in rows:
        r = row.result
        if r is None:
            body.append(_failed(row, len(head), ["-", "-"]))
            continue
        if "unavailable" in r:
            body.append(["-", "-", f"not available: {r['unavailable']}", *(["-"] * 10)])
            continue
        for rr in r["rounds"]:
            lead = [str(rr["workers"]), rr["log_level"]]
            if "error" in rr:
                body.append([*lead, f"error: {rr['error']}", *(["-"] * 10)])
                continue
            statuses = ", ".join(f"{k} {v}" for k, v in sorted(rr.get("statuses", {}).items()))
            body.append([
                *lead, f"{rr['runs_per_s']:.0f}", _ms(rr["p50_ms"]), _ms(rr["p99_ms"]),
                _ms(rr["max_ms"]), str(rr["expected"]), str(rr["observed"]),
                str(rr["duplicates"]), f"{rr['round_trips_per_run']:.2f}", statuses,
                _pct(rr["cpu_per_s"]), f"{rr['rss_mb']:.0f}",
            ])  # fmt: skip
    title = (
        f"### Database: {p['jobs']} jobs every second for {p['duration_s']} s on one embedded "
        "PostgreSQL (the workers' own production wiring)\n\nRound trips are counted by a proxy "
        "in front of PostgreSQL over the measured window, divided by the runs that started. "
        "Final statuses are the rows of `job_runs` at the end (the window and its edges)."
    )
    return [title, "", *_table(head, body)]


def _firetime(rows: list[RowLike]) -> list[str]:
    head = ["job", "schedule", "ours µs/call", "APScheduler µs/call"]
    body: list[list[str]] = []
    for row in rows:
        r = row.result
        if r is None:
            body.append(_failed(row, len(head), []))
            continue
        for label, s in r["schedules"].items():
            peer = f"{s['peer_us']:.2f}" if "peer_us" in s else "-"
            body.append([label, f"`{s['expression']}`", f"{s['ours_us']:.2f}", peer])
    title = "### Next fire time: microseconds per call, same 2,000 instants, best of 5 passes"
    return [title, "", *_table(head, body)]


def _cli(rows: list[RowLike]) -> list[str]:
    from benchmarks.cli import WARMUP, table

    row = rows[0]
    title = "### Command line: start to exit, as a user runs it (nothing configured)"
    if row.result is None:
        return [title, "", f"error: {row.error}"]
    r = row.result
    note = f"Timed by {r['tool']}, {r['runs']} runs after {WARMUP} warm-ups."
    return [title, "", note, "", *table(r)]


def _status_page(rows: list[RowLike]) -> list[str]:
    from benchmarks.status_page import table

    row = rows[0]
    title = "### Status page: the overview of N jobs with 30 runs each (issue 14)"
    if row.result is None:
        return [title, "", f"error: {row.error}"]
    return [title, "", *table(row.result)]


def _metrics_scrape(rows: list[RowLike]) -> list[str]:
    from benchmarks.metrics_scrape import table

    row = rows[0]
    title = "### A `/metrics` scrape of N jobs: its time, and how long the event loop is held"
    if row.result is None:
        return [title, "", f"error: {row.error}"]
    return [title, "", *table(row.result)]


def render(rows: Sequence[RowLike], host: str, plan: dict[str, Any], took_s: float) -> str:
    """The whole report as markdown."""
    rows = list(rows)
    parts: list[list[str]] = [[
        f"Machine: {host}. Whole run: {took_s / 60:.1f} min.",
    ]]  # fmt: skip
    for scenario, render_one in (
        ("lateness", _lateness),
        ("idle", _idle),
        ("burst", _burst),
        ("database", _database),
        ("firetime", _firetime),
        ("cli", _cli),
        ("status_page", _status_page),
        ("metrics_scrape", _metrics_scrape),
    ):
        chosen = [r for r in rows if r.scenario == scenario]
        if chosen:
            parts.append(render_one(chosen))
    checks = targets(rows)
    marks = {True: "met", False: "**missed**", None: "not measured"}
    parts.append([
        "### Targets (issues 12, 14 and 15)", "",
        *_table(["target", "measured", ""], [[w, m, marks[ok]] for w, m, ok in checks]),
    ])  # fmt: skip
    return "\n\n".join("\n".join(p) for p in parts)
