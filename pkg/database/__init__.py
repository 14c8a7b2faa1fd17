"""PostgreSQL building blocks: the connection pool, versioned migrations, an embedded server.

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

__all__ = [
    "Connection",
    "DatabaseUnavailable",
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "Migration",
    "MigrationError",
    "applied_migrations",
    "create_pool",
    "describe_dsn",
    "load_migrations",
    "mask_dsn",
    "migrate",
    "start_embedded",
    "start_embedded_async",
]
