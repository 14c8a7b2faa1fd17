"""A real `financial worker` under a fault, and what the fault tests assert on it.

Each scenario starts one worker with its health server on a free port, short schedules, the
shortest lease and a short shutdown timeout, inflicts its fault, and then checks the same four
things: `/livez` answers again within a bound after the fault ends, the jobs run again, SIGTERM
ends the process within the shutdown timeout plus a few seconds, and the history has exactly one
final record per tick. The checks are collected (`Checks`) rather than stopping at the first
failure, so one run shows every way the worker failed, with the rows and the last log events.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from financial.configs.job_override import job_key
from tests.integration.faults.records import remaining_s, show, utcnow
from tests.integration.services import free_port
from tests.integration.worker_process import WorkerProcess

LEASE_S = 3  # the shortest lease the settings accept
SHUTDOWN_TIMEOUT_S = 3
# SIGTERM must end the worker within its shutdown timeout plus this (closing the clients).
STOP_SLACK_S = 5
# After a fault ends: `/livez` answers 200, and a job succeeds again, within these.
LIVEZ_BOUND_S = 10.0
RUN_AGAIN_BOUND_S = 10.0
PROBE_TIMEOUT_S = 0.5


def livez(port: int, timeout_s: float = PROBE_TIMEOUT_S) -> int | None:
    """The status `/livez` answers within `timeout_s`, or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=timeout_s) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, TimeoutError):
        return None


def wait_livez_ok(port: int, bound_s: float) -> float | None:
    """Seconds until `/livez` answers 200 (probing every 100 ms), or None past `bound_s`."""
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < bound_s:
        if livez(port) == 200:
            return elapsed
        time.sleep(0.1)
    return None


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_share(pid: int, window_s: float = 2.0) -> float | None:
    """The share of one core the process used over `window_s`; None when it is gone."""
    try:
        before = cpu_seconds(pid)
        time.sleep(window_s)
        return (cpu_seconds(pid) - before) / window_s
    except (OSError, IndexError):
        return None


class Mark(NamedTuple):
    """One event a fault job wrote: what, which run, its tick, when (Unix time), which pid."""

    event: str
    run_id: str
    scheduled_at: datetime
    at: float
    pid: int


