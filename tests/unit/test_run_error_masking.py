"""No secret in any record: a job's error is masked where it is recorded, and again where a
record read back is shown (CLI history, status page) or sent (the `job.failed` event)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from financial.cmd import history
from financial.pkg.health.model import Check, JobStatus
from financial.pkg.health.status_page import StatusReport, render_status_page
from financial.pkg.jobs import JobContext
from financial.pkg.jobs.model import RunStatus
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.store.runs import ERROR_MESSAGE_CHARS, RunError
from tests.unit.health_fakes import NOW, run
from tests.unit.scheduling import Harness, job_of

PASSWORD = "s3cr3t-pw"
TOKEN = "abc123tok"
LEAKY = f"could not reach postgresql://app:{PASSWORD}@db.internal:5432/x (token={TOKEN})"


def assert_clean(text: str) -> None:
    assert PASSWORD not in text
    assert TOKEN not in text


def test_run_error_of_masks_the_password_and_the_token() -> None:
    error = RunError.of(RuntimeError(LEAKY))
    assert error.type == "RuntimeError"
    assert error.message == "could not reach postgresql://app:***@db.internal:5432/x (token=***"


def test_run_error_of_masks_before_it_cuts() -> None:
    # A cut after the key would leave the start of the secret, unmasked, at the end.
    text = "x" * (ERROR_MESSAGE_CHARS - len("password=") - 4) + f"password={PASSWORD}"
    error = RunError.of(ValueError(text))
    assert len(error.message) <= ERROR_MESSAGE_CHARS
    assert error.message.endswith("password=***")
    assert "s3cr" not in error.message


async def test_a_failing_run_is_recorded_and_reported_masked(clock: FakeClock) -> None:
    async def leaky(ctx: JobContext) -> None:
        raise RuntimeError(LEAKY)

    h = Harness(job_of("*/10 * * * * *", leaky), clock=clock)
    async with h:
        await h.advance_to(10)
    [record] = [r for r in await h.history() if r.status is RunStatus.FAILED]
    assert record.error is not None and record.error.type == "RuntimeError"
    assert "postgresql://app:***@db.internal" in record.error.message
    assert_clean(record.error.message)
    [failure] = h.failures
    assert_clean(failure.error.message)


def test_cli_history_masks_a_row_stored_before_masking() -> None:
    # A row written by an older version: its error as the job raised it.
    old = run("outbox_relay", RunStatus.FAILED, 3, error=RunError("RuntimeError", LEAKY))
    printed = history.history_json([old])
    assert "postgresql://app:***@db.internal" in json.loads(printed)[0]["error_message"]
    assert_clean(printed)
    headers, rows = history.history_table([old])
    assert_clean(" ".join(" ".join(row) for row in rows))
    assert headers[-1] == "ERROR" and rows[0][-1].startswith("RuntimeError: could not reach")


def test_status_page_masks_a_row_stored_before_masking() -> None:
    old = run("outbox_relay", RunStatus.FAILED, 3, error=RunError("RuntimeError", LEAKY))
    job = JobStatus(
        name="outbox_relay",
        schedule="@every 5s",
        zone="UTC",
        next_fire=datetime(2026, 3, 9, 11, tzinfo=UTC),
        paused=False,
        recent_runs=[old],
    )
    page = render_status_page(
        StatusReport(
            title="w",
            now=NOW,
            liveness=Check("scheduler_loop", True),
            readiness=[Check("database", True)],
            jobs=[job],
        )
    )
    assert "postgresql://app:***@db.internal" in page
    assert_clean(page)
