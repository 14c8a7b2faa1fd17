"""Real services for the integration tests, started on loopback once per test session.

- PostgreSQL: the embedded server from the `pgserver` wheel on a temporary data folder (Unix
  socket only). A template database is migrated once; each test that asks for `database_dsn` gets
  a fresh copy of it (CREATE DATABASE ... TEMPLATE, a few tens of milliseconds) dropped afterwards.
- RabbitMQ: Debian's `rabbitmq-server` (installed by scripts/ensure-services.sh) started by hand
  with its own data folder, node name, ports and epmd, bound to 127.0.0.1, no plugins. It boots in
  about 3 to 6 s. Tests can stop and restart it (`rabbitmq.stop()` / `rabbitmq.start()`); the
  next test finds it running again.

A service that cannot start makes the tests that need it fail with the reason (and the server's
log tail): they are never skipped.

Fixtures for tests that start `financial worker` processes: `postgres` / `database_dsn`,
`rabbitmq` / `amqp_url`, and `services_env` (the environment variables pointing a worker at them).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from financial.pkg.database import migrate
from tests.fixtures.request_jobs import AUDIT_TABLE_DDL
from tests.integration.services import (
    PostgresService,
    RabbitBroker,
    ServiceStartError,
)
from tests.integration.worker_process import WorkerProcess

T = TypeVar("T")
TEMPLATE_DB = "financial_template"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration carries the `integration` marker."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, on its own loop in a thread (never pytest's loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _build_template(admin_dsn: str, template_dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
        await conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    finally:
        await conn.close()
    conn = await asyncpg.connect(template_dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresService]:
    """The session's PostgreSQL server, with a migrated template database ready."""
    base = Path(tempfile.mkdtemp(prefix="financial-it-pg-"))
    # pgserver runs the server as the `pgserver` user when we are root: it must reach the folder.
    base.chmod(0o755)
    service = PostgresService(base / "data")
    atexit.register(service.stop)
    try:
        service.start()
        run_sync(_build_template(service.dsn, service.dsn_for(TEMPLATE_DB)))
    except Exception as exc:
        service.stop()
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"embedded PostgreSQL (pgserver) could not start in {base}: {exc}")
    yield service
    service.stop()
    shutil.rmtree(base, ignore_errors=True)


async def _create_database(service: PostgresService, template: str) -> str:
    name = f"test_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(service.dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await conn.close()
    return name


async def _drop_database(service: PostgresService, name: str) -> None:
    if not service.running:
        service.start()
    conn = await asyncpg.connect(service.dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def database_dsn(postgres: PostgresService) -> AsyncIterator[str]:
    """DSN of a fresh, migrated database of this test's own, dropped afterwards."""
    name = await _create_database(postgres, TEMPLATE_DB)
    yield postgres.dsn_for(name)
    await _drop_database(postgres, name)


@pytest.fixture
async def empty_database_dsn(postgres: PostgresService) -> AsyncIterator[str]:
    """DSN of a fresh database with no migrations applied, dropped afterwards."""
    name = await _create_database(postgres, "template0")
    yield postgres.dsn_for(name)
    await _drop_database(postgres, name)


@pytest.fixture
async def db_pool(database_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A small pool on this test's migrated database."""
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=5)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def rabbitmq_broker() -> Iterator[RabbitBroker]:
    """The session's RabbitMQ broker (see `rabbitmq` for tests)."""
    base = Path(tempfile.mkdtemp(prefix="financial-it-rabbitmq-"))
    broker = RabbitBroker(base)
    atexit.register(broker.close)
    try:
        broker.start()
    except ServiceStartError as exc:
        broker.close()
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(str(exc))
    yield broker
    broker.close()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def rabbitmq(rabbitmq_broker: RabbitBroker) -> Iterator[RabbitBroker]:
    """The running broker; a test may stop and restart it, and it is running again afterwards."""
    if not rabbitmq_broker.running:
        rabbitmq_broker.start()
    yield rabbitmq_broker
    if not rabbitmq_broker.running:
        rabbitmq_broker.start()


@pytest.fixture
def amqp_url(rabbitmq: RabbitBroker) -> str:
    """amqp:// URL of the running broker (user guest, loopback only)."""
    return rabbitmq.url


@pytest.fixture
def exchange_name() -> str:
    """An exchange name of this test's own, so tests never see each other's messages."""
    return f"financial.test.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def open_tmp_path() -> Iterator[Path]:
    """A temporary folder (0755) outside pytest's private 0700 tree, removed afterwards.

    For tests whose processes start the embedded PostgreSQL as root: pgserver runs the server as
    the `pgserver` user, which must enter every parent folder, and pytest closes its base folder
    again (0700) whenever a pytest session starts.
    """
    path = Path(tempfile.mkdtemp(prefix="financial-it-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def audited(database_dsn: str) -> str:
    """A test database with the `request_audit` table the run request test job writes to."""
    conn = await asyncpg.connect(database_dsn)
    try:
        await conn.execute(AUDIT_TABLE_DDL)
    finally:
        await conn.close()
    return database_dsn


@pytest.fixture
def spawned() -> Iterator[list[WorkerProcess]]:
    """Worker processes a test starts (append them): killed at its end, whatever happened."""
    workers: list[WorkerProcess] = []
    yield workers
    for worker in workers:
        worker.kill()


@pytest.fixture
def services_env(database_dsn: str, amqp_url: str, exchange_name: str) -> dict[str, str]:
    """Environment for a `financial worker` process using this test's database and broker."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_dsn,
        RABBITMQ_URL=amqp_url,
        RABBITMQ_EXCHANGE=exchange_name,
    )
    return env
