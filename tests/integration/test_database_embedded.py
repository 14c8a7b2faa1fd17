"""The embedded PostgreSQL (pgserver) used when no database is configured."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from financial.pkg.database import EmbeddedPostgresError, migrate, start_embedded_async
from tests.integration.worker_process import FINANCIAL, REPO, WorkerProcess

pytestmark = pytest.mark.integration


async def test_embedded_server_starts_migrates_and_stops(open_tmp_path: Path) -> None:
    server = await start_embedded_async(open_tmp_path / "postgres")
    try:
        assert server.dsn.startswith("postgresql://")
        conn = await asyncpg.connect(server.dsn)
        try:
            assert len(await migrate(conn)) >= 3
        finally:
            await conn.close()
    finally:
        server.stop()
        server.stop()  # idempotent

    with pytest.raises((OSError, asyncpg.PostgresError)):
        await asyncpg.connect(server.dsn, timeout=3)


async def test_missing_pgserver_says_how_to_install_it(
    open_tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pgserver", None)  # makes `import pgserver` fail

    with pytest.raises(EmbeddedPostgresError, match=r"financial\[embedded\]"):
        await start_embedded_async(open_tmp_path / "postgres")


async def test_a_cli_command_beside_a_running_server_leaves_it_running_and_says_so(
    open_tmp_path: Path,
) -> None:
    # This process plays the worker that started the embedded server; `financial migrate`
    # attaches to it, as a CLI run beside `make run` does.
    server = await start_embedded_async(open_tmp_path / "postgres")
    try:
        cli = WorkerProcess(
            "migrate",
            cwd=open_tmp_path,
            env={"DATABASE_URL": "", "WORKER_DATA_DIR": str(open_tmp_path), "LOG_LEVEL": "DEBUG"},
        )
        assert cli.wait_exit(timeout_s=120) == 0, cli.stderr()
        names = [e["event"] for e in cli.events]
        assert "embedded_postgres_stopped" not in names
        detached = cli.wait_event("embedded_postgres_detached")
        assert os.getpid() in detached["still_used_by_pids"]
        conn = await asyncpg.connect(server.dsn, timeout=5)  # still running
        await conn.close()
    finally:
        server.stop()


async def test_a_report_command_on_the_embedded_server_prints_its_report_alone(
    open_tmp_path: Path,
) -> None:
    # `make run` warned that the embedded database is for trying the worker out; a command run
    # beside it says so again only when asked for its INFO lines.
    server = await start_embedded_async(open_tmp_path / "postgres")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO),
        "HOME": str(open_tmp_path),
        "DATABASE_URL": "",
        "WORKER_DATA_DIR": str(open_tmp_path),
        "LOG_FORMAT": "json",
    }

    def history(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [FINANCIAL, "jobs", "history", "database_cleanup"],
            cwd=open_tmp_path,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    try:
        quiet = await asyncio.to_thread(history)
        assert quiet.returncode == 0, quiet.stderr
        assert quiet.stdout == "no runs recorded for database_cleanup\n"
        assert "embedded_database_started" not in quiet.stderr
        told = await asyncio.to_thread(history, LOG_LEVEL="DEBUG")
        [started] = [
            json.loads(line)
            for line in told.stderr.splitlines()
            if "embedded_database_started" in line
        ]
        assert started["level"] == "info"
    finally:
        server.stop()
