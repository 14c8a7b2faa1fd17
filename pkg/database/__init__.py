"""PostgreSQL building blocks: the pool, versioned migrations, named queries, an embedded server.

from financial.pkg.database import create_pool, migrate, DatabaseUnavailable, mask_dsn
"""

from __future__ import annotations

from financial.pkg.database.dsn import describe_dsn, mask_dsn
from financial.pkg.database.embedded import (
    EmbeddedPostgres,
    EmbeddedPostgresError,
    start_embedded,
    start_embedded_async,
)
from financial.pkg.database.migrator import (
    Migration,
    MigrationError,
    applied_migrations,
    load_migrations,
    migrate,
)
from financial.pkg.database.pool import Connection, DatabaseUnavailable, create_pool
from financial.pkg.database.queries import QueryFileError, load_queries
from financial.pkg.database.schema import schema_differences

__all__ = [
    "Connection",
    "DatabaseUnavailable",
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "Migration",
    "MigrationError",
    "QueryFileError",
    "applied_migrations",
    "create_pool",
    "describe_dsn",
    "load_migrations",
    "load_queries",
    "mask_dsn",
    "migrate",
    "schema_differences",
    "start_embedded",
    "start_embedded_async",
]
