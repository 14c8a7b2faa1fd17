"""The targets the benchmarks are read against (issues 12, 14 and 15): what each one asks,
what this run measured, and whether it is met; `report.py` prints them as the last table."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

from benchmarks.common import Result

# Idle counts as "indistinguishable from zero" below this share of one core (a few milliseconds
# over the window: the noise of this kind of machine) with no more loop wake-ups than the
# production heartbeat (every 5 s) asks for, plus two for the window's edges.
IDLE_CPU_LIMIT = 0.0005
IDLE_HEARTBEAT_S = 5


class RowLike(Protocol):
    scenario: str
    scheduler: str
    log_level: str
    params: dict[str, Any]
    result: Result | None
    error: str | None
    loop: str


def _pick(
    rows: list[RowLike], scenario: str, scheduler: str, level: str, **params: Any
) -> Result | None:
    """The result of that row on asyncio's loop: the targets are read there, as before uvloop
    rows were added, so that they mean what they meant."""
    for row in rows:
        same = (row.scenario, row.scheduler, row.log_level, row.loop) == (
            scenario,
            scheduler,
            level,
            "asyncio",
        )
        if same and row.result and all(row.params.get(k) == v for k, v in params.items()):
            return row.result
    return None


Check = tuple[str, str, bool | None]


def targets(rows: list[RowLike]) -> list[Check]:
    """Each target of the run-path issue (12), what was measured, met (None: not measured).

    The peer's and the floor's figures come from the same invocation, so each limit is relative
    to what this machine did that time."""
    checks: list[Check] = []

    def ours(level: str, **params: Any) -> Result | None:
        return _pick(rows, "lateness", "ours", level, **params)

    def peer(n: int) -> Result | None:
        return _pick(rows, "lateness", "peer", "-", jobs=n)

    def bare(n: int) -> Result | None:
        return _pick(rows, "lateness", "bare", "-", jobs=n)

    def us_per_run(r: Result) -> float:
        return float(r["cpu_s"]) / float(r["runs"]) * 1e6 if r.get("runs") else math.nan

    def relative(what: str, mine: float, limit: float, fmt: Callable[[float], str]) -> None:
        checks.append((f"{what} (≤ {fmt(limit)})", fmt(mine), mine <= limit))

    us: Callable[[float], str] = lambda v: f"{v:.0f} µs"  # noqa: E731
    ms: Callable[[float], str] = lambda v: f"{v:.1f} ms"  # noqa: E731
    mib: Callable[[float], str] = lambda v: f"{v:.0f} MiB"  # noqa: E731
    for level, factor in (("INFO", 1.0), ("WARNING", 0.6)):
        mine, theirs = ours(level, jobs=1000), peer(1000)
        if mine and theirs and "cpu_s" in mine and "cpu_s" in theirs:
            relative(
                f"CPU per run at 1000 jobs/s, {level}: {factor:g} times APScheduler's",
                us_per_run(mine), factor * us_per_run(theirs), us,
            )  # fmt: skip
    for level in LEVELS_OURS:
        for n in (1000, 5000):
            mine, theirs = ours(level, jobs=n), peer(n)
            if mine and theirs:
                relative(f"p99 lateness at {n} jobs/s, {level}: half APScheduler's",
                         float(mine["p99_ms"]), 0.5 * float(theirs["p99_ms"]), ms)  # fmt: skip
        mine, floor = ours(level, jobs=1000), bare(1000)
        if mine and floor:
            relative(f"p99 lateness at 1000 jobs/s, {level}: 1.5 times the bare heap's",
                     float(mine["p99_ms"]), 1.5 * float(floor["p99_ms"]), ms)  # fmt: skip
        mine, theirs = ours(level, jobs=1000), peer(1000)
        if mine and theirs and "rss_mb" in mine and "rss_mb" in theirs:
            relative(f"peak RSS at 1000 jobs/s, {level}: 1.25 times APScheduler's",
                     float(mine["rss_mb"]), 1.25 * float(theirs["rss_mb"]), mib)  # fmt: skip
        lateness = [r.result for r in rows if r.scenario == "lateness" and r.scheduler == "ours"
                    and r.log_level == level and r.loop == "asyncio" and r.result]  # fmt: skip
        if lateness:
            bad = [f"{r['observed']}/{r['expected']} (dup {r['duplicates']})" for r in lateness
                   if r["observed"] != r["expected"] or r["duplicates"]]  # fmt: skip
            checks.append((f"no missed or duplicate runs at any N, {level}",
                           "; ".join(bad) or "none", not bad))  # fmt: skip
    for level in LEVELS_OURS:
        r = _pick(rows, "burst", "ours", level)
        if r is not None and "seconds" in r:
            checks.append((f"burst of 10,000 within 1.15 s, {level}", f"{r['seconds']:.3f} s",
                           float(r["seconds"]) <= 1.15))  # fmt: skip
    checks.extend(_database_targets(rows))
    cli = next((r.result for r in rows if r.scenario == "cli" and r.result), None)
    if cli is not None:
        for label, r in cli["commands"].items():
            if r["target_ms"] is not None:
                what = f"`{label}` within {r['target_ms']:g} ms (mean, {cli['tool']})"
                checks.append((what, f"{r['mean_ms']:.1f} ms", r["mean_ms"] <= r["target_ms"]))
    page = next((r.result for r in rows if r.scenario == "status_page" and r.result), None)
    if page is not None:
        from benchmarks.status_page import TARGET_JOBS, TARGET_MS

        for r in page["sizes"]:
            if r["jobs"] == TARGET_JOBS:
                what = (
                    f"status page overview of {TARGET_JOBS} jobs rendered within {TARGET_MS:g} ms"
                )
                checks.append((what, f"{r['render_median_ms']:.1f} ms (median)",
                               r["render_median_ms"] < TARGET_MS))  # fmt: skip
    for level in LEVELS_OURS:
        r = _pick(rows, "idle", "ours", level)
        if r is not None:
            share = r["cpu_s"] / r["wall_s"]
            wakeups_limit = r["wall_s"] / IDLE_HEARTBEAT_S + 2
            checks.append((
                f"idle CPU indistinguishable from zero (under {IDLE_CPU_LIMIT:.2%} of a core, "
                f"wake-ups only for the {IDLE_HEARTBEAT_S} s heartbeat), {level}",
                f"{r['cpu_s'] * 1000:.1f} ms in {r['wall_s']:.0f} s ({share:.3%}), "
                f"{r.get('wakeups', '?')} wake-ups",
                share < IDLE_CPU_LIMIT and r.get("wakeups", 0) <= wakeups_limit,
            ))  # fmt: skip
    return checks


LEVELS_OURS = ("INFO", "WARNING")
DB_TARGET_RUNS_PER_S = 2000
DB_TARGET_P99_MS = 50.0
_NOT_FINAL = frozenset(("pending", "running"))


def _database_targets(rows: list[RowLike]) -> list[Check]:
    """Three workers on one PostgreSQL: 2,000 runs/s together, p99 ≤ 50 ms, no duplicate, every
    run with one final status; and claims and ends in batches."""
    checks: list[Check] = []
    db = next((r for r in rows if r.scenario == "database" and r.result), None)
    if db is None or db.result is None:
        return checks
    target = (f"PostgreSQL, 3 workers: {DB_TARGET_RUNS_PER_S} runs/s together, "
              f"p99 ≤ {DB_TARGET_P99_MS:.0f} ms, no duplicate, one final status each")  # fmt: skip
    if "unavailable" in db.result:
        return [(target, f"not available: {db.result['unavailable']}", None)]
    jobs = int(db.params.get("jobs", 0))
    for rr in db.result["rounds"]:
        if "error" in rr:
            continue
        statuses: dict[str, int] = rr.get("statuses", {})
        unfinished = sum(n for status, n in statuses.items() if status in _NOT_FINAL)
        if rr["workers"] == 3:
            ok = (
                jobs >= DB_TARGET_RUNS_PER_S
                and rr["runs_per_s"] >= DB_TARGET_RUNS_PER_S * 0.999
                and rr["p99_ms"] <= DB_TARGET_P99_MS
                and rr["duplicates"] == 0
                and unfinished == 0
            )
            checks.append((
                f"{target}, {rr['log_level']}",
                f"{rr['runs_per_s']:.0f} runs/s (of {jobs} due), p99 {rr['p99_ms']:.1f} ms, "
                f"{rr['duplicates']} duplicates, {unfinished} not final",
                ok,
            ))  # fmt: skip
        checks.append((
            f"PostgreSQL, {rr['workers']} worker(s), {rr['log_level']}: claims and history "
            "in batches (under 1 round trip per run)",
            f"{rr['round_trips_per_run']:.2f} round trips per run",
            rr["round_trips_per_run"] < 1,
        ))  # fmt: skip
    return checks
