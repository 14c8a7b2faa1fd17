"""PostgreSQL stopped under a running worker for about 12 s: one warning when it goes, one when
it is back with how long it was away, and none of asyncpg's reconnect tracebacks."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.services import PostgresService
from tests.integration.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

OUTAGE_S = 12.0


def third_party(event: dict[str, Any]) -> bool:
    return not str(event.get("logger", "financial")).startswith("financial")


def test_a_database_outage_gives_two_warnings_and_no_driver_traceback(
    postgres: PostgresService, database_dsn: str, open_tmp_path: Path
) -> None:
    env = {"DATABASE_URL": database_dsn, "WORKER_JOB_MODULES": "tests.fixtures.worker_jobs"}
    worker = WorkerProcess("worker", cwd=open_tmp_path, env=env)
    try:
        worker.wait_event("job_succeeded", job="tick")
        before = len(worker.events)
        postgres.stop()
        try:
            worker.wait_event("dependency_unavailable", dependency="postgresql", timeout_s=10)
            time.sleep(OUTAGE_S)
        finally:
            postgres.start()
        during = worker.events[before:]
        restored = worker.wait_event("dependency_restored", dependency="postgresql", timeout_s=60)
        after = len(worker.events)
        worker.wait_for(
            lambda e: e.get("event") == "job_succeeded" and worker.events.index(e) >= after,
            timeout_s=30,
        )
        worker.signal(signal.SIGTERM)
        worker.wait_exit(timeout_s=60)
    finally:
        worker.kill()
    names = [e["event"] for e in worker.events]
    assert names.count("dependency_unavailable") == 1
    assert names.count("dependency_restored") == 1
    assert restored["down_for_s"] >= OUTAGE_S - 1
    noisy = [e for e in during if third_party(e)]
    assert len(noisy) <= 3, [(e["logger"], e["event"][:120]) for e in noisy]
    assert not any("exception" in e for e in worker.events if third_party(e))
    counts = {
        name: [e["event"] for e in during].count(name) for name in {e["event"] for e in during}
    }
    print(f"\ndatabase outage {OUTAGE_S:g} s: {len(during)} lines {counts}")
