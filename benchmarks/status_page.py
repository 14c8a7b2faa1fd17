"""How long the status page takes to render at scale: `python -m benchmarks.status_page`.

    .venv/bin/python -m benchmarks.status_page                    # 500 jobs, 30 runs each
    .venv/bin/python -m benchmarks.status_page --jobs 100,500,1000 --runs 30 --passes 20

Synthetic jobs (a mix of healthy, failing, late, paused and disabled ones, with errors on the
failed runs) each with `runs` recent runs, as `WorkerHealth` gives them after its one batched
store query. Two figures per size: the server's time to render the overview
(`render_overview`, what issue 14 bounds at 100 ms for 500 jobs), and a whole `GET /` over
loopback from a real health server (aiohttp, headers, the readiness checks, the client's read),
both as the median and the worst of `passes` passes after two warm-ups. The store's query is not
in either: it is one round trip whatever the job count (see `RunStore.recent_runs`).
`make bench` runs this as its `status_page` scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from benchmarks.common import Result
from financial.pkg.health import Check, JobStatus, start_health_server
from financial.pkg.health.overview import StatusReport, render_overview
from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.scheduler.store import RunError, RunRecord

TARGET_JOBS = 500
TARGET_MS = 100.0
WARMUP = 2
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
ZONES = ("UTC", "America/Sao_Paulo", "Europe/Berlin", "Asia/Tokyo")


def build_jobs(count: int, runs: int) -> list[JobStatus]:
    """`count` jobs with `runs` runs each, newest first; every seventh failing, every
    eleventh late, every thirteenth paused, every seventeenth disabled."""
    jobs = []
    for i in range(count):
        name = f"job_{i:04d}"
        zone = ZONES[i % len(ZONES)]
        failing = i % 7 == 0
        records = [_run(name, n, failing and n % 3 == 0) for n in range(runs)]
        jobs.append(
            JobStatus(
                name=name,
                schedule=f"CRON_TZ={zone} */{i % 50 + 1} * * * *",
                zone=zone,
                next_fire=NOW + timedelta(minutes=i % 50 + 1),
                paused=i % 13 == 0,
                paused_reason="maintenance" if i % 13 == 0 else None,
                disabled=i % 17 == 0,
                recent_runs=records,
                late=i % 11 == 0,
                late_since=NOW - timedelta(hours=1) if i % 11 == 0 else None,
            )
        )
    return jobs


def _run(job: str, n: int, failed: bool) -> RunRecord:
    tick = NOW - timedelta(minutes=5 * (n + 1))
    status = RunStatus.FAILED if failed else RunStatus.SUCCEEDED
    error = RunError("ConnectionError", "broker unreachable after 3 tries") if failed else None
    return RunRecord(
        run_id=f"{job}-{n}",
        job=job,
        scheduled_at=tick,
        attempt=1,
        trigger=Trigger.SCHEDULE,
        status=status,
        worker_id="worker-1",
        created_at=tick,
        started_at=tick,
        finished_at=tick + timedelta(seconds=1.5),
        error=error,
        duration_ms=1500.0 + n,
    )


class _Source:
    """A `HealthSource` answering from memory, so the HTTP figure is the server's alone."""

    def __init__(self, jobs: Sequence[JobStatus]) -> None:
        self._jobs = jobs

    def now(self) -> datetime:
        return NOW

    def last_heartbeat(self) -> datetime | None:
        return NOW

    def draining(self) -> bool:
        return False

    async def readiness(self) -> Sequence[Check]:
        return [Check("database", True), Check("migrations", True)]

    async def jobs(self) -> Sequence[JobStatus]:
        return self._jobs

    async def job(self, name: str) -> JobStatus | None:
        return next((job for job in self._jobs if job.name == name), None)


def _timed(samples: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(samples), "max_ms": max(samples)}


async def measure_size(jobs: int, runs: int, passes: int) -> dict[str, float]:
    """Render and HTTP timings for one job count."""
    statuses = build_jobs(jobs, runs)
    report = StatusReport(
        title="financial-worker · bench",
        now=NOW,
        liveness=Check("scheduler_loop", True, "heartbeat 0.1 s ago"),
        readiness=[Check("database", True)],
        jobs=statuses,
    )
    render: list[float] = []
    size = 0
    for i in range(WARMUP + passes):
        began = time.perf_counter()
        size = len(render_overview(report))
        if i >= WARMUP:
            render.append((time.perf_counter() - began) * 1000)
    http: list[float] = []
    server = await start_health_server("127.0.0.1", 0, _Source(statuses))
    try:
        async with aiohttp.ClientSession() as session:
            for i in range(WARMUP + passes):
                began = time.perf_counter()
                async with session.get(server.url + "/") as response:
                    await response.read()
                if i >= WARMUP:
                    http.append((time.perf_counter() - began) * 1000)
    finally:
        await server.close()
    timings = {f"render_{k}": v for k, v in _timed(render).items()}
    timings |= {f"http_{k}": v for k, v in _timed(http).items()}
    return {"jobs": jobs, "runs": runs, "html_kb": size / 1024, **timings}


async def scale(sizes: list[int], runs: int, passes: int) -> Result:
    """The `status_page` scenario of `python -m benchmarks`."""
    return {"sizes": [await measure_size(n, runs, passes) for n in sizes]}


def table(result: Result) -> list[str]:
    """The markdown table of a `scale` result."""
    lines = [
        "| jobs | runs each | HTML KiB | render median ms | render max ms "
        "| GET / median ms | GET / max ms | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["sizes"]:
        verdict = "-"
        if r["jobs"] == TARGET_JOBS:
            met = r["render_median_ms"] < TARGET_MS
            verdict = f"render < {TARGET_MS:g} ms: {'met' if met else '**missed**'}"
        lines.append(
            f"| {r['jobs']} | {r['runs']} | {r['html_kb']:.0f} | {r['render_median_ms']:.1f} "
            f"| {r['render_max_ms']:.1f} | {r['http_median_ms']:.1f} | {r['http_max_ms']:.1f} "
            f"| {verdict} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table; exit 1 when the 500-job target was missed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.status_page", description=__doc__)
    parser.add_argument("--jobs", default="100,500,1000", help="job counts (100,500,1000)")
    parser.add_argument("--runs", type=int, default=30, help="recent runs per job (30)")
    parser.add_argument("--passes", type=int, default=20, help="timed passes per size (20)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.jobs.split(",")]
    result = asyncio.run(scale(sizes, args.runs, args.passes))
    text = "\n".join(table(result))
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    missed = [
        r
        for r in result["sizes"]
        if r["jobs"] == TARGET_JOBS and r["render_median_ms"] >= TARGET_MS
    ]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
