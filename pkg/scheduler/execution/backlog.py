"""What the run store could not take while it was away, kept to be written once it answers:
the ticks that could not be claimed (recorded `missed`) and the ends of runs that could not be
written (their real final status). The runner's records (`records.py`) fill it; the loop's
housekeeping, and each claim before it is sent, empty it."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from datetime import datetime

import structlog

from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.scheduler.store import FinishRequest, RunError, RunRecord, RunStore

log = structlog.get_logger("financial.scheduler")

# How many of each are kept; past this the oldest are dropped (each was logged when it failed).
UNRECORDED_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class UnwrittenEnd:
    """A run's end the store could not take when the run ended."""

    record: RunRecord
    request: FinishRequest


@dataclass(frozen=True, slots=True)
class UnrecordedTick:
    """A tick the store could not take when it was due."""

    job: str
    scheduled_at: datetime
    reason: str


class Backlog:
    """The ticks and ends the store could not take, in the order they came."""

    def __init__(self, store: RunStore, worker_id: str) -> None:
        self._store = store
        self._worker_id = worker_id
        self.unrecorded: deque[UnrecordedTick] = deque(maxlen=UNRECORDED_LIMIT)
        self.unwritten: deque[UnwrittenEnd] = deque(maxlen=UNRECORDED_LIMIT)
        self._writing = asyncio.Lock()

    async def flush_unwritten(self) -> int:
        """Write the ends the store could not take, oldest first, as one batch; 0 when the
        store still fails (logged once by the caller's next pass, not here)."""
        async with self._writing:
            if not self.unwritten:
                return 0
            ends = list(self.unwritten)
            try:
                await self._store.finish_many([end.request for end in ends])
            except Exception:
                return 0
            for _ in ends:
                self.unwritten.popleft()
            log.info(
                "run_ends_recorded",
                count=len(ends),
                runs=[end.record.run_id for end in ends[:10]],
            )
            return len(ends)

    async def flush_unrecorded(self) -> int:
        """Record `missed` the ticks the store could not take; stop at the first failure."""
        done = 0
        while self.unrecorded:
            tick = self.unrecorded[0]
            try:
                record = await self._store.claim(
                    tick.job,
                    tick.scheduled_at,
                    attempt=1,
                    trigger=Trigger.SCHEDULE,
                    worker_id=self._worker_id,
                )
                if record is not None and not record.status.is_final:
                    error = RunError(RunStatus.MISSED.value, tick.reason)
                    await self._store.finish(
                        record.run_id, RunStatus.MISSED, fence=record.fence, error=error
                    )
            except Exception:
                return done  # still away: the next maintenance pass tries again
            self.unrecorded.popleft()
            done += 1
        return done