class FaultWorker(WorkerProcess):
    """`financial worker` with a health server, the fault jobs and short lease and shutdown."""

    def __init__(
        self,
        *,
        database_url: str,
        jobs: Sequence[str],
        marks: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.health_port = free_port()
        self.marks = marks
        full_env = {
            "DATABASE_URL": database_url,
            "WORKER_HEALTH_ADDR": f"127.0.0.1:{self.health_port}",
            "WORKER_RUN_LEASE_SECONDS": str(LEASE_S),
            "WORKER_SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_TIMEOUT_S),
            "WORKER_JOB_MODULES": "tests.fixtures.fault_jobs",
            "TEST_MARKS_DIR": str(marks),
            # DEBUG: the scenarios wait for `job_started`, which a run logs at DEBUG.
            "LOG_LEVEL": "DEBUG",
            **{f"WORKER_JOBS__{job_key(job).upper()}__ENABLED": "true" for job in jobs},
            **(env or {}),
        }
        super().__init__("worker", env=full_env, cwd=marks)
        # stderr is read as it comes: a worker writing tracebacks through an outage must never
        # block on a full pipe because of the harness.
        self._stderr_lines: list[str] = []
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr_lines.append(line)

    def stderr(self) -> str:
        return "".join(self._stderr_lines)

    def started(self, timeout_s: float = 60.0) -> None:
        """Wait until the worker runs its scheduler."""
        self.wait_event("worker_started", timeout_s=timeout_s)

    def succeeded_after(self, job: str, after: datetime, bound_s: float) -> dict[str, Any] | None:
        """The first `job_succeeded` of `job` for a tick after `after`, within `bound_s`."""

        def match(event: dict[str, Any]) -> bool:
            return (
                event.get("event") == "job_succeeded"
                and event.get("job") == job
                and datetime.fromisoformat(str(event.get("scheduled_at"))) > after
            )

        try:
            return self.wait_for(match, timeout_s=bound_s)
        except AssertionError:
            return None

    def stop(self) -> tuple[int | None, float]:
        """SIGTERM, then the exit code and seconds it took; None (and SIGKILL) past the bound."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        try:
            code: int | None = self.wait_exit(timeout_s=SHUTDOWN_TIMEOUT_S + STOP_SLACK_S)
        except subprocess.TimeoutExpired:
            code = None
            self.kill()
        return code, round(time.monotonic() - started, 2)

    def tail(self, count: int = 30) -> str:
        """The last log events, one per line, with the fields that tell what happened."""
        keys = ("job", "scheduled_at", "run_id", "reason", "error", "error_type", "status")
        lines = []
        for event in self.events[-count:]:
            fields = " ".join(f"{k}={event[k]!r}" for k in keys if k in event)
            lines.append(f"  {event.get('timestamp', '')} {event.get('event')} {fields}")
        err = self.stderr().strip().splitlines()[-15:]
        return "\n".join(
            ["last log events:", *lines, "stderr tail:", *(f"  {line}" for line in err)]
        )

    def marks_of(self, job: str) -> list[Mark]:
        """The marks `job` left (tests/fixtures/fault_jobs.py), oldest first."""
        path = self.marks / f"{job}.log"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            event, run_id, tick, at, pid = line.split()
            out.append(Mark(event, run_id, datetime.fromisoformat(tick), float(at), int(pid)))
        return out


class Checks:
    """Named checks of one scenario, collected so that one run reports every failure."""

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        self.failures: list[str] = []

    def that(self, ok: bool, what: str, detail: object = "") -> bool:
        """Record a failed check when `ok` is false; return `ok`."""
        if not ok:
            self.failures.append(f"{what}" + (f"\n{detail}" if detail != "" else ""))
        return ok

    def run(self, what: str, check: Callable[[], None]) -> bool:
        """Run an assertion function as one named check."""
        try:
            check()
        except AssertionError as exc:
            # pytest appends its rewritten expression; the message already says what failed.
            self.failures.append(f"{what}: {str(exc).split(chr(10) + 'assert ')[0]}")
            return False
        return True

    def verify(self, worker: FaultWorker, rows: Sequence[Mapping[str, Any]] = ()) -> None:
        """Fail with every failed check, the rows and the worker's last log events."""
        if not self.failures:
            return
        numbered = [f"{n}. {failure}" for n, failure in enumerate(self.failures, 1)]
        raise AssertionError(
            "\n".join(
                [
                    f"{self.scenario}: {len(self.failures)} check(s) failed",
                    *numbered,
                    "job_runs:",
                    show(rows)[-6000:],
                    worker.tail(),
                ]
            )
        )


# The ticks up to this long before SIGTERM must have been claimed and recorded.
RECORDED_BEFORE_STOP = timedelta(seconds=1.5)


def stop_and_check(worker: FaultWorker, checks: Checks, figures: dict[str, Any]) -> datetime:
    """SIGTERM ends the worker within its shutdown timeout plus a few seconds, with 0 or 1.

    Returns the instant SIGTERM was sent, less `RECORDED_BEFORE_STOP`: every tick up to it must
    be in the history (`last_tick`).
    """
    alive = worker.proc.poll() is None
    sent = utcnow()
    checks.that(
        alive, f"the worker was no longer running before SIGTERM (exit {worker.proc.poll()})"
    )
    code, took_s = worker.stop()
    figures["sigterm_s"] = took_s
    figures["exit_code"] = code
    if alive:
        checks.that(
            code is not None,
            f"SIGTERM did not end the worker within {SHUTDOWN_TIMEOUT_S + STOP_SLACK_S} s "
            f"(shutdown timeout {SHUTDOWN_TIMEOUT_S} s + {STOP_SLACK_S} s); it was killed",
        )
        checks.that(code in (0, 1, None), f"the worker exited {code} after SIGTERM, not 0 or 1")
    return sent - RECORDED_BEFORE_STOP


def recovered(
    worker: FaultWorker,
    checks: Checks,
    figures: dict[str, Any],
    *,
    fault_ended: datetime,
    job: str,
) -> None:
    """After the fault: `/livez` answers 200 again and `job` succeeds again, each within its
    bound counted from the end of the fault."""
    livez_s = wait_livez_ok(worker.health_port, remaining_s(fault_ended, LIVEZ_BOUND_S))
    if livez_s is not None:
        livez_s = (utcnow() - fault_ended).total_seconds()
    figures["livez_after_fault_s"] = None if livez_s is None else round(livez_s, 2)
    checks.that(
        livez_s is not None,
        f"/livez did not answer 200 within {LIVEZ_BOUND_S:g} s after the fault ended "
        f"(last answer: {livez(worker.health_port)})",
    )
    event = worker.succeeded_after(job, fault_ended, remaining_s(fault_ended, RUN_AGAIN_BOUND_S))
    if event is not None:
        lag = (datetime.fromisoformat(event["timestamp"]) - fault_ended).total_seconds()
        figures[f"{job}_succeeded_after_fault_s"] = round(lag, 2)
    checks.that(
        event is not None,
        f"no {job} run succeeded for a tick after the fault ended, within {RUN_AGAIN_BOUND_S:g} s",
    )
