"""No secret in any record: a real worker runs a job whose exception carries a password and a
token; neither is found in the database, the status page, the CLI, the events or the logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import asyncpg
import pytest

from tests.fixtures.leaky_jobs import PASSWORD, TOKEN
from tests.integration.amqp_consumer import consumer
from tests.integration.services import free_port
from tests.integration.test_worker_health import wait_for
from tests.integration.worker_process import FINANCIAL, REPO, WorkerProcess

pytestmark = pytest.mark.integration


def assert_clean(where: str, text: str) -> None:
    assert PASSWORD not in text, f"the password is in {where}"
    assert TOKEN not in text, f"the token is in {where}"


def financial(*args: str, env: dict[str, str], cwd: Path) -> str:
    """Run a `financial` command to its end; its stdout (stderr is checked too)."""
    result = subprocess.run(
        [FINANCIAL, *args],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert_clean(f"the stderr of financial {' '.join(args)}", result.stderr)
    return result.stdout


async def test_a_secret_in_a_jobs_error_reaches_no_record(
    db_pool: asyncpg.Pool,
    database_dsn: str,
    amqp_url: str,
    exchange_name: str,
    open_tmp_path: Path,
) -> None:
    port = free_port()
    env = {
        "DATABASE_URL": database_dsn,
        "RABBITMQ_URL": amqp_url,
        "RABBITMQ_EXCHANGE": exchange_name,
        "WORKER_JOB_MODULES": "tests.fixtures.leaky_jobs",
        "WORKER_JOBS__OUTBOX_RELAY__SCHEDULE": "@every 1s",
        "WORKER_HEALTH_ADDR": f"127.0.0.1:{port}",
    }
    async with consumer(amqp_url, exchange_name, "job.failed") as events:
        worker = WorkerProcess("worker", cwd=open_tmp_path, env=env)
        try:
            failed = worker.wait_event("job_failed", job="leaky")
            # The run's own log line keeps the message, masked, and its traceback.
            assert "postgresql://app:***@db.internal" in failed["error"]
            assert "exception" in failed and "RuntimeError" in failed["exception"]
            [event] = await events.take(1, timeout_s=30)
            page = wait_for(f"http://127.0.0.1:{port}/", 200)
            assert "leaky" in page and "app:***@db.internal" in page
            assert_clean("the status page", page)
            history_json = financial(
                "jobs", "history", "leaky", "--json", env={"DATABASE_URL": database_dsn},
                cwd=open_tmp_path,
            )  # fmt: skip
            runs = json.loads(history_json)
            assert runs and all(r["status"] == "failed" for r in runs)
            assert "app:***@db.internal" in runs[0]["error_message"]
            assert_clean("jobs history --json", history_json)
            table = financial(
                "jobs", "history", "leaky", env={"DATABASE_URL": database_dsn}, cwd=open_tmp_path
            )
            assert "RuntimeError: could not reach" in table
            assert_clean("jobs history", table)
            worker.signal(signal.SIGTERM)
            assert worker.wait_exit() == 0
        finally:
            worker.kill()

    # The broker's copy of the job.failed event.
    assert event.body["job"] == "leaky" and event.body["error_type"] == "RuntimeError"
    assert "app:***@db.internal" in event.body["error_message"]
    assert_clean("the job.failed event on the broker", json.dumps(event.body))
    # The database: every run row and every outbox event.
    rows = await db_pool.fetch("SELECT error_type, error_message FROM job_runs WHERE job = 'leaky'")
    assert rows and all(r["error_type"] == "RuntimeError" for r in rows)
    assert_clean("job_runs", " ".join(r["error_message"] for r in rows))
    outbox = await db_pool.fetch(
        "SELECT payload::text AS payload, last_error FROM outbox WHERE routing_key = 'job.failed'"
    )
    assert outbox
    assert_clean("the outbox", " ".join(f"{r['payload']} {r['last_error']}" for r in outbox))
    # Every line the worker wrote.
    logs = "\n".join(json.dumps(e) for e in worker.events) + "".join(worker.other_lines)
    assert "app:***@db.internal" in logs
    assert_clean("the worker's stdout", logs)
    assert_clean("the worker's stderr", worker.stderr())
