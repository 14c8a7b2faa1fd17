"""`report_generator`: the weekly counts, emitted as `reports.weekly.generated` via the outbox."""

from __future__ import annotations

import uuid

from financial.pkg import outbox
from financial.pkg.database.handle import Database
from financial.pkg.jobs import JobContext

ROUTING_KEY = "reports.weekly.generated"
# Report ids are derived from the tick, so a second run of the same tick names the same report
# and consumers drop it by message_id.
_REPORT_NAMESPACE = uuid.UUID("6f1c1c52-2d55-4c3e-9a43-8f7b1a3e0b6e")

_COUNTS = """
SELECT
    (SELECT count(*) FROM users WHERE deleted_at IS NULL) AS users,
    (SELECT count(*) FROM budgets WHERE deleted_at IS NULL) AS active_budgets,
    (SELECT count(*) FROM invoices WHERE deleted_at IS NULL) AS invoices
"""


class ReportGeneratorJob:
    """Counts users, active budgets and invoices and emits the weekly report event."""

    name = "report_generator"
    schedule = "0 8 * * 1"
    timeout = 300

    def __init__(self, db: Database, *, routing_key: str = ROUTING_KEY) -> None:
        self._db = db
        self.routing_key = routing_key

    async def run(self, ctx: JobContext) -> None:
        report_id = str(
            uuid.uuid5(_REPORT_NAMESPACE, f"{self.name}/{ctx.scheduled_at.isoformat()}")
        )
        async with self._db.pool.acquire() as conn, conn.transaction():
            # Counts and event commit together: the event exists if and only if the report does.
            row = await conn.fetchrow(_COUNTS)
            assert row is not None  # a SELECT without FROM always returns its one row
            generated_at = await conn.fetchval("SELECT now()")
            payload = {
                "report_id": report_id,
                "generated_at": generated_at.isoformat(),
                "scheduled_at": ctx.scheduled_at.isoformat(),
                "users": int(row["users"]),
                "active_budgets": int(row["active_budgets"]),
                "invoices": int(row["invoices"]),
            }
            await outbox.add(conn, self.routing_key, payload, message_id=report_id)
        ctx.log.info("report_generated", **payload)
