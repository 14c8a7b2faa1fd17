"""A real worker whose PostgreSQL is frozen, stopped, or black-holed, then comes back.

Each scenario runs `heartbeat` (a 1 ms job every second, whose history shows whether ticks are
run and recorded) beside a job that is in the middle of a run when the fault begins. After the
fault: `/livez` answers 200 again, the jobs run again, the history settles with one final record
per tick, and SIGTERM ends the worker within its shutdown timeout plus a few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from tests.integration.faults.conftest import SpawnWorker
from tests.integration.faults.harness import (
    LEASE_S,
    Checks,
    FaultWorker,
    cpu_share,
    recovered,
    stop_and_check,
)
from tests.integration.faults.pg_control import FaultPostgres, process_state
from tests.integration.faults.records import (
    FINAL,
    assert_one_final_record_per_tick,
    history,
    last_tick,
    records,
    show,
    utcnow,
    wait_history_settled,
)
from tests.integration.faults.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

SECOND = timedelta(seconds=1)
FREEZE_S = 7.0  # longer than the 3 s lease, shorter than anything else's patience
DOWN_S = 5.0
BLACKHOLE_S = 8.0
# A lost run's lease has lapsed by the time the fault ends; the worker's sweep (every 5 s)
# then records it `abandoned`. Past this (from the end of the fault) the history must have
# settled.
SETTLE_BOUND_S = 5.0 + LEASE_S + 4.0
# An idle worker uses a few percent of a core; one spinning on a past deadline uses all of it.
MAX_CPU_SHARE = 0.5


def no_overlap_skips(rows: list[dict[str, Any]]) -> Callable[[], None]:
    """`heartbeat` takes 1 ms: a tick of it skipped for overlap is a false record."""

    def check() -> None:
        false = [
            r
            for r in rows
            if r["status"] == "skipped" and "overlap" in str(r["error_message"]).lower()
        ]
        assert not false, f"ticks of a 1 ms job recorded as overlap skips:\n{show(false)}"

    return check


def held_run_is_truthful(
    worker: FaultWorker, rows: list[dict[str, Any]], run_id: str
) -> Callable[[], None]:
    """The run that held its lease when the fault began: recorded `succeeded` only if its body
    really finished; recorded as lost (not `succeeded`, with a reason) if it was cancelled."""

    def check() -> None:
        found = [r for r in rows if str(r["run_id"]) == run_id]
        assert found, f"no record of the run {run_id} that held the lease"
        row = found[0]
        assert row["status"] in FINAL, f"the run that held the lease is left {row['status']}"
        finished = any(
            m.event == "finished" and m.run_id == run_id for m in worker.marks_of(row["job"])
        )
        assert row["status"] != "succeeded" or finished, (
            f"the run that held the lease is recorded succeeded, but its job never finished:\n"
            f"{show([row])}"
        )
        lost = [
            e
            for e in worker.events
            if e.get("event") in ("lease_lost", "job_lease_lost") and e.get("run_id") == run_id
        ]
        if lost:
            assert (
                row["status"] in ("abandoned", "interrupted", "failed") and row["error_message"]
            ), f"the run was cancelled for its lost lease, yet is recorded:\n{show([row])}"

    return check


def durations_are_the_jobs_own(
    rows: list[dict[str, Any]], job: str, low_ms: float, high_ms: float
) -> Callable[[], None]:
    """A run's duration is its job's own time, not the waits for the store around it."""

    def check() -> None:
        wrong = [
            r
            for r in rows
            if r["job"] == job
            and r["status"] == "succeeded"
            and not low_ms <= (r["duration_ms"] or 0) <= high_ms
        ]
        assert not wrong, (
            f"runs of {job} recorded outside {low_ms:g}-{high_ms:g} ms:\n{show(wrong)}"
        )

    return check


def database_fault(
    worker: FaultWorker,
    dsn: str,
    figures: dict[str, Any],
    checks: Checks,
    *,
    held_job: str,
    held_step: timedelta,
    inflict: Callable[[], None],
) -> list[dict[str, Any]]:
    """Start `inflict` while a run of `held_job` is in progress, check the recovery; the rows."""
    worker.started()
    held = worker.wait_event("job_started", job=held_job, timeout_s=15)
    fault_started = utcnow()
    inflict()
    fault_ended = utcnow()
    figures["fault_s"] = round((fault_ended - fault_started).total_seconds(), 2)

    recovered(worker, checks, figures, fault_ended=fault_ended, job="heartbeat")
    share = cpu_share(worker.proc.pid)
    figures["cpu_share_after_fault"] = None if share is None else round(share, 3)
    checks.that(
        share is None or share < MAX_CPU_SHARE,
        f"the worker used {share:.0%} of a core over 2 s after the fault (an idle worker uses "
        f"a few percent): a loop spinning?",
    )
    jobs = ["heartbeat", held_job]
    settled = wait_history_settled(dsn, jobs, fault_ended, SETTLE_BOUND_S)
    figures["history_settled_s"] = settled
    checks.that(
        settled is not None,
        f"runs of ticks up to the end of the fault still had no final status {SETTLE_BOUND_S:g} s "
        "after it, the worker running",
    )
    recorded_until = stop_and_check(worker, checks, figures)

    rows = records(dsn, *jobs)
    beats = [r for r in rows if r["job"] == "heartbeat"]
    holds = [r for r in rows if r["job"] == held_job]
    figures["history_of_fault_window"] = history(rows, fault_started, fault_ended)
    figures["held_run"] = next(
        (
            f"{r['status']}: {r['error_message']}"
            for r in holds
            if str(r["run_id"]) == held["run_id"]
        ),
        None,
    )
    checks.run(
        "one final record per tick (heartbeat)",
        lambda: assert_one_final_record_per_tick(
            beats, SECOND, last=last_tick(recorded_until, SECOND)
        ),
    )
    checks.run(
        f"one final record per tick ({held_job})",
        lambda: assert_one_final_record_per_tick(
            holds, held_step, last=last_tick(recorded_until, held_step)
        ),
    )
    checks.run("no false overlap skip", no_overlap_skips(beats))
    # `heartbeat` does nothing: a second of duration is time spent waiting for the store.
    checks.run("durations of heartbeat", durations_are_the_jobs_own(rows, "heartbeat", 0, 500))
    checks.run("the run that held the lease", held_run_is_truthful(worker, rows, held["run_id"]))
    return rows


def test_postgresql_frozen_longer_than_the_lease_while_a_run_holds_it(
    fault_postgres: FaultPostgres,
    fault_dsn: str,
    spawn_worker: SpawnWorker,
    figures: dict[str, Any],
) -> None:
    checks = Checks(f"PostgreSQL frozen (SIGSTOP) {FREEZE_S:g} s, lease {LEASE_S} s")
    worker = spawn_worker(fault_dsn, ["heartbeat", "lease_holder"])

    def freeze() -> None:
        with fault_postgres.frozen() as pids:
            states = {pid: process_state(pid) for pid in pids}
            assert len(pids) > 3 and set(states.values()) == {"T"}, f"not all stopped: {states}"
            time.sleep(FREEZE_S)

    rows = database_fault(
        worker,
        fault_dsn,
        figures,
        checks,
        held_job="lease_holder",
        held_step=5 * SECOND,
        inflict=freeze,
    )
    checks.verify(worker, rows)


def test_postgresql_stopped_and_started_again(
    fault_postgres: FaultPostgres,
    fault_dsn: str,
    spawn_worker: SpawnWorker,
    figures: dict[str, Any],
) -> None:
    checks = Checks(f"PostgreSQL stopped {DOWN_S:g} s and started again")
    worker = spawn_worker(fault_dsn, ["heartbeat", "steady"])

    def restart() -> None:
        time.sleep(0.3)  # into the 1 s run of `steady`
        fault_postgres.stop()
        time.sleep(DOWN_S)
        fault_postgres.start()

    rows = database_fault(
        worker,
        fault_dsn,
        figures,
        checks,
        held_job="steady",
        held_step=2 * SECOND,
        inflict=restart,
    )
    checks.run("durations of steady", durations_are_the_jobs_own(rows, "steady", 900, 2500))
    checks.verify(worker, rows)


def test_postgresql_traffic_black_holed_then_forwarded_again(
    fault_postgres: FaultPostgres,
    fault_db: str,
    fault_dsn: str,
    spawn_worker: SpawnWorker,
    figures: dict[str, Any],
) -> None:
    checks = Checks(f"PostgreSQL traffic black-holed {BLACKHOLE_S:g} s")
    with TcpProxy(fault_postgres.socket_path) as proxy:
        worker = spawn_worker(
            f"postgresql://postgres@{proxy.address}/{fault_db}", ["heartbeat", "lease_holder"]
        )

        def blackhole() -> None:
            proxy.blackhole()
            time.sleep(BLACKHOLE_S)
            proxy.forward()

        rows = database_fault(
            worker,
            fault_dsn,
            figures,
            checks,
            held_job="lease_holder",
            held_step=5 * SECOND,
            inflict=blackhole,
        )
    checks.verify(worker, rows)
