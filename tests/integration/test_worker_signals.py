"""Real `financial worker` processes and real signals: drain, interrupt, force, exit codes."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

# DEBUG: these tests wait for `job_started`, which a run logs at DEBUG.
JOBS = {"WORKER_JOB_MODULES": "tests.fixtures.worker_jobs", "LOG_LEVEL": "DEBUG"}


Spawn = Callable[..., WorkerProcess]


@pytest.fixture
def spawn(open_tmp_path: Path, database_dsn: str) -> Iterator[Spawn]:
    """Start `financial ...` on the test's database (DATABASE_URL="" for the embedded one)."""
    started: list[WorkerProcess] = []

    def start(*args: str, **env: str) -> WorkerProcess:
        env = {"TEST_MARKS_DIR": str(open_tmp_path), "DATABASE_URL": database_dsn, **env}
        proc = WorkerProcess(*args, env=env, cwd=open_tmp_path)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


# Signal handling is the event loop's (loop.add_signal_handler): drained on both loops.
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_sigterm_drains_a_job_that_honours_stopping_and_exits_0(
    spawn: Spawn, open_tmp_path: Path, loop: str
) -> None:
    worker = spawn("worker", **JOBS, WORKER_JOBS__BATCHES__ENABLED="true", WORKER_EVENT_LOOP=loop)
    assert worker.wait_event("worker_started", timeout_s=20)["event_loop"] == loop
    worker.wait_event("job_started", job="batches", timeout_s=20)
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit() == 0
    names = [e["event"] for e in worker.events]
    assert names.index("shutdown_requested") < names.index("drain_finished")
    assert worker.wait_event("job_succeeded", job="batches")
    assert (open_tmp_path / "batches_stopped_early.log").exists()
    # No tick is started after the signal.
    after = names[names.index("shutdown_requested") :]
    assert "job_started" not in after


def test_sigint_interrupts_a_stubborn_job_at_the_shutdown_timeout_and_exits_1(
    spawn: Spawn,
) -> None:
    worker = spawn(
        "worker",
        **JOBS,
        WORKER_JOBS__STUBBORN__ENABLED="true",
        WORKER_SHUTDOWN_TIMEOUT_SECONDS="1",
    )
    worker.wait_event("job_started", job="stubborn")
    worker.signal(signal.SIGINT)
    assert worker.wait_exit() == 1
    interrupted = worker.wait_event("job_interrupted", job="stubborn")
    assert "shutdown" in interrupted["reason"]
    assert worker.wait_event("drain_finished")["interrupted"] >= 1


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_second_signal_cancels_at_once(spawn: Spawn, loop: str) -> None:
    worker = spawn(
        "worker",
        **JOBS,
        WORKER_JOBS__STUBBORN__ENABLED="true",
        WORKER_SHUTDOWN_TIMEOUT_SECONDS="120",
        WORKER_EVENT_LOOP=loop,
    )
    worker.wait_event("job_started", job="stubborn")
    worker.signal(signal.SIGTERM)
    worker.wait_event("drain_started")
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit(timeout_s=15) == 1
    assert worker.wait_event("shutdown_forced")


def test_blocking_job_runs_on_the_embedded_database_and_the_worker_stops_cleanly(
    spawn: Spawn, open_tmp_path: Path
) -> None:
    # DATABASE_URL empty: the worker starts its embedded PostgreSQL, as `make run` does.
    worker = spawn("worker", **JOBS, WORKER_JOBS__BLOCKING__ENABLED="true", DATABASE_URL="")
    worker.wait_event("job_succeeded", job="blocking")
    worker.wait_event("job_succeeded", job="tick")
    assert worker.wait_event("embedded_database_started")["data_dir"].startswith(str(open_tmp_path))
    # The LISTEN connection is one of the pool's here; given back before the pool closes.
    assert worker.wait_event("notification_listener_started")["channels"] == [
        "financial_job_settings",
        "financial_run_requests",
    ]
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit() == 0
    closed = [e["client"] for e in worker.events if e["event"] == "client_closed"]
    assert closed.index("notifications") < closed.index("postgres")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WORKER_MAX_CONCURRENT_JOBS": "ten"}, "WORKER_MAX_CONCURRENT_JOBS"),
        ({**JOBS, "WORKER_JOBS__TICK__SCHEDULE": "61 * * * *"}, "'tick'"),
        ({"WORKER_JOB_MODULES": "tests.fixtures.no_such_module"}, "no_such_module"),
        ({**JOBS, "WORKER_JOBS__NOPE__ENABLED": "true"}, "'nope'"),
    ],
)
def test_configuration_errors_exit_78_before_anything_starts(
    spawn: Spawn, env: dict[str, str], expected: str
) -> None:
    worker = spawn("worker", **env)
    assert worker.wait_exit(timeout_s=20) == 78
    err = worker.stderr()
    assert expected in err
    assert len(err.strip().splitlines()) == 1, err
    assert not any(e.get("event") == "worker_started" for e in worker.events)


def test_jobs_run_unknown_name_exits_2_with_the_known_names(spawn: Spawn) -> None:
    worker = spawn("jobs", "run", "nope", **JOBS)
    assert worker.wait_exit() == 2
    err = worker.stderr()
    assert "nope" in err and "tick" in err and "stubborn" in err
