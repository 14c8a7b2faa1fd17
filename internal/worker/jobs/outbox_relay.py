"""`outbox_relay`: publish pending outbox events to RabbitMQ and prune the sent ones."""

from __future__ import annotations

from datetime import datetime, timedelta

from financial.pkg import outbox
from financial.pkg.database.handle import Database
from financial.pkg.jobs import ExpectedFailure, JobContext
from financial.pkg.messaging.publisher import Publisher

# Sent events are pruned at most this often, not on every 5-second pass.
PRUNE_EVERY = timedelta(hours=1)


class OutboxUndelivered(ExpectedFailure):
    """A relay pass could not publish what it tried to: its run is recorded `failed`.

    Nothing is lost: the events stay in the outbox for the next pass. The message is short and
    says how many events wait; each publish failure has its own `outbox_publish_failed` line.
    """

    def __init__(self, *, failed: int, sent: int, waiting: int, broker_down: bool) -> None:
        self.failed = failed
        self.sent = sent
        self.waiting = waiting
        self.broker_down = broker_down
        cause = "the broker is unavailable" if broker_down else "the broker refused them"
        super().__init__(
            f"{failed} publish(es) failed ({cause}), {sent} sent; "
            f"{waiting} event(s) waiting in the outbox for the next pass"
        )


class OutboxRelayJob:
    """Relays the outbox in batches until it is empty, the broker fails, or shutdown begins.

    A pass that sent everything it tried (or found nothing to send) succeeds; a pass in which
    any publish failed raises `OutboxUndelivered`, so the history says the relay is not
    delivering instead of `succeeded` every 5 s through a broker outage.
    """

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
        broker_down = False
        while not ctx.stopping.is_set():
            result = await outbox.relay_once(pool, self._publisher, batch_size=self.batch_size)
            sent += result.sent
            failed += result.failed
            broker_down = broker_down or result.stopped
            if result.stopped or result.sent + result.failed < self.batch_size:
                break
        if sent:
            # A pass with failures says so in its error (and each failure in its own line).
            ctx.log.info("outbox_relayed", sent=sent, failed=failed)
        if self._last_prune is None or ctx.scheduled_at - self._last_prune >= PRUNE_EVERY:
            await outbox.prune_sent(pool, self.retention)
            self._last_prune = ctx.scheduled_at
        if failed:
            waiting = await outbox.backlog(pool)
            raise OutboxUndelivered(
                failed=failed, sent=sent, waiting=waiting, broker_down=broker_down
            )
