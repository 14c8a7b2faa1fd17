"""A handle on the service's pool, built before the pool opens so jobs can hold it.

The composition root builds one `Database`, hands it to every job that needs PostgreSQL, and
opens it when the worker starts; `financial jobs list` builds the same jobs without connecting.
"""

from __future__ import annotations

import asyncpg


class DatabaseNotOpenError(RuntimeError):
    """The pool was used before the worker opened it (or after it closed)."""


class Database:
    """Holds the asyncpg pool once `attach()` has been called."""

    def __init__(self) -> None:
        self._pool: asyncpg.Pool | None = None
        self._dsn: str | None = None

    def attach(self, pool: asyncpg.Pool, dsn: str | None = None) -> None:
        """Hold `pool`; `dsn` (never logged) for a connection of its own beside the pool, such
        as the LISTEN connection of the runtime settings watcher."""
        self._pool = pool
        self._dsn = dsn

    @property
    def dsn(self) -> str | None:
        return self._dsn

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise DatabaseNotOpenError("the database pool is not open: the worker has not started")
        return self._pool

    async def close(self) -> None:
        pool, self._pool, self._dsn = self._pool, None, None
        if pool is not None:
            await pool.close()
