"""A configuration error found while connecting stops a real worker with exit 78 and one line;
an outage is still retried. Against the real PostgreSQL (pgserver) of the harness."""

from __future__ import annotations

import signal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.integration.services import free_port
from tests.integration.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

PASSWORD = "s3cr3t-pw-7731"


def with_password(dsn: str, extra_query: str) -> str:
    """The test database's DSN with a password (trust authentication ignores it) and options."""
    parts = urlsplit(dsn)
    user = parts.username or "postgres"
    netloc = f"{user}:{PASSWORD}@{parts.hostname or ''}"
    query = "&".join(q for q in (parts.query, extra_query) if q)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


@pytest.mark.parametrize(
    ("option", "said"),
    [
        ("sslmode=bogus", "sslmode"),  # asyncpg: ClientConfigurationError
        ("no_such_setting=1", 'unrecognized configuration parameter "no_such_setting"'),
        ("statement_timeout=abc", 'invalid value for parameter "statement_timeout"'),
    ],
)
def test_a_database_url_with_a_bad_option_exits_78_with_one_masked_line(
    database_dsn: str, open_tmp_path: Path, option: str, said: str
) -> None:
    worker = WorkerProcess(
        "worker", cwd=open_tmp_path, env={"DATABASE_URL": with_password(database_dsn, option)}
    )
    try:
        assert worker.wait_exit(timeout_s=30) == 78
    finally:
        worker.kill()
    err = worker.stderr()
    [line] = err.strip().splitlines()
    assert line.startswith("financial: configuration error: DATABASE_URL='postgresql://")
    assert ":***@" in line and said in line and "expected" in line
    assert PASSWORD not in err
    assert PASSWORD not in "".join(str(e) for e in worker.events)
    assert not any(e.get("event") == "database_unavailable" for e in worker.events)


def test_db_parts_that_cannot_form_a_dsn_name_the_db_variables(open_tmp_path: Path) -> None:
    env = {"DB_HOST": "[::1", "DB_USER": "app", "DB_PASSWORD": PASSWORD, "DB_NAME": "x"}
    worker = WorkerProcess("worker", cwd=open_tmp_path, env=env)
    try:
        assert worker.wait_exit(timeout_s=30) == 78
    finally:
        worker.kill()
    [line] = worker.stderr().strip().splitlines()
    assert "DB_HOST/DB_PORT/DB_USER/DB_PASSWORD/DB_NAME=" in line
    assert "Invalid IPv6 URL" in line and PASSWORD not in line


def test_a_rabbitmq_url_with_a_malformed_option_exits_78(
    database_dsn: str, open_tmp_path: Path
) -> None:
    url = f"amqp://guest:{PASSWORD}@127.0.0.1:{free_port()}/?heartbeat=abc"
    worker = WorkerProcess(
        "worker", cwd=open_tmp_path, env={"DATABASE_URL": database_dsn, "RABBITMQ_URL": url}
    )
    try:
        assert worker.wait_exit(timeout_s=30) == 78
    finally:
        worker.kill()
    [line] = worker.stderr().strip().splitlines()
    assert line.startswith("financial: configuration error: RABBITMQ_URL='amqp://guest:***@")
    assert "heartbeat='abc': expected a number" in line
    assert PASSWORD not in line


def test_a_database_that_is_not_there_is_still_an_outage(open_tmp_path: Path) -> None:
    dsn = f"postgresql://app:{PASSWORD}@127.0.0.1:{free_port()}/x"
    worker = WorkerProcess("worker", cwd=open_tmp_path, env={"DATABASE_URL": dsn})
    try:
        first = worker.wait_event("database_unavailable", timeout_s=20)
        worker.wait_event("dependency_unavailable", dependency="postgresql")
        # Retried, not fatal: a second attempt comes after the back-off.
        worker.wait_for(lambda e: e.get("event") == "database_unavailable" and e is not first)
        assert worker.proc.poll() is None
        worker.signal(signal.SIGTERM)
        assert worker.wait_exit(timeout_s=20) == 0
    finally:
        worker.kill()
    assert PASSWORD not in "".join(str(e) for e in worker.events)
    assert PASSWORD not in worker.stderr()
