"""Running `financial jobs set/reset/audit/list` as a user does, against a test's database."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.integration.worker_process import FINANCIAL, REPO

JOB_MODULES = "tests.fixtures.settings_jobs"


def cli_env(database_dsn: str, home: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": database_dsn,
        "WORKER_JOB_MODULES": JOB_MODULES,
        "LOG_FORMAT": "json",
        **extra,
    }


def financial(
    database_dsn: str, cwd: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """`financial ARGS` in a fresh process, its output captured."""
    return subprocess.run(
        [FINANCIAL, *args],
        cwd=cwd,
        env=cli_env(database_dsn, cwd, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
