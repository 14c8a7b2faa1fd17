"""A real worker running rogue jobs: blocking jobs that never return, jobs raising
`SystemExit`, `KeyboardInterrupt` or a `BaseException` of their own, a job blocking the loop.

The worker must take each as the job's failure (or timeout) and go on: its other jobs keep
running, `/livez` answers, SIGTERM ends it within the shutdown timeout plus a few seconds, and
the history has one final record per tick that says what happened.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.fixtures.fault_jobs import LOOP_HOG_BLOCK_S
from tests.integration.faults.conftest import SpawnWorker
from tests.integration.faults.harness import Checks, FaultWorker, livez, recovered, stop_and_check
from tests.integration.faults.pg_control import process_state
from tests.integration.faults.records import (
    assert_one_final_record_per_tick,
    history,
    last_tick,
    records,
    show,
    utcnow,
    wait_history_settled,
)

pytestmark = pytest.mark.integration

SECOND = timedelta(seconds=1)
# The threads of asyncio's default executor on this machine: min(32, cores + 4).
DEFAULT_POOL_THREADS = 6
# How long the blocking probe must keep succeeding once that many threads are stuck.
AFTER_SATURATION_S = 3.0


def wait_marks(worker: FaultWorker, job: str, event: str, count: int, bound_s: float) -> bool:
    """Wait until `job` left `count` marks of `event` (False past the bound or at an exit)."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline and worker.proc.poll() is None:
        if sum(1 for m in worker.marks_of(job) if m.event == event) >= count:
            return True
        time.sleep(0.1)
    return sum(1 for m in worker.marks_of(job) if m.event == event) >= count


def per_tick(
    checks: Checks, rows: list[dict[str, Any]], jobs: list[str], recorded_until: datetime
) -> None:
    """One final record per tick for each of `jobs` (every-second schedules)."""
    last = last_tick(recorded_until, SECOND)
    for job in jobs:
        mine = [r for r in rows if r["job"] == job]
        checks.run(
            f"one final record per tick ({job})",
            lambda mine=mine: assert_one_final_record_per_tick(mine, SECOND, last=last),  # type: ignore[misc]
        )


def test_blocking_jobs_that_never_return_starve_no_other_job_nor_the_exit(
    fault_dsn: str, spawn_worker: SpawnWorker, figures: dict[str, Any]
) -> None:
    checks = Checks("a blocking job that never returns (timeout 1 s, every second)")
    worker = spawn_worker(fault_dsn, ["hang", "blocking_probe", "heartbeat"])
    worker.started()
    saturated = wait_marks(worker, "hang", "started", DEFAULT_POOL_THREADS, bound_s=20)
    hung = [m for m in worker.marks_of("hang") if m.event == "started"]
    checks.that(
        saturated,
        f"only {len(hung)} runs of `hang` started within 20 s: a stuck thread held back the next",
    )
    # From here on, as many threads are stuck as the default executor has.
    since = datetime.fromtimestamp(hung[-1].at, UTC) if hung else utcnow()
    time.sleep(AFTER_SATURATION_S + 1.5)
    figures["hung_threads_at_check"] = sum(
        1 for m in worker.marks_of("hang") if m.event == "started"
    )
    checks.that(livez(worker.health_port) == 200, "/livez did not answer 200 with threads stuck")
    recorded_until = stop_and_check(worker, checks, figures)

    rows = records(fault_dsn, "hang", "blocking_probe", "heartbeat")
    figures["history_after_saturation"] = history(rows, since, recorded_until)
    probe_started = {m.run_id for m in worker.marks_of("blocking_probe") if m.event == "started"}
    probes = [
        r
        for r in rows
        if r["job"] == "blocking_probe"
        and since + SECOND <= r["scheduled_at"] <= since + AFTER_SATURATION_S * SECOND
    ]
    checks.that(
        any(r["status"] == "succeeded" and str(r["run_id"]) in probe_started for r in probes),
        f"no run of another blocking job succeeded once {DEFAULT_POOL_THREADS} threads were "
        f"stuck (ticks {since.isoformat()} + 1-{AFTER_SATURATION_S:g} s):\n{show(probes)}",
    )
    never_ran = [
        r for r in rows if r["job"] == "blocking_probe" and str(r["run_id"]) not in probe_started
    ]
    never_ran = [r for r in never_ran if r["status"] == "timed_out"]
    checks.that(
        not never_ran, f"blocking runs recorded timed_out that never ran:\n{show(never_ran)}"
    )
    hangs = [r for r in rows if r["job"] == "hang"]
    checks.that(
        all(r["status"] in ("timed_out", "interrupted") for r in hangs),
        f"runs of `hang` (sleeps an hour, timeout 1 s) recorded otherwise:\n{show(hangs)}",
    )
    per_tick(checks, rows, ["hang", "blocking_probe", "heartbeat"], recorded_until)
    checks.verify(worker, rows)


