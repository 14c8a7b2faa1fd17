"""create_pool against the real server, clear errors when it is not there, DSN masking."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from financial.pkg.database import DatabaseUnavailable, create_pool, describe_dsn, mask_dsn
from tests.integration.services import free_port

pytestmark = pytest.mark.integration


async def test_pool_runs_queries(database_dsn: str) -> None:
    pool = await create_pool(database_dsn, min_size=0, max_size=2, command_timeout_s=5)
    try:
        assert await pool.fetchval("SELECT count(*) FROM job_runs") == 0
        assert await pool.fetchval("SHOW application_name") == "financial-worker"
    finally:
        await pool.close()


async def test_unreachable_server_names_host_port_and_database_not_password() -> None:
    port = free_port()
    dsn = f"postgresql://worker:pa55-w0rd@127.0.0.1:{port}/financial"

    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as caught:
        await create_pool(dsn, connect_timeout_s=10)
    # A refused connection fails at once rather than after the connect timeout.
    assert time.monotonic() - started < 2

    message = str(caught.value)
    assert f"127.0.0.1:{port}/financial" in message
    assert "pa55-w0rd" not in message
    assert "ConnectionRefusedError" in message
    assert "expected a PostgreSQL server" in message
    assert caught.value.target == f"127.0.0.1:{port}/financial"


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


async def test_server_that_never_answers_times_out_with_a_clear_error(silent_server: int) -> None:
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable, match=r"no answer within 1 s"):
        await create_pool(
            f"postgresql://u:secret@127.0.0.1:{silent_server}/db", connect_timeout_s=1
        )
    assert time.monotonic() - started < 5


async def test_missing_database_is_named(database_dsn: str) -> None:
    dsn = database_dsn.replace(database_dsn.split("?")[0].rsplit("/", 1)[1], "no_such_db")
    with pytest.raises(DatabaseUnavailable, match='database "no_such_db" does not exist'):
        await create_pool(dsn, min_size=0)


async def test_bad_pool_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="min=3 max=2"):
        await create_pool("postgresql://localhost/db", min_size=3, max_size=2)


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("postgresql://u:secret@db:5432/fin", "postgresql://u:***@db:5432/fin"),
        ("postgres://u:p%40ss@db/fin?sslmode=require", "postgres://u:***@db/fin?sslmode=require"),
        ("postgresql://u@db/fin", "postgresql://u@db/fin"),
        ("postgresql://db/fin?password=secret&x=1", "postgresql://db/fin?password=***&x=1"),
        ("host=db user=u password=secret dbname=fin", "host=db user=u password=*** dbname=fin"),
        ("host=db password='se cret' dbname=fin", "host=db password=*** dbname=fin"),
    ],
)
def test_mask_dsn(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked


@pytest.mark.parametrize(
    ("dsn", "described"),
    [
        ("postgresql://u:secret@db.internal:6432/fin", "db.internal:6432/fin"),
        ("postgresql://u:secret@db/fin", "db:5432/fin"),
        (
            "postgresql://u@/fin?host=/run/postgresql",
            "/run/postgresql (unix socket, port 5432)/fin",
        ),
        ("postgresql://u:x@[::1]:5433/fin", "[::1]:5433/fin"),
        ("postgresql://alice@h1:5432,h2:5433/fin", "h1:5432,h2:5433/fin"),
        ("host=db port=7 user=u password=secret", "db:7/u"),
        ("postgresql://", "localhost:5432/postgres"),
    ],
)
def test_describe_dsn(dsn: str, described: str) -> None:
    assert describe_dsn(dsn) == described
