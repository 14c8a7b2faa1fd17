"""The asyncpg connection pool, with an error that says what is wrong when PostgreSQL is away."""

from __future__ import annotations

import asyncio
from typing import NoReturn, TypeAlias

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from financial.pkg.database.dsn import describe_dsn, mask_dsn, scrub
from financial.pkg.observability.masking import mask_secrets

log = structlog.get_logger()

# A connection of our own or one borrowed from a pool: queries take either.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


class DatabaseUnavailable(ConnectionError):
    """PostgreSQL could not be reached or refused us. The message never shows a password."""

    def __init__(self, message: str, *, target: str) -> None:
        super().__init__(message)
        self.target = target


class DatabaseConfigError(ValueError):
    """The DSN or one of its connection options is wrong: trying again cannot help.

    `str()` names what was rejected and why, never the password; `dsn` is the DSN masked.
    """

    def __init__(self, message: str, *, dsn: str) -> None:
        super().__init__(message)
        self.dsn = dsn


# What PostgreSQL answers a connection whose startup options are wrong: 42704 "unrecognized
# configuration parameter" (an unknown query parameter is sent as a setting), 22023 "invalid value
# for parameter", 55P02 "parameter cannot be changed now", 42501 "permission denied to set
# parameter". A wrong password or a database that does not exist yet stays an outage: a secret
# being rotated or a database being created answers the next attempt.
_CONFIG_SQLSTATES = (
    asyncpg.UndefinedObjectError,
    asyncpg.InvalidParameterValueError,
    asyncpg.CantChangeRuntimeParamError,
    asyncpg.InsufficientPrivilegeError,
)


def is_config_error(exc: BaseException) -> bool:
    """Whether connecting failed because of the DSN itself, not because the server is away.

    asyncpg raises `ClientConfigurationError` for an option it does not accept (`sslmode=bogus`,
    `target_session_attrs=bogus`, a scheme that is not postgresql), a plain `ValueError` or
    `OverflowError` for a DSN it cannot parse (a port that is not a number or out of range, a
    broken IPv6 address); the server answers the codes of `_CONFIG_SQLSTATES`.
    """
    if isinstance(exc, (asyncpg.ClientConfigurationError, *_CONFIG_SQLSTATES)):
        return True
    # Not raised for a network fault: these come from parsing the DSN and its options.
    return isinstance(exc, ValueError | OverflowError | TypeError) and not isinstance(
        exc, asyncpg.PostgresError | asyncpg.InterfaceError
    )


def config_error(dsn: str, exc: BaseException) -> DatabaseConfigError:
    """A `DatabaseConfigError` saying why `dsn` was rejected by `exc`, its password masked."""
    detail = str(exc).strip()
    cause = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return DatabaseConfigError(mask_secrets(scrub(cause, dsn)), dsn=mask_dsn(dsn))


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
    except Exception as exc:
        _raise_connect_error(dsn, exc, connect_timeout_s)
    if min_size == 0:
        # No connection was opened yet: check now so a wrong DSN fails at start, not later.
        try:
            async with pool.acquire(timeout=connect_timeout_s) as conn:
                await conn.fetchval("SELECT 1")
        except Exception as exc:
            pool.terminate()
            _raise_connect_error(dsn, exc, connect_timeout_s)
    log.info("database_pool_opened", target=describe_dsn(dsn), min_size=min_size, max_size=max_size)
    return pool


def _raise_connect_error(dsn: str, exc: Exception, connect_timeout_s: float) -> NoReturn:
    if is_config_error(exc):
        # Not chained: the driver's message may quote the DSN, and it is shown as one line.
        raise config_error(dsn, exc) from None
    if isinstance(exc, OSError | TimeoutError | asyncpg.PostgresError | asyncpg.InterfaceError):
        raise unavailable(dsn, exc, connect_timeout_s=connect_timeout_s) from exc
    raise exc