RAISING = [
    ("raise_system_exit", "SystemExit"),
    ("raise_base_exception", "FaultBaseError"),
    ("raise_keyboard_interrupt", "KeyboardInterrupt"),
]
RAISED_TICKS = 3


@pytest.mark.parametrize(("job", "error_type"), RAISING, ids=[e for _, e in RAISING])
def test_a_job_raising_a_base_exception_fails_and_the_worker_goes_on(
    fault_dsn: str, spawn_worker: SpawnWorker, figures: dict[str, Any], job: str, error_type: str
) -> None:
    checks = Checks(f"a job raising {error_type} every second")
    worker = spawn_worker(fault_dsn, [job, "heartbeat"])
    worker.started()
    ran = wait_marks(worker, job, "started", RAISED_TICKS, bound_s=RAISED_TICKS + 4)
    starts = [m for m in worker.marks_of(job) if m.event == "started"]
    figures["runs_started"] = len(starts)
    checks.that(
        worker.proc.poll() is None,
        f"the worker exited with {worker.proc.poll()} after its job raised {error_type}",
    )
    checks.that(ran, f"only {len(starts)} runs of {job} started in {RAISED_TICKS + 4} s")
    if starts:
        first_raise = datetime.fromtimestamp(starts[0].at, UTC)
        recovered(worker, checks, figures, fault_ended=first_raise, job="heartbeat")
    recorded_until = stop_and_check(worker, checks, figures)

    rows = records(fault_dsn, job, "heartbeat")
    raised = [r for r in rows if r["job"] == job]
    figures["history"] = history(rows, datetime.min.replace(tzinfo=UTC), recorded_until)
    started_ids = {m.run_id for m in starts}
    wrong = [
        r
        for r in raised
        if str(r["run_id"]) in started_ids
        and not (
            r["status"] == "failed" and error_type in f"{r['error_type']} {r['error_message']}"
        )
    ]
    checks.that(
        not wrong, f"runs that raised {error_type} not recorded failed with it:\n{show(wrong)}"
    )
    skipped = [r for r in raised if r["status"] == "skipped"]
    checks.that(
        not skipped, f"ticks of {job} skipped (a run that raised is over):\n{show(skipped)}"
    )
    per_tick(checks, rows, [job, "heartbeat"], recorded_until)
    checks.verify(worker, rows)


