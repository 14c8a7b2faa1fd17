"""The run history of the fault tests' workers, and the one check every scenario makes on it:
every tick between the first and the last has exactly one record with a final status."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg

T = TypeVar("T")

FINAL = frozenset(
    {"succeeded", "failed", "timed_out", "skipped", "missed", "interrupted", "abandoned"}
)
DB_TIMEOUT_S = 5.0


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from a blocking test, on a loop of its own in a thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def utcnow() -> datetime:
    """Wall-clock now: the worker's ticks are wall-clock instants on this same machine."""
    return datetime.now(UTC)


def remaining_s(since: datetime, bound_s: float) -> float:
    """What is left of `bound_s` counted from the instant `since` (never negative)."""
    return max(0.0, bound_s - (utcnow() - since).total_seconds())


async def _fetch_runs(dsn: str, jobs: Sequence[str]) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn, timeout=DB_TIMEOUT_S, command_timeout=DB_TIMEOUT_S)
    try:
        rows = await conn.fetch(
            "SELECT run_id, job, scheduled_at, attempt, trigger, status, started_at, "
            "finished_at, duration_ms, error_type, error_message FROM job_runs "
            "WHERE job = ANY($1::text[]) ORDER BY job, scheduled_at, attempt",
            list(jobs),
        )
    finally:
        await conn.close()
    return [dict(row) for row in rows]


def records(dsn: str, *jobs: str) -> list[dict[str, Any]]:
    """The job_runs rows of `jobs`, by job, tick and attempt."""
    return run_sync(_fetch_runs(dsn, jobs))


def show(rows: Iterable[Mapping[str, Any]]) -> str:
    """Rows as short lines for a failure message."""
    lines = []
    for r in rows:
        error = f" {r['error_type']}: {str(r['error_message'])[:120]}" if r["error_type"] else ""
        duration = f" {r['duration_ms']:.0f}ms" if r["duration_ms"] is not None else ""
        lines.append(
            f"  {r['job']} {r['scheduled_at'].isoformat()} #{r['attempt']} {r['status']}"
            f"{duration}{error}"
        )
    return "\n".join(lines) or "  (no rows)"


def assert_one_final_record_per_tick(
    rows: Sequence[Mapping[str, Any]],
    schedule_step: timedelta,
    first: datetime | None = None,
    last: datetime | None = None,
) -> None:
    """Every tick from `first` to `last` (default: the first and last recorded), one
    `schedule_step` apart, has exactly one record: attempt 1, with a final status. No tick is
    recorded twice, and no row at all is left pending or running."""
    assert rows, "no run recorded at all"
    ticks = Counter(r["scheduled_at"] for r in rows)
    first = first or min(ticks)
    last = last or max(ticks)
    problems: list[str] = []
    twice = sorted(t for t, n in ticks.items() if n > 1)
    if twice:
        problems.append(f"ticks recorded more than once: {[t.isoformat() for t in twice]}")
    expected = []
    tick = first
    while tick <= last:
        expected.append(tick)
        tick += schedule_step
    missing = [t for t in expected if t not in ticks]
    if missing:
        problems.append(
            f"{len(missing)} ticks between {first.isoformat()} and {last.isoformat()} have no "
            f"record: {[t.isoformat() for t in missing]}"
        )
    off_grid = sorted(t for t in ticks if first <= t <= last and t not in set(expected))
    if off_grid:
        problems.append(f"records off the schedule: {[t.isoformat() for t in off_grid]}")
    not_first = [r for r in rows if r["attempt"] != 1]
    if not_first:
        problems.append(f"records of a later attempt:\n{show(not_first)}")
    open_rows = [r for r in rows if r["status"] not in FINAL]
    if open_rows:
        problems.append(f"records with no final status:\n{show(open_rows)}")
    assert not problems, "\n".join(problems)


def history(
    rows: Iterable[Mapping[str, Any]], start: datetime, end: datetime
) -> dict[str, dict[str, int]]:
    """Statuses counted by job for the ticks from `start` to `end` (the fault window)."""
    out: dict[str, Counter[str]] = {}
    for r in rows:
        if start <= r["scheduled_at"] <= end:
            out.setdefault(r["job"], Counter())[r["status"]] += 1
    return {job: dict(sorted(counts.items())) for job, counts in sorted(out.items())}


def last_tick(before: datetime, step: timedelta) -> datetime:
    """The last tick of an every-`step` schedule (aligned on the epoch) before `before`."""
    step_s = step.total_seconds()
    return datetime.fromtimestamp(before.timestamp() // step_s * step_s, UTC)


def wait_history_settled(
    dsn: str, jobs: Sequence[str], fault_ended: datetime, bound_s: float
) -> float | None:
    """Seconds after the end of the fault until every run of `jobs` for a tick up to that end
    has a final status; None past `bound_s` (counted from the end of the fault)."""
    while True:
        with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
            rows = records(dsn, *jobs)
            if all(r["status"] in FINAL for r in rows if r["scheduled_at"] <= fault_ended):
                return round((utcnow() - fault_ended).total_seconds(), 2)
        if remaining_s(fault_ended, bound_s) <= 0:
            return None
        time.sleep(0.5)
