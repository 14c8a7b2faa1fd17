"""`financial jobs set/reset/audit/list` against a real PostgreSQL, without workers: values are
validated before anything is stored (exit 2, the message of registration), every change is
audited with who and why, and `jobs list` shows the effective values and their sources."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.integration.job_settings_cli import financial

pytestmark = pytest.mark.integration


async def stored(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        settings = await conn.fetchval("SELECT count(*) FROM job_settings")
        audit = await conn.fetchval("SELECT count(*) FROM job_settings_audit")
        return settings, audit
    finally:
        await conn.close()


async def test_an_invalid_schedule_is_refused_with_the_message_of_start(
    database_dsn: str, tmp_path: Path
) -> None:
    refused = financial(database_dsn, tmp_path, "jobs", "set", "probe", "--schedule", "61 * * * *")
    at_start = financial(
        database_dsn, tmp_path, "jobs", "names", WORKER_JOBS__PROBE__SCHEDULE="61 * * * *"
    )
    assert refused.returncode == 2, refused.stderr
    assert at_start.returncode == 78
    # "financial: configuration error: job 'probe': schedule '61 * * * *': ..." at start.
    message = at_start.stderr.strip().removeprefix("financial: configuration error: ")
    assert message.startswith("job 'probe': schedule '61 * * * *': ")
    assert refused.stderr.strip() == f"financial: {message}; nothing stored"
    assert await stored(database_dsn) == (0, 0)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--timeout", "0"], "job 'probe': timeout 0.0: expected a number of seconds > 0"),
        (["--timeout", "soon"], "--timeout 'soon': expected a number of seconds > 0"),
        (["--calendar", "ATLANTIS"], "job 'probe': unknown calendar 'ATLANTIS'"),
        ([], "jobs set probe: nothing to set; expected at least one of --schedule"),
        (["--enabled", "maybe"], "argument --enabled: invalid choice: 'maybe'"),
        (
            ["--alert-after", "-5"],
            "job 'probe': alert_after -5.0: expected a number of seconds >= 0 (0 turns the "
            "job's alert off; at most 31622400, 366 days); nothing stored",
        ),
        (["--alert-after", "1e12"], "job 'probe': alert_after 1000000000000.0: expected"),
        (["--alert-after", "soon"], "--alert-after 'soon': expected a number of seconds >= 0"),
    ],
)
async def test_bad_values_exit_2_naming_them_and_store_nothing(
    database_dsn: str, tmp_path: Path, args: list[str], expected: str
) -> None:
    result = financial(database_dsn, tmp_path, "jobs", "set", "probe", *args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert await stored(database_dsn) == (0, 0)


async def test_an_unknown_job_is_refused_naming_the_known_ones(
    database_dsn: str, tmp_path: Path
) -> None:
    result = financial(database_dsn, tmp_path, "jobs", "set", "nope", "--enabled", "false")
    assert result.returncode == 2
    assert "unknown job 'nope'; known jobs: database_cleanup, probe, report_generator" in (
        result.stderr
    )
    assert await stored(database_dsn) == (0, 0)


async def test_set_reset_and_audit(database_dsn: str, tmp_path: Path) -> None:
    first = financial(
        database_dsn,
        tmp_path,
        "jobs",
        "set",
        "probe",
        "--schedule",
        "*/5 * * * *",
        "--timeout",
        "12",
        "--reason",
        "incident 42",
        "--by",
        "ann",
    )
    assert first.returncode == 0, first.stderr
    assert "schedule='*/5 * * * *'" in first.stdout
    second = financial(database_dsn, tmp_path, "jobs", "set", "probe", "--enabled", "false")
    assert second.returncode == 0, second.stderr

    listed = financial(database_dsn, tmp_path, "jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    probe = next(row for row in json.loads(listed.stdout) if row["name"] == "probe")
    assert (probe["schedule"], probe["timeout_s"], probe["enabled"]) == ("*/5 * * * *", 12, False)
    assert probe["sources"] == {
        "schedule": "runtime",
        "timeout": "runtime",
        "enabled": "runtime",
        "calendar": "default",
        "alert_after": "default",
    }
    table = financial(database_dsn, tmp_path, "jobs", "list")
    assert "*/5 * * * * [runtime]" in table.stdout

    reset = financial(
        database_dsn, tmp_path, "jobs", "reset", "probe", "--reason", "fixed", "--by", "bob"
    )
    assert reset.returncode == 0, reset.stderr
    listed = financial(database_dsn, tmp_path, "jobs", "list", "--json")
    probe = next(row for row in json.loads(listed.stdout) if row["name"] == "probe")
    assert (probe["schedule"], probe["enabled"]) == ("@every 1h", True)
    assert probe["sources"]["schedule"] == "code"

    audit = financial(database_dsn, tmp_path, "jobs", "audit", "probe", "--json")
    assert audit.returncode == 0, audit.stderr
    entries = json.loads(audit.stdout)
    assert [(e["action"], e["by"], e["reason"]) for e in entries] == [
        ("reset", "bob", "fixed"),
        ("set", entries[1]["by"], None),
        ("set", "ann", "incident 42"),
    ]
    assert "@" in entries[1]["by"]  # the OS user@host when --by is not given
    fields = ["schedule", "timeout_s", "enabled", "calendar", "alert_after_s"]
    assert entries[2]["old"] == dict.fromkeys(fields)
    assert entries[2]["new"]["schedule"] == "*/5 * * * *"
    assert entries[0]["new"] == dict.fromkeys(fields)
    table = financial(database_dsn, tmp_path, "jobs", "audit", "probe")
    assert "enabled: unset -> false" in table.stdout
    assert await stored(database_dsn) == (0, 3)


async def test_alert_after_set_listed_audited_and_reset(database_dsn: str, tmp_path: Path) -> None:
    def probe_row(**env: str) -> dict[str, Any]:
        listed = financial(database_dsn, tmp_path, "jobs", "list", "--json", **env)
        assert listed.returncode == 0, listed.stderr
        row: dict[str, Any] = next(r for r in json.loads(listed.stdout) if r["name"] == "probe")
        return row

    env = {"WORKER_JOBS__PROBE__ALERT_AFTER_SECONDS": "7200"}
    before = probe_row(**env)
    assert before["alert_after_s"] == 7200
    assert before["sources"]["alert_after"] == "env"

    tuned = financial(
        database_dsn, tmp_path, "jobs", "set", "probe", "--alert-after", "3600", **env
    )
    assert tuned.returncode == 0, tuned.stderr
    assert "probe: alert_after=3600s (runtime)" in tuned.stdout
    row = probe_row(**env)
    assert row["alert_after_s"] == 3600
    assert row["sources"]["alert_after"] == "runtime"
    assert "3600s [runtime]" in financial(database_dsn, tmp_path, "jobs", "list").stdout

    off = financial(database_dsn, tmp_path, "jobs", "set", "probe", "--alert-after", "0", **env)
    assert off.returncode == 0, off.stderr
    assert "probe: alert_after=off (runtime)" in off.stdout
    row = probe_row(**env)
    assert (row["alert_after_s"], row["sources"]["alert_after"]) == (None, "runtime")
    assert "off [runtime]" in financial(database_dsn, tmp_path, "jobs", "list").stdout

    reset = financial(database_dsn, tmp_path, "jobs", "reset", "probe", **env)
    assert reset.returncode == 0, reset.stderr
    assert "alert_after=off" in reset.stdout
    assert probe_row(**env)["alert_after_s"] == 7200

    audit = financial(database_dsn, tmp_path, "jobs", "audit", "probe")
    assert "alert_after: 3600s -> off" in audit.stdout
    assert "alert_after: unset -> 3600s" in audit.stdout
    assert "alert_after: off -> unset" in audit.stdout
    entries = json.loads(
        financial(database_dsn, tmp_path, "jobs", "audit", "probe", "--json").stdout
    )
    assert [e["new"]["alert_after_s"] for e in entries] == [None, 0, 3600]


async def test_jobs_run_honours_the_runtime_timeout(database_dsn: str, tmp_path: Path) -> None:
    assert (
        financial(database_dsn, tmp_path, "jobs", "set", "probe", "--timeout", "7").returncode == 0
    )
    result = financial(database_dsn, tmp_path, "jobs", "run", "probe")
    assert result.returncode == 0, result.stderr
    assert "probe: succeeded" in result.stdout
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    applied = [e for e in events if e.get("event") == "job_settings_applied"]
    assert applied and applied[0]["runtime_timeout_s"] == 7.0


async def test_a_database_without_the_migration_says_to_migrate(
    empty_database_dsn: str, tmp_path: Path
) -> None:
    result = financial(
        empty_database_dsn,
        tmp_path,
        "jobs",
        "set",
        "probe",
        "--enabled",
        "false",
        WORKER_AUTO_MIGRATE="false",
    )
    assert result.returncode == 1
    assert 'relation "job_settings" does not exist' in result.stderr
    assert "run `financial migrate`" in result.stderr
    assert "Traceback" not in result.stderr
