"""`outbox_relay`: publish pending outbox events to RabbitMQ and prune the sent ones."""

from __future__ import annotations

from datetime import datetime, timedelta

from financial.pkg import outbox
from financial.pkg.database.handle import Database
from financial.pkg.jobs import JobContext
from financial.pkg.messaging.publisher import Publisher

# Sent events are pruned at most this often, not on every 5-second pass.
PRUNE_EVERY = timedelta(hours=1)


class OutboxRelayJob:
    """Relays the outbox in batches until it is empty, the broker fails, or shutdown begins."""

    name = "outbox_relay"
    schedule = "@every 5s"
    timeout = 60
    start_deadline = 5

    def __init__(
        self,
        db: Database,
        publisher: Publisher,
        *,
        batch_size: int = 100,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self._db = db
        self._publisher = publisher
        self.batch_size = batch_size
        self.retention = retention
        self._last_prune: datetime | None = None

    async def run(self, ctx: JobContext) -> None:
        pool = self._db.pool
        sent = failed = 0
        while not ctx.stopping.is_set():
            result = await outbox.relay_once(pool, self._publisher, batch_size=self.batch_size)
            sent += result.sent
            failed += result.failed
            if result.stopped or result.sent + result.failed < self.batch_size:
                break
        if sent or failed:
            ctx.log.info("outbox_relayed", sent=sent, failed=failed)
        if self._last_prune is None or ctx.scheduled_at - self._last_prune >= PRUNE_EVERY:
            await outbox.prune_sent(pool, self.retention)
            self._last_prune = ctx.scheduled_at
