"""The asyncpg connection pool, with an error that says what is wrong when PostgreSQL is away."""

from __future__ import annotations

import asyncio
from typing import TypeAlias

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from financial.pkg.database.dsn import describe_dsn, scrub

log = structlog.get_logger()

# A connection of our own or one borrowed from a pool: queries take either.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


class DatabaseUnavailable(ConnectionError):
    """PostgreSQL could not be reached or refused us. The message never shows a password."""

    def __init__(self, message: str, *, target: str) -> None:
        super().__init__(message)
        self.target = target


def unavailable(dsn: str, exc: BaseException, *, connect_timeout_s: float) -> DatabaseUnavailable:
    """A `DatabaseUnavailable` describing why connecting to `dsn` failed with `exc`."""
    target = describe_dsn(dsn)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        cause = f"no answer within {connect_timeout_s:g} s"
    else:
        detail = str(exc).strip()
        cause = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    message = (
        f"cannot connect to PostgreSQL at {target}: {scrub(cause, dsn)}; expected a PostgreSQL "
        "server accepting connections there with the configured user, password and database "
        "(set DATABASE_URL or DB_HOST/DB_PORT/DB_USER/DB_PASSWORD/DB_NAME)"
    )
    return DatabaseUnavailable(message, target=target)


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    command_timeout_s: float = 30.0,
    connect_timeout_s: float = 10.0,
    application_name: str = "financial-worker",
) -> asyncpg.Pool:
    """Open a pool of `min_size`..`max_size` connections to `dsn`.

    Every query has `command_timeout_s` unless the call gives its own; each connection attempt has
    `connect_timeout_s`. Raises `DatabaseUnavailable` (naming host:port/database, the cause and
    what was expected, never the password) when the server cannot be reached or refuses the login.
    """
    if min_size < 0 or max_size < 1 or min_size > max_size:
        raise ValueError(
            f"pool sizes min={min_size} max={max_size}: expected 0 <= min <= max and max >= 1"
        )
    try:
        pool: asyncpg.Pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            command_timeout=command_timeout_s,
            timeout=connect_timeout_s,
            server_settings={"application_name": application_name},
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise unavailable(dsn, exc, connect_timeout_s=connect_timeout_s) from exc
    if min_size == 0:
        # No connection was opened yet: check now so a wrong DSN fails at start, not later.
        try:
            async with pool.acquire(timeout=connect_timeout_s) as conn:
                await conn.fetchval("SELECT 1")
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            pool.terminate()
            raise unavailable(dsn, exc, connect_timeout_s=connect_timeout_s) from exc
    log.info("database_pool_opened", target=describe_dsn(dsn), min_size=min_size, max_size=max_size)
    return pool
