"""A real worker serving /livez, /readyz, /metrics and the status page."""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.services import free_port
from tests.integration.worker_process import WorkerProcess

pytestmark = pytest.mark.integration


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(url: str, status: int, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    last: tuple[int, str] | None = None
    while time.monotonic() < deadline:
        try:
            last = get(url)
        except OSError:
            last = None
        if last is not None and last[0] == status:
            return last[1]
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer {status} within {timeout_s}s: {last}")


def test_worker_serves_probes_metrics_and_the_status_page(
    database_dsn: str, open_tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    worker = WorkerProcess(
        "worker",
        cwd=open_tmp_path,
        env={
            "DATABASE_URL": database_dsn,
            "WORKER_JOB_MODULES": "tests.fixtures.worker_jobs",
            "WORKER_HEALTH_ADDR": f"127.0.0.1:{port}",
        },
    )
    try:
        worker.wait_event("job_succeeded", job="tick")
        assert wait_for(f"{base}/livez", 200)
        ready = wait_for(f"{base}/readyz", 200)
        assert "database" in ready
        metrics = wait_for(f"{base}/metrics", 200)
        assert 'financial_worker_runs_total{job="tick",status="succeeded"' in metrics
        assert "financial_worker_next_fire_timestamp_seconds" in metrics
        assert "financial_worker_start_lateness_seconds_bucket" in metrics
        page = wait_for(f"{base}/", 200)
        assert "tick" in page
        assert "@every 1s" in page
        worker.signal(signal.SIGTERM)
        assert worker.wait_exit() == 0
    finally:
        worker.kill()
    assert [e["event"] for e in worker.events].count("health_server_started") == 1
    closed = [e["client"] for e in worker.events if e["event"] == "client_closed"]
    # The health server outlives the database, so the drain stays observable to the probes.
    assert closed.index("postgres") < closed.index("health_server") < closed.index("telemetry")


def test_without_auto_migrate_the_worker_waits_for_financial_migrate(
    empty_database_dsn: str, open_tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "DATABASE_URL": empty_database_dsn,
        "WORKER_JOB_MODULES": "tests.fixtures.worker_jobs",
        "WORKER_HEALTH_ADDR": f"127.0.0.1:{port}",
        "WORKER_AUTO_MIGRATE": "false",
    }
    worker = WorkerProcess("worker", cwd=open_tmp_path, env=env)
    try:
        pending = worker.wait_event("migrations_pending")
        assert "0001" in pending["pending"]
        assert wait_for(f"{base}/livez", 200)
        assert "migrations" in wait_for(f"{base}/readyz", 503)
        migrate = WorkerProcess("migrate", cwd=open_tmp_path, env=env)
        assert migrate.wait_exit() == 0
        worker.wait_event("worker_started", timeout_s=20)
        wait_for(f"{base}/readyz", 200)
        worker.signal(signal.SIGTERM)
        assert worker.wait_exit() == 0
    finally:
        worker.kill()
