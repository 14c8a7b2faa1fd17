"""A job that blocks the event loop makes `/livez` fail, and the worker recovers after it.

The real scheduler runs on the real clock with a fast heartbeat; a probe from another thread (as
the kubelet probes from outside) sees a timeout or a 503 while a job hogs the loop, and 200
again once it lets go. This takes real seconds, hence an integration test.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta

import pytest

from financial.pkg.health import WorkerHealth, start_health_server
from financial.pkg.jobs import JobContext, cron_job
from financial.pkg.scheduler.clock import SystemClock
from financial.pkg.scheduler.loop.scheduler import Scheduler, SchedulerConfig
from financial.pkg.scheduler.registry import JobRegistry
from financial.pkg.scheduler.store.memory import MemoryRunStore

pytestmark = pytest.mark.integration

BLOCK_S = 1.5
PROBE_TIMEOUT_S = 0.4
PROBE_WINDOW_S = 6.0


def probe(url: str) -> str:
    """The probe's verdict as the kubelet would reach it: a status code or a timeout."""
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
            return str(response.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except (TimeoutError, urllib.error.URLError):
        return "timeout"


async def test_a_job_blocking_the_loop_fails_liveness_until_it_lets_go() -> None:
    blocked = threading.Event()

    @cron_job("@every 1s", name="hog")
    async def hog(ctx: JobContext) -> None:
        """Blocks the event loop once, as a job calling blocking code by mistake would."""
        if not blocked.is_set():
            blocked.set()
            time.sleep(BLOCK_S)  # noqa: ASYNC251 - on purpose: the bug the probe must catch

    registry = JobRegistry()
    registry.add(hog)
    clock = SystemClock()
    store = MemoryRunStore()
    scheduler = Scheduler(
        registry,
        store=store,
        clock=clock,
        config=SchedulerConfig(worker_id="stall-test", heartbeat_interval=timedelta(seconds=0.1)),
    )
    health = WorkerHealth(registry, clock=clock)
    health.mark_migrated()
    health.attach(scheduler, store)
    server = await start_health_server("127.0.0.1", 0, health, stall_after=timedelta(seconds=0.5))
    loop_task = asyncio.create_task(scheduler.run())
    verdicts: list[tuple[bool, str]] = []  # (blocked yet, verdict)

    def prober() -> None:
        deadline = time.monotonic() + PROBE_WINDOW_S
        while time.monotonic() < deadline:
            verdict = probe(server.url + "/livez")
            # Read the flag after the probe, so a probe that overlapped the block counts in it.
            verdicts.append((blocked.is_set(), verdict))
            if blocked.is_set() and verdicts[-1][1] == "200" and len(verdicts) > 3:
                failures = [v for b, v in verdicts if b and v != "200"]
                if failures:
                    return
            time.sleep(0.05)

    try:
        await asyncio.to_thread(prober)
    finally:
        scheduler.stop()
        await loop_task
        await scheduler.drain(timedelta(seconds=1))
        await server.close()

    before = [v for b, v in verdicts if not b]
    during_and_after = [v for b, v in verdicts if b]
    assert before and all(v == "200" for v in before), verdicts
    assert any(v in ("503", "timeout") for v in during_and_after), verdicts
    assert during_and_after[-1] == "200", verdicts
