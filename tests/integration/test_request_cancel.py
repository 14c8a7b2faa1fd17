"""`jobs requests` and `jobs cancel` against real `financial worker` processes on PostgreSQL:
a cancelled request is never run, and a claimed one runs on to its end."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest

from tests.integration.test_run_requests import (
    JOB_MODULES,
    cli,
    cli_env,
    day,
    fetch,
    request_id_of,
)
from tests.integration.worker_process import FINANCIAL, WorkerProcess

pytestmark = pytest.mark.integration


def start_worker(spawned: list[WorkerProcess], dsn: str, cwd: Path) -> WorkerProcess:
    worker = WorkerProcess(
        "worker",
        cwd=cwd,
        env={
            "DATABASE_URL": dsn,
            "WORKER_JOB_MODULES": JOB_MODULES,
            "WORKER_ID": "solo",
            "WORKER_SHUTDOWN_TIMEOUT_SECONDS": "5",
        },
    )
    spawned.append(worker)
    worker.wait_event("notification_listener_started", timeout_s=20)
    return worker


def cli_in_background(dsn: str, cwd: Path, *args: str) -> subprocess.Popen[str]:
    """`financial ARGS` started as `cli` runs it, not waited for."""
    return subprocess.Popen(
        [FINANCIAL, *args],
        cwd=cwd,
        env=cli_env(dsn, cwd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def until_rows(dsn: str, query: str, n: int, timeout_s: float) -> list[asyncpg.Record]:
    """The rows of `query` once there are `n` of them (bounded wait)."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await fetch(dsn, query)
        if len(rows) >= n:
            return rows
        assert time.monotonic() < deadline, f"{query!r}: {len(rows)} row(s) after {timeout_s}s"
        await asyncio.sleep(0.1)


