"""What the health server asks of the worker, and what it shows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from financial.pkg.scheduler.store import RunRecord


@dataclass(frozen=True, slots=True)
class Check:
    """One named condition of a probe; `detail` says why it fails (or what it saw)."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One job as the status page shows it.

    `paused` is an operator's pause (its ticks still come, recorded `skipped`); `disabled` a job
    turned off in configuration (no ticks at all). `next_fire` is the scheduler's next tick.
    `recent_runs` are newest first, as `RunStore.history` returns them. `runs_error` is set
    when the history could not be read (the database is down): the page still renders.
    `stuck_threads` counts the pool threads still running one of its runs that was abandoned.
    `calendar` names the holiday calendar the schedule runs on, with its `on_holiday` policy.
    """

    name: str
    schedule: str
    zone: str
    next_fire: datetime | None
    paused: bool
    paused_reason: str | None = None
    disabled: bool = False
    recent_runs: Sequence[RunRecord] = field(default_factory=tuple)
    runs_error: str | None = None
    stuck_threads: int = 0
    calendar: str | None = None
    on_holiday: str = "skip"


class HealthSource(Protocol):
    """What the health server reads; the composition root provides it (see `WorkerHealth`).

    Every method is called on the event loop, once per request.
    """

    def now(self) -> datetime:
        """The current instant (the scheduler's clock), aware."""
        ...

    def last_heartbeat(self) -> datetime | None:
        """The scheduler loop's last pass, or None before it has started."""
        ...

    def draining(self) -> bool:
        """True once shutdown has begun: no new ticks, running jobs finishing."""
        ...

    async def readiness(self) -> Sequence[Check]:
        """Every readiness condition; the worker is ready when all are ok."""
        ...

    async def jobs(self) -> Sequence[JobStatus]:
        """Every registered job, paused ones included, in display order."""
        ...


class MetricsExposition(Protocol):
    """Renders `/metrics` (`financial.pkg.observability.metrics.Metrics` is one)."""

    @property
    def content_type(self) -> str: ...

    async def render(self) -> bytes:
        """The exposition body, in `content_type`'s format."""
        ...
