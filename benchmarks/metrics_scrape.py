"""What a `/metrics` scrape costs the worker at scale: `python -m benchmarks.metrics_scrape`.

    .venv/bin/python -m benchmarks.metrics_scrape                    # 100, 1000 and 5000 jobs
    .venv/bin/python -m benchmarks.metrics_scrape --jobs 1000 --passes 20

Each job has runs recorded in both histograms (three durations, three lateness values), a last
success and a next tick, as a worker that has run them for a while holds them. Per size: the
exposition's lines and size, the time a scrape takes (`Metrics.render`, from the request to the
text), and how long the event loop could not run meanwhile: a probe sleeping 1 ms at a time
beside the scrape records its worst oversleep, which is how late a run due during a scrape
would start. The collector is tuned as the worker tunes it (`tune_collector`). Median and worst
of `passes` passes after two warm-ups.
`make bench` runs this as its `metrics_scrape` scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.common import Result
from financial.cmd.collector import tune_collector
from financial.pkg.observability.metrics import Metrics, setup_metrics

WARMUP = 2
PROBE_S = 0.001
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def populated(jobs: int) -> Metrics:
    """The worker's instruments with `jobs` jobs that have run."""
    metrics = setup_metrics("financial-worker", instance_id="bench")
    names = [f"job_{i:04d}" for i in range(jobs)]
    metrics.known_jobs(names)
    for name in names:
        for duration_s in (0.004, 0.3, 7.0):
            metrics.record_attempt(name, "succeeded", duration_s)
            metrics.record_lateness(name, duration_s / 500)
        metrics.observe_last_success(name, NOW)
    ticks = {name: NOW + timedelta(minutes=i % 60) for i, name in enumerate(names)}
    metrics.watch_next_fire_times(lambda: ticks)
    return metrics


async def _probe(stop: asyncio.Event, worst: list[float]) -> None:
    """Sleep `PROBE_S` at a time until `stop`, keeping the worst oversleep (s)."""
    while not stop.is_set():
        began = time.perf_counter()
        await asyncio.sleep(PROBE_S)
        worst[0] = max(worst[0], time.perf_counter() - began - PROBE_S)


async def measure_size(jobs: int, passes: int) -> dict[str, float]:
    """Scrape timings and loop stalls for one job count."""
    metrics = populated(jobs)
    tune_collector()  # as the worker does once started
    took: list[float] = []
    stalls: list[float] = []
    body = b""
    try:
        for i in range(WARMUP + passes):
            stop, worst = asyncio.Event(), [0.0]
            probe = asyncio.create_task(_probe(stop, worst))
            await asyncio.sleep(0.005)  # the probe is asleep when the scrape begins
            began = time.perf_counter()
            body = await metrics.render()
            elapsed = time.perf_counter() - began
            stop.set()
            await probe
            if i >= WARMUP:
                took.append(elapsed * 1000)
                stalls.append(worst[0] * 1000)
    finally:
        await metrics.shutdown()
    return {
        "jobs": jobs,
        "lines": body.count(b"\n"),
        "kib": len(body) / 1024,
        "scrape_median_ms": statistics.median(took),
        "scrape_max_ms": max(took),
        "stall_median_ms": statistics.median(stalls),
        "stall_max_ms": max(stalls),
    }


async def scale(sizes: list[int], passes: int) -> Result:
    """The `metrics_scrape` scenario of `python -m benchmarks`."""
    return {"sizes": [await measure_size(n, passes) for n in sizes]}


def table(result: Result) -> list[str]:
    """The markdown table of a `scale` result."""
    lines = [
        "| jobs | lines | KiB | scrape median ms | scrape max ms "
        "| loop held median ms | loop held max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["sizes"]:
        lines.append(
            f"| {r['jobs']} | {r['lines']} | {r['kib']:.0f} | {r['scrape_median_ms']:.1f} "
            f"| {r['scrape_max_ms']:.1f} | {r['stall_median_ms']:.1f} | {r['stall_max_ms']:.1f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.metrics_scrape", description=__doc__
    )
    parser.add_argument("--jobs", default="100,1000,5000", help="job counts (100,1000,5000)")
    parser.add_argument("--passes", type=int, default=10, help="timed passes per size (10)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.jobs.split(",")]
    text = "\n".join(table(asyncio.run(scale(sizes, args.passes))))
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