async def test_cancelled_backfill_ticks_are_never_run_by_a_worker_started_later(
    audited: str, open_tmp_path: Path, spawned: list[WorkerProcess]
) -> None:
    backfill = ["jobs", "backfill", "requested", "--from", day(0).isoformat()]
    queued = cli(audited, open_tmp_path, *backfill, "--to", day(3).isoformat())
    assert queued.returncode == 0, queued.stderr
    assert "4 backfill run(s) requested" in queued.stdout
    listed = cli(audited, open_tmp_path, "jobs", "requests", "requested")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:4] == ["REQUEST", "TICK", "TRIGGER", "STATE"]
    assert [line.split()[1] for line in lines[1:]] == [f"2026-01-0{n}" for n in (1, 2, 3, 4)]
    assert {line.split()[3:5] == ["backfill", "pending"] for line in lines[1:]} == {True}
    as_json = json.loads(
        cli(audited, open_tmp_path, "jobs", "requests", "requested", "--json").stdout
    )
    assert [datetime.fromisoformat(r["tick"]) for r in as_json] == [day(n) for n in range(4)]

    neither = cli(audited, open_tmp_path, "jobs", "cancel", "requested")
    assert neither.returncode == 2
    assert "expected --request ID" in neither.stderr
    malformed = cli(audited, open_tmp_path, "jobs", "cancel", "requested", "--request", "12ab")
    assert malformed.returncode == 2
    assert "--request '12ab': expected a request id" in malformed.stderr
    unknown = cli(audited, open_tmp_path, "jobs", "cancel", "nosuchjob", "--all")
    assert unknown.returncode == 2
    assert "nosuchjob" in unknown.stderr

    # A `trigger --wait` whose request is cancelled ends with who cancelled it, exit 1.
    waiting = cli_in_background(
        audited, open_tmp_path, "jobs", "trigger", "requested", "--wait", "--wait-timeout", "15"
    )
    try:
        [manual] = await until_rows(
            audited, "SELECT request_id FROM run_requests WHERE trigger = 'manual'", 1, 15
        )
        one = cli(
            audited, open_tmp_path, "jobs", "cancel", "requested", "--request",
            str(manual["request_id"]), "--by", "ops",
        )  # fmt: skip
        assert one.returncode == 0, one.stdout + one.stderr
        assert "requested: 1 pending request(s) cancelled" in one.stdout
        out, err = waiting.communicate(timeout=15)
    finally:
        waiting.kill()
    assert waiting.returncode == 1, out + err
    assert f"requested: cancelled by ops (request {manual['request_id']})" in out

    cancelled = cli(
        audited, open_tmp_path, "jobs", "cancel", "requested", "--all",
        "--trigger", "backfill", "--by", "ops", "--reason", "wrong range",
    )  # fmt: skip
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    assert "requested: 4 pending backfill request(s) cancelled" in cancelled.stdout
    rows = await fetch(
        audited,
        "SELECT state, status, cancelled_by, cancel_reason, finished_at IS NOT NULL AS ended "
        "FROM run_requests WHERE trigger = 'backfill'",
    )
    assert {tuple(r) for r in rows} == {("cancelled", None, "ops", "wrong range", True)}
    empty = cli(audited, open_tmp_path, "jobs", "requests", "requested")
    assert "requested: no open requests" in empty.stdout
    done_already = cli(
        audited, open_tmp_path, "jobs", "cancel", "requested", "--request",
        str(manual["request_id"]),
    )  # fmt: skip
    assert done_already.returncode == 1
    assert "cancelled already by ops" in done_already.stdout
    # The cancelled ticks are not queued any more: a backfill would ask for them again.
    again = cli(audited, open_tmp_path, *backfill, "--to", day(3).isoformat(), "--dry-run")
    assert len(again.stdout.split()) == 4

    start_worker(spawned, audited, open_tmp_path)
    # The worker runs what is asked of it now (a bounded wait) and nothing that was cancelled.
    ran = cli(
        audited, open_tmp_path, "jobs", "trigger", "requested", "--wait", "--wait-timeout", "15"
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    audit = await fetch(audited, "SELECT trigger FROM request_audit")
    assert [r["trigger"] for r in audit] == ["manual"]
    runs = await fetch(audited, "SELECT trigger FROM job_runs")
    assert [r["trigger"] for r in runs] == ["manual"]


async def test_cancel_all_leaves_the_claimed_request_running_to_its_end(
    audited: str, open_tmp_path: Path, spawned: list[WorkerProcess]
) -> None:
    start_worker(spawned, audited, open_tmp_path)
    release = open_tmp_path / "release"  # the claimed run goes on until the test says
    args = json.dumps({"until_file": str(release)})
    long = cli(audited, open_tmp_path, "jobs", "trigger", "requested", "--args", args)
    assert long.returncode == 0, long.stderr
    long_id = request_id_of(long.stdout)
    await until_rows(audited, "SELECT 1 FROM request_audit", 1, 15)  # it is running
    queued = cli(
        audited, open_tmp_path, "jobs", "backfill", "requested",
        "--from", day(0).isoformat(), "--to", day(2).isoformat(),
    )  # fmt: skip
    assert "3 backfill run(s) requested" in queued.stdout, queued.stderr
    listed = cli(audited, open_tmp_path, "jobs", "requests", "requested", "--json")
    states = [(r["trigger"], r["state"], r["claimed_by"]) for r in json.loads(listed.stdout)]
    assert states == [("manual", "claimed", "solo")] + [("backfill", "pending", None)] * 3

    cancelled = cli(audited, open_tmp_path, "jobs", "cancel", "requested", "--all")
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    assert "requested: 3 pending request(s) cancelled" in cancelled.stdout
    assert "1 request(s) claimed by a worker already, not cancelled" in cancelled.stdout
    assert "the job's timeout (20s)" in cancelled.stdout
    assert f"request {long_id} (tick " in cancelled.stdout and "claimed by solo" in cancelled.stdout
    only_claimed = cli(audited, open_tmp_path, "jobs", "cancel", "requested", "--all")
    assert only_claimed.returncode == 1  # nothing could be cancelled: the one left is claimed
    release.touch()

    [done] = await until_rows(
        audited, "SELECT status FROM run_requests WHERE state = 'done'", 1, 15
    )
    assert done["status"] == "succeeded"
    runs = await fetch(audited, "SELECT trigger, status FROM job_runs")
    assert [tuple(r) for r in runs] == [("manual", "succeeded")]
    states_now = await fetch(audited, "SELECT state, count(*) FROM run_requests GROUP BY state")
    assert sorted(tuple(r) for r in states_now) == [("cancelled", 3), ("done", 1)]
