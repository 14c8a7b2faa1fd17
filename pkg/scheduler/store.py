"""The run store port: claims of ticks and the history of runs.

Two implementations share one contract test suite: `MemoryRunStore` (unit tests, and
`financial jobs run` without a database) and the PostgreSQL store. A tick is claimed by a unique
key on `(job, scheduled_at, attempt)`: whoever inserts it first runs it, which is what makes a tick
run once across replicas.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from datetime import datetime

from financial.pkg.jobs.model import RunStatus, Trigger


@dataclass(frozen=True, slots=True)
class RunError:
    """Why a run did not succeed: the exception's type name and message (never a traceback)."""

    type: str
    message: str

    @classmethod
    def of(cls, exc: BaseException) -> RunError:
        return cls(type=type(exc).__name__, message=str(exc)[:2000])


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of one job for one tick and attempt."""

    run_id: str
    job: str
    scheduled_at: datetime
    attempt: int
    trigger: Trigger
    status: RunStatus
    worker_id: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: RunError | None = None
    trace_id: str | None = None

    @property
    def duration_ms(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds() * 1000.0


class RunNotFound(LookupError):
    """A run id the store does not hold."""


class RunStore(ABC):
    """Where ticks are claimed and runs recorded."""

    @abstractmethod
    async def claim(
        self,
        job: str,
        scheduled_at: datetime,
        *,
        attempt: int,
        trigger: Trigger,
        worker_id: str,
        at: datetime,
    ) -> RunRecord | None:
        """Claim a tick: a new `pending` run, or None when that (job, tick, attempt) exists."""

    @abstractmethod
    async def start(self, run_id: str, *, at: datetime, trace_id: str | None = None) -> None:
        """Mark a claimed run `running`."""

    @abstractmethod
    async def finish(
        self, run_id: str, status: RunStatus, *, at: datetime, error: RunError | None = None
    ) -> RunRecord:
        """Give a run its final status. A run that is already final keeps its first one."""

    @abstractmethod
    async def history(
        self, job: str | None = None, *, status: RunStatus | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """Runs, newest tick first."""

    async def close(self) -> None:  # noqa: B027 - most stores hold nothing to release
        """Release what the store holds."""


class MemoryRunStore(RunStore):
    """The in-memory twin: one process, lost at exit."""

    def __init__(self) -> None:
        self._runs: dict[str, RunRecord] = {}
        self._keys: set[tuple[str, datetime, int]] = set()

    async def claim(
        self,
        job: str,
        scheduled_at: datetime,
        *,
        attempt: int,
        trigger: Trigger,
        worker_id: str,
        at: datetime,
    ) -> RunRecord | None:
        key = (job, scheduled_at, attempt)
        if key in self._keys:
            return None
        self._keys.add(key)
        record = RunRecord(
            run_id=str(uuid.uuid4()),
            job=job,
            scheduled_at=scheduled_at,
            attempt=attempt,
            trigger=trigger,
            status=RunStatus.PENDING,
            worker_id=worker_id,
            created_at=at,
        )
        self._runs[record.run_id] = record
        return record

    def _get(self, run_id: str) -> RunRecord:
        try:
            return self._runs[run_id]
        except KeyError:
            raise RunNotFound(run_id) from None

    async def start(self, run_id: str, *, at: datetime, trace_id: str | None = None) -> None:
        record = self._get(run_id)
        if record.status is RunStatus.PENDING:
            self._runs[run_id] = replace(
                record, status=RunStatus.RUNNING, started_at=at, trace_id=trace_id
            )

    async def finish(
        self, run_id: str, status: RunStatus, *, at: datetime, error: RunError | None = None
    ) -> RunRecord:
        if not status.is_final:
            raise ValueError(f"finish({run_id!r}) with status {status}: expected a final status")
        record = self._get(run_id)
        if record.status.is_final:
            return record
        record = replace(record, status=status, finished_at=at, error=error)
        self._runs[run_id] = record
        return record

    async def history(
        self, job: str | None = None, *, status: RunStatus | None = None, limit: int = 50
    ) -> list[RunRecord]:
        rows = [
            r
            for r in self._runs.values()
            if (job is None or r.job == job) and (status is None or r.status is status)
        ]
        rows.sort(key=lambda r: (r.scheduled_at, r.attempt, r.created_at), reverse=True)
        return rows[:limit]
