"""The process executor: results, exceptions with their traceback, termination at cancel.

These start real child processes (forked by the fork server, ~10 ms each): what is under test
is the process boundary itself. No test waits for a tick.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from financial.pkg.jobs import Job, JobContext, Trigger
from financial.pkg.scheduler.executors import JobProcessDied, JobProcessError, ProcessExecutor
from tests.fixtures import executor_jobs
from tests.fixtures.executor_jobs import PidJob
from tests.unit.scheduling import T0

GRACE_S = 0.3
WAIT_S = 10.0


def ctx(job: str, run_id: str = "run-1", stopping: asyncio.Event | None = None) -> JobContext:
    return JobContext(
        job_name=job,
        run_id=run_id,
        scheduled_at=T0,
        attempt=1,
        deadline=T0 + timedelta(seconds=30),
        trigger=Trigger.SCHEDULE,
        log=structlog.get_logger().bind(),
        stopping=stopping or asyncio.Event(),
    )


@pytest.fixture
async def executor() -> AsyncIterator[ProcessExecutor]:
    processes = ProcessExecutor(kill_grace_s=GRACE_S)
    await processes.start([executor_jobs.process_quick])
    yield processes
    await processes.close()
    assert processes.running_children == 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def until_file(path: Path) -> None:
    """Wait for the child to write `path` (polled on a thread: the loop stays free)."""

    def poll() -> bool:
        deadline = time.monotonic() + WAIT_S
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        return path.exists()

    assert await asyncio.to_thread(poll), path


async def test_a_job_runs_in_a_child_process(executor: ProcessExecutor, tmp_path: Path) -> None:
    await executor.run(PidJob(tmp_path), ctx("pid_job"))
    pid = int((tmp_path / "run-1.pid").read_text())
    assert pid != os.getpid()
    assert not alive(pid)
    assert executor.running_children == 0


async def test_an_async_job_runs_in_a_child_with_its_own_loop(executor: ProcessExecutor) -> None:
    await executor.run(executor_jobs.process_async, ctx("process_async"))


async def test_the_childs_exception_comes_back_with_its_type_and_traceback(
    executor: ProcessExecutor,
) -> None:
    with pytest.raises(JobProcessError) as caught:
        await executor.run(executor_jobs.process_raises, ctx("process_raises"))
    error = caught.value
    assert type(error).__name__ == "LookupError"  # what the run's record will say
    assert str(error) == "no rate for process_raises"
    assert "in process_raises" in error.remote_traceback
    assert "LookupError: no rate for process_raises" in error.remote_traceback
    assert str(error.__cause__) == error.remote_traceback


async def test_system_exit_in_the_child_is_the_jobs_failure(executor: ProcessExecutor) -> None:
    with pytest.raises(JobProcessError) as caught:
        await executor.run(executor_jobs.process_exits, ctx("process_exits"))
    assert type(caught.value).__name__ == "SystemExit"
    assert isinstance(caught.value, Exception)  # recovery records it `failed`


async def test_a_child_killed_by_a_signal_is_a_failure_naming_it(
    executor: ProcessExecutor,
) -> None:
    with pytest.raises(JobProcessDied, match="SIGKILL"):
        await executor.run(executor_jobs.process_dies, ctx("process_dies"))


async def test_a_thread_left_running_does_not_hold_the_child(executor: ProcessExecutor) -> None:
    async with asyncio.timeout(GRACE_S):  # well under the grace: the child left by itself
        await executor.run(executor_jobs.process_leaves_thread, ctx("process_leaves_thread"))


async def run_then_cancel(executor: ProcessExecutor, job: Job, tmp_path: Path) -> int:
    task = asyncio.ensure_future(executor.run(job, ctx("pid_job", "run-c")))
    await until_file(tmp_path / "run-c.ready")
    pid = int((tmp_path / "run-c.pid").read_text())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return pid


async def test_cancel_sends_sigterm_then_sigkill_to_a_child_that_ignores_it(
    executor: ProcessExecutor, tmp_path: Path
) -> None:
    loop = asyncio.get_running_loop()
    with capture_logs() as logs:
        started = loop.time()
        pid = await run_then_cancel(executor, PidJob(tmp_path, "ignore_sigterm"), tmp_path)
        took_s = loop.time() - started
    # The await ended only once the child was gone, after the grace.
    assert not alive(pid)
    assert took_s >= GRACE_S
    killed = [e for e in logs if e["event"] == "job_process_killed"]
    assert len(killed) == 1 and killed[0]["pid"] == pid and killed[0]["run_id"] == "run-c"
    assert executor.running_children == 0


async def test_cancel_sets_stopping_in_the_child_which_may_return_early(
    executor: ProcessExecutor, tmp_path: Path
) -> None:
    with capture_logs() as logs:
        pid = await run_then_cancel(executor, PidJob(tmp_path, "poll_stopping"), tmp_path)
    assert (tmp_path / "run-c.stopped").exists()
    assert not alive(pid)
    assert [e["event"] for e in logs if e["event"].startswith("job_process")] == [
        "job_process_terminated"
    ]


async def test_the_workers_stopping_reaches_the_child(
    executor: ProcessExecutor, tmp_path: Path
) -> None:
    stopping = asyncio.Event()
    run = asyncio.ensure_future(
        executor.run(PidJob(tmp_path, "poll_stopping"), ctx("pid_job", "run-s", stopping))
    )
    await until_file(tmp_path / "run-s.ready")
    stopping.set()  # the drain began: the job finishes by itself
    await asyncio.wait_for(run, WAIT_S)
    assert (tmp_path / "run-s.stopped").exists()


async def test_close_stops_the_children_still_running(tmp_path: Path) -> None:
    processes = ProcessExecutor(kill_grace_s=GRACE_S)
    run = asyncio.ensure_future(processes.run(PidJob(tmp_path, "sleep"), ctx("pid_job", "run-x")))
    await until_file(tmp_path / "run-x.ready")
    pid = int((tmp_path / "run-x.pid").read_text())
    await processes.close()
    assert not alive(pid)
    # Its SIGTERM only set `ctx.stopping`, which this job does not read: SIGKILL after the grace.
    with pytest.raises(JobProcessDied, match="SIGKILL"):
        await asyncio.wait_for(run, WAIT_S)
    assert processes.running_children == 0


async def test_a_run_started_while_draining_sees_stopping_set(
    executor: ProcessExecutor, tmp_path: Path
) -> None:
    stopping = asyncio.Event()
    stopping.set()
    await asyncio.wait_for(
        executor.run(PidJob(tmp_path, "poll_stopping"), ctx("pid_job", "run-d", stopping)),
        WAIT_S,
    )
    assert (tmp_path / "run-d.stopped").exists()


async def test_a_run_cancelled_again_while_its_child_is_stopped_kills_it_at_once(
    tmp_path: Path,
) -> None:
    # The run timed out (first cancel: SIGTERM, grace), then the shutdown deadline passed
    # (second cancel): no more grace, and the run still ends only once its child is gone.
    processes = ProcessExecutor(kill_grace_s=WAIT_S)
    job = PidJob(tmp_path, "ignore_sigterm")
    task = asyncio.ensure_future(processes.run(job, ctx("pid_job", "run-c")))
    await until_file(tmp_path / "run-c.ready")
    pid = int((tmp_path / "run-c.pid").read_text())
    loop = asyncio.get_running_loop()
    started = loop.time()
    task.cancel()
    await asyncio.sleep(0.05)
    assert alive(pid) and not task.done()  # in its grace
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert loop.time() - started < WAIT_S / 2
    assert not alive(pid)
    assert processes.running_children == 0


async def test_at_the_drain_deadline_a_child_that_had_sigterm_is_killed_at_once(
    tmp_path: Path,
) -> None:
    processes = ProcessExecutor(kill_grace_s=WAIT_S)
    stopping = asyncio.Event()
    task = asyncio.ensure_future(
        processes.run(PidJob(tmp_path, "ignore_sigterm"), ctx("pid_job", "run-c", stopping))
    )
    await until_file(tmp_path / "run-c.ready")
    pid = int((tmp_path / "run-c.pid").read_text())
    stopping.set()  # the drain began: the child is sent SIGTERM, which it ignores
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with capture_logs() as logs:
        task.cancel()  # the shutdown deadline
        with pytest.raises(asyncio.CancelledError):
            await task
    assert loop.time() - started < WAIT_S / 2
    assert not alive(pid)
    assert [e["event"] for e in logs if e["event"].startswith("job_process")] == [
        "job_process_killed"
    ]


async def test_close_kills_what_is_left_without_a_second_grace(tmp_path: Path) -> None:
    processes = ProcessExecutor(kill_grace_s=WAIT_S)
    run = asyncio.ensure_future(
        processes.run(PidJob(tmp_path, "ignore_sigterm"), ctx("pid_job", "run-x"))
    )
    await until_file(tmp_path / "run-x.ready")
    pid = int((tmp_path / "run-x.pid").read_text())
    loop = asyncio.get_running_loop()
    started = loop.time()
    await processes.close()
    assert loop.time() - started < WAIT_S / 2
    assert not alive(pid)
    with pytest.raises(JobProcessDied, match="SIGKILL"):
        await asyncio.wait_for(run, WAIT_S)