def test_an_async_job_blocking_the_event_loop_is_recorded_timed_out(
    fault_dsn: str, spawn_worker: SpawnWorker, figures: dict[str, Any]
) -> None:
    checks = Checks(f"an async job blocking the event loop {LOOP_HOG_BLOCK_S:g} s (timeout 2 s)")
    # A lease longer than the block: the run must end timed out, not lost with its lease.
    worker = spawn_worker(
        fault_dsn, ["loop_hog", "heartbeat"], env={"WORKER_RUN_LEASE_SECONDS": "15"}
    )
    worker.started()
    unblocked = wait_marks(worker, "loop_hog", "unblocked", 1, bound_s=LOOP_HOG_BLOCK_S + 10)
    assert unblocked, f"loop_hog never blocked the loop and came back\n{worker.tail()}"
    [block] = [m for m in worker.marks_of("loop_hog") if m.event == "unblocked"]
    hog_run = block.run_id
    fault_ended = datetime.fromtimestamp(block.at, UTC)
    recovered(worker, checks, figures, fault_ended=fault_ended, job="heartbeat")
    again = worker.succeeded_after("loop_hog", fault_ended, 5.0)
    checks.that(again is not None, "no later tick of loop_hog succeeded after the block")
    settled = wait_history_settled(fault_dsn, ["loop_hog", "heartbeat"], fault_ended, 10.0)
    figures["history_settled_s"] = settled
    recorded_until = stop_and_check(worker, checks, figures)

    rows = records(fault_dsn, "loop_hog", "heartbeat")
    window_start = fault_ended - timedelta(seconds=LOOP_HOG_BLOCK_S + 1)
    figures["history_of_fault_window"] = history(rows, window_start, fault_ended)
    hog = [r for r in rows if str(r["run_id"]) == hog_run]
    figures["blocking_run"] = [f"{r['status']} {r['duration_ms'] or 0:.0f} ms" for r in hog]
    checks.that(
        [r["status"] for r in hog] == ["timed_out"],
        f"the run that blocked the loop {LOOP_HOG_BLOCK_S:g} s past its 2 s timeout is not "
        f"recorded timed_out:\n{show(hog)}",
    )
    # The job held the loop for 6 s: a duration under its 2 s timeout is not its own time.
    checks.that(
        all((r["duration_ms"] or 0) >= 2000 for r in hog),
        f"the run that blocked the loop {LOOP_HOG_BLOCK_S:g} s is recorded shorter than its "
        f"2 s timeout:\n{show(hog)}",
    )
    false_skips = [
        r for r in rows if r["job"] == "heartbeat" and "overlap" in str(r["error_message"])
    ]
    checks.that(not false_skips, f"a 1 ms job recorded as overlap skips:\n{show(false_skips)}")
    per_tick(checks, rows, ["loop_hog", "heartbeat"], recorded_until)
    checks.verify(worker, rows)


# A process terminated at its timeout: SIGTERM, then SIGKILL after a grace; gone within this.
CHILD_GONE_BOUND_S = 8.0


def gone(pid: int) -> bool:
    """The process has ended (a zombie waiting for its parent counts as ended)."""
    return process_state(pid) in ("?", "Z")


def test_a_hung_blocking_job_on_the_process_executor_is_really_stopped(
    fault_dsn: str, spawn_worker: SpawnWorker, figures: dict[str, Any]
) -> None:
    checks = Checks('a blocking job that never returns, executor="process" (timeout 3 s)')
    worker = spawn_worker(
        fault_dsn,
        ["hang_in_process", "heartbeat"],
        env={"WORKER_JOB_MODULES": "tests.fixtures.fault_jobs,tests.fixtures.fault_process_jobs"},
    )
    worker.started()
    ran = wait_marks(worker, "hang_in_process", "started", 2, bound_s=14)
    starts = [m for m in worker.marks_of("hang_in_process") if m.event == "started"]
    checks.that(ran, f"only {len(starts)} runs of hang_in_process started within 14 s")
    in_worker = [m for m in starts if m.pid == worker.proc.pid]
    checks.that(not in_worker, "the job ran in the worker's own process, not in a child")
    children = [m for m in starts if m.pid != worker.proc.pid]
    stopped_after: list[float] = []
    for child in children:
        deadline = child.at + 3 + CHILD_GONE_BOUND_S
        while not gone(child.pid) and time.time() < deadline:
            time.sleep(0.1)
        if gone(child.pid):
            stopped_after.append(round(time.time() - child.at, 1))
    figures["child_gone_after_start_s"] = stopped_after
    checks.that(
        len(stopped_after) == len(children),
        f"{len(children) - len(stopped_after)} child processes of timed-out runs still alive "
        f"{CHILD_GONE_BOUND_S:g} s past their 3 s timeout",
    )
    recorded_until = stop_and_check(worker, checks, figures)
    left = [m.pid for m in children if not gone(m.pid)]
    checks.that(not left, f"job processes left running after the worker exited: {left}")

    rows = records(fault_dsn, "hang_in_process", "heartbeat")
    started_ids = {m.run_id for m in starts}
    hung = [r for r in rows if str(r["run_id"]) in started_ids]
    checks.that(
        bool(hung) and all(r["status"] in ("timed_out", "interrupted") for r in hung),
        f"runs of a job that never returns not recorded timed_out or interrupted:\n{show(hung)}",
    )
    beats = [r for r in rows if r["job"] == "heartbeat"]
    checks.run(
        "one final record per tick (heartbeat)",
        lambda: assert_one_final_record_per_tick(
            beats, SECOND, last=last_tick(recorded_until, SECOND)
        ),
    )
    checks.verify(worker, rows)
