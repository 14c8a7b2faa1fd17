"""Fixtures of the fault suite: a PostgreSQL of its own, a database per test, the workers.

The fault tests freeze, stop and black-hole their PostgreSQL, so they get a server of their own
(`fault_postgres`), never the session's. The figures each scenario measures (how long `/livez`
took to answer again, how long SIGTERM took, what the history says of the fault window) are
printed at the end of the run, under "fault figures".
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from financial.pkg.database import migrate
from tests.integration.faults.harness import FaultWorker
from tests.integration.faults.pg_control import FaultPostgres
from tests.integration.faults.records import DB_TIMEOUT_S, run_sync

TEMPLATE_DB = "fault_template"
_FIGURES: dict[str, dict[str, Any]] = {}


async def _build_template(service: FaultPostgres) -> None:
    conn = await asyncpg.connect(service.dsn, timeout=DB_TIMEOUT_S)
    try:
        await conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    finally:
        await conn.close()
    conn = await asyncpg.connect(service.dsn_for(TEMPLATE_DB), timeout=DB_TIMEOUT_S)
    try:
        await migrate(conn)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def fault_postgres() -> Iterator[FaultPostgres]:
    """An embedded PostgreSQL for the fault tests alone, with a migrated template database."""
    base = Path(tempfile.mkdtemp(prefix="financial-it-faults-"))
    base.chmod(0o755)  # under root, the server runs as the `pgserver` user: it must enter
    service = FaultPostgres(base / "data")
    atexit.register(service.stop)
    try:
        service.start()
        run_sync(_build_template(service))
    except Exception as exc:
        service.stop()
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"the fault suite's PostgreSQL (pgserver) did not start in {base}: {exc}")
    yield service
    service.stop()
    shutil.rmtree(base, ignore_errors=True)


async def _create(service: FaultPostgres, name: str) -> None:
    conn = await asyncpg.connect(service.dsn, timeout=DB_TIMEOUT_S)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    finally:
        await conn.close()


async def _drop(service: FaultPostgres, name: str) -> None:
    conn = await asyncpg.connect(service.dsn, timeout=DB_TIMEOUT_S)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
def fault_db(fault_postgres: FaultPostgres) -> Iterator[str]:
    """Name of a fresh migrated database of this test's own on the fault server."""
    name = f"fault_{uuid.uuid4().hex[:12]}"
    run_sync(_create(fault_postgres, name))
    yield name
    # A test that stopped the server leaves it stopped only if it failed half-way.
    if not fault_postgres.running:
        fault_postgres.start()
    run_sync(_drop(fault_postgres, name))


@pytest.fixture
def fault_dsn(fault_postgres: FaultPostgres, fault_db: str) -> str:
    """DSN of this test's database, on the server's Unix socket."""
    return fault_postgres.dsn_for(fault_db)


SpawnWorker = Callable[..., FaultWorker]


@pytest.fixture
def spawn_worker(open_tmp_path: Path) -> Iterator[SpawnWorker]:
    """Start a FaultWorker (marks in a folder of the test's own); killed after the test."""
    started: list[FaultWorker] = []

    def spawn(
        database_url: str, jobs: Sequence[str], env: dict[str, str] | None = None
    ) -> FaultWorker:
        worker = FaultWorker(database_url=database_url, jobs=jobs, marks=open_tmp_path, env=env)
        started.append(worker)
        return worker

    yield spawn
    for worker in started:
        worker.kill()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict[str, Any]:
    """This scenario's measured figures, printed at the end of the run."""
    measured: dict[str, Any] = {}
    _FIGURES[request.node.name] = measured
    return measured


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print what the fault scenarios measured (the README's "Failure modes" quotes it)."""
    if not _FIGURES:
        return
    terminalreporter.section("fault figures")
    for name, measured in _FIGURES.items():
        terminalreporter.write_line(f"{name}: {json.dumps(measured, default=str)}")
