"""Versioned SQL migrations: `migrations/NNNN_name.sql`, applied in order, each exactly once.

Every migration runs in its own transaction together with its row in `schema_migrations`, so a
migration is either applied and recorded or not at all. Several processes may call `migrate()` at
the same moment (replicas starting together): each transaction first takes a transaction-level
advisory lock on a fixed key and then re-reads what is applied, so the second process waits for
the first one's commit and finds nothing left to do. The lock is transaction-scoped on purpose: it
is released by COMMIT or ROLLBACK and cannot leak through a pooled connection.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg
import structlog

from financial.pkg.database.pool import Connection

log = structlog.get_logger()

MIGRATIONS_PACKAGE = "financial.pkg.database.migrations"
# Any fixed 64-bit number unique to this purpose; other advisory-lock users must avoid it.
MIGRATION_LOCK_KEY = 0x66696E5F6D696772  # "fin_migr"
_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """A migration could not be applied, or the applied history disagrees with the files."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: `version` ("0001"), `name` ("0001_service_tables") and its SQL."""

    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(package: str = MIGRATIONS_PACKAGE) -> list[Migration]:
    """The migration files of `package`, in version order (read with importlib.resources)."""
    migrations: list[Migration] = []
    for entry in resources.files(package).iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(
                f"migration file {entry.name!r}: expected a name like 0001_create_tables.sql"
            )
        migrations.append(
            Migration(
                version=match["version"],
                name=entry.name.removesuffix(".sql"),
                sql=entry.read_text(encoding="utf-8"),
            )
        )
    migrations.sort(key=lambda m: m.version)
    versions = [m.version for m in migrations]
    duplicates = sorted({v for v in versions if versions.count(v) > 1})
    if duplicates:
        raise MigrationError(f"two migration files share the version(s) {', '.join(duplicates)}")
    return migrations


async def applied_migrations(conn: Connection) -> dict[str, str]:
    """Applied versions and their checksums; empty when the database was never migrated."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
    return {row["version"]: row["checksum"] for row in rows}


async def migrate(
    target: asyncpg.Pool | Connection,
    *,
    migrations: list[Migration] | None = None,
    timeout_s: float | None = 300.0,
) -> list[str]:
    """Apply the pending migrations in order; return the names of those this call applied.

    Idempotent and safe to run from several processes at once. `timeout_s` bounds each statement,
    including the wait for another process's migration (the pool's command timeout may be
    shorter than a migration takes).
    """
    todo = load_migrations() if migrations is None else migrations
    if isinstance(target, asyncpg.Pool):
        async with target.acquire() as conn:
            return await _migrate(conn, todo, timeout_s)
    return await _migrate(target, todo, timeout_s)


async def _migrate(
    conn: Connection, migrations: list[Migration], timeout_s: float | None
) -> list[str]:
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY, timeout=timeout_s
        )
        await conn.execute(_CREATE_TABLE, timeout=timeout_s)
        _check_history(await applied_migrations(conn), migrations)

    applied: list[str] = []
    for migration in migrations:
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY, timeout=timeout_s
            )
            # Re-read under the lock: another process may have applied it while we waited.
            done = await conn.fetchval(
                "SELECT 1 FROM schema_migrations WHERE version = $1", migration.version
            )
            if done:
                continue
            try:
                await conn.execute(migration.sql, timeout=timeout_s)
            except asyncpg.PostgresError as exc:
                raise MigrationError(
                    f"migration {migration.name} failed and was rolled back: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
        log.info("migration_applied", migration=migration.name)
        applied.append(migration.name)
    if not applied:
        log.debug("migrations_up_to_date", count=len(migrations))
    return applied


def _check_history(applied: dict[str, str], migrations: list[Migration]) -> None:
    """Refuse to go on when an applied migration's file was edited afterwards."""
    known = {m.version: m for m in migrations}
    for version, checksum in applied.items():
        migration = known.get(version)
        if migration is None:
            # A newer release migrated this database (a rolling deploy): the old code goes on.
            log.warning("migration_unknown_version", version=version)
        elif migration.checksum != checksum:
            raise MigrationError(
                f"migration {migration.name} was changed after it was applied (checksum "
                f"{checksum[:12]} in schema_migrations, {migration.checksum[:12]} on disk); "
                "expected applied migrations to stay as they were: add a new migration instead"
            )
