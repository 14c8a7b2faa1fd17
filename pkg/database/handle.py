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

    def attach(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise DatabaseNotOpenError("the database pool is not open: the worker has not started")
        return self._pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
