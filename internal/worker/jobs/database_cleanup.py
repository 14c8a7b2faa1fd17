"""`database_cleanup`: remove rows soft-deleted more than the retention ago, in batches."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from financial.pkg.database.handle import Database
from financial.pkg.jobs import JobContext, JobDefinitionError

# Tables the cleanup may purge. `users` is left out on purpose: deleting a user cascades to the
# user's live budgets and invoices. The names are constants, never input: values go as parameters.
CLEANABLE_TABLES = ("categories", "budgets", "invoices")

# One statement per table: delete a batch of ids, skipping rows another session holds, so no
# long lock is taken and a concurrent writer is never blocked for more than one batch.
_DELETE_BATCH = {
    table: (
        f"DELETE FROM {table} WHERE id IN ("
        f"SELECT id FROM {table} WHERE deleted_at < $1 ORDER BY id LIMIT $2 "
        "FOR UPDATE SKIP LOCKED)"
    )
    for table in CLEANABLE_TABLES
}


class DatabaseCleanupJob:
    """Deletes soft-deleted rows older than `retention` from each configured table."""

    name = "database_cleanup"
    schedule = "0 2 * * *"
    timeout = 1800

    def __init__(
        self,
        db: Database,
        *,
        tables: Sequence[str] = ("categories",),
        retention: timedelta = timedelta(days=90),
        batch_size: int = 1000,
    ) -> None:
        unknown = [t for t in tables if t not in _DELETE_BATCH]
        if unknown:
            raise JobDefinitionError(
                f"CLEANUP_TABLES={','.join(tables)!r}: {unknown[0]!r} cannot be cleaned; "
                f"expected some of {', '.join(CLEANABLE_TABLES)}"
            )
        if batch_size < 1:
            raise JobDefinitionError(f"CLEANUP_BATCH_SIZE={batch_size}: expected >= 1")
        self._db = db
        self.tables = tuple(tables)
        self.retention = retention
        self.batch_size = batch_size

    async def run(self, ctx: JobContext) -> None:
        # The cutoff comes from the tick, not the clock: a retry of the same tick deletes the same.
        cutoff = ctx.scheduled_at - self.retention
        pool = self._db.pool
        for table in self.tables:
            deleted = 0
            while not ctx.stopping.is_set():
                status = await pool.execute(_DELETE_BATCH[table], cutoff, self.batch_size)
                batch = int(status.split()[-1])
                deleted += batch
                if batch < self.batch_size:
                    break
            ctx.log.info(
                "cleanup_table_done", table=table, deleted=deleted, cutoff=cutoff.isoformat()
            )
            if ctx.stopping.is_set():
                ctx.log.info("cleanup_stopped_early", table=table)
                return
