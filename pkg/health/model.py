"""What the health server asks of the worker, and what it shows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from financial.pkg.scheduler.store import RunRecord


@dataclass(frozen=True, slots=True)
class Check:
    """One named condition of a probe; `detail` says why it fails (or what it saw)."""

    name: str
    ok: bool
    detail: str = ""


SettingSource = Literal["code", "env", "runtime", "default"]
"""Where a job's effective value comes from; precedence: runtime > env > code > default (the
worker-wide WORKER_* value)."""


@dataclass(frozen=True, slots=True)
class SettingRow:
    """One effective setting of a job as the page shows it: `schedule`, `timeout`, ...

    `value` is display text (the lead's `WorkerHealth` formats it); `source` says which layer set
    it: `runtime` (`financial jobs set`, kept in PostgreSQL), `env` (WORKER_JOBS__...), `code`,
    `default` (the worker-wide WORKER_* value).
    """

    field: str
    value: str
    source: SettingSource = "code"


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One change of a job's runtime settings: who made it, when, what changed, and why.

    Either `field` with its `old` and `new` values (None: not set at that layer), or a
    `summary` for a change of several fields at once or a `reset`.
    """

    at: datetime
    by: str
    field: str | None = None
    old: str | None = None
    new: str | None = None
    summary: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RequestRow:
    """One run an operator asked for (`financial jobs trigger` / `backfill`) and not done yet.

    `trigger` is `manual` or `backfill`; `state` is `pending` (queued, waiting for the job's
    turn and a free slot) or `claimed` (a worker is running it); `requested_by` is who asked.
    """

    tick: datetime
    trigger: str
    requested_by: str
    requested_at: datetime
    state: str


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One job as the status page shows it.

    `paused` is an operator's pause (its ticks still come, recorded `skipped`); `disabled` a job
    turned off in configuration (no ticks at all). `next_fire` is the scheduler's next tick.
    `recent_runs` are newest first, as `RunStore.history` returns them. `runs_error` is set
    when the history could not be read (the database is down): the page still renders.
    `stuck_threads` counts the pool threads still running one of its runs that was abandoned.
    `calendar` names the holiday calendar the schedule runs on, with its `on_holiday` policy.
    `last_success_at` is the tick of the last success in the whole history (None: unknown, the
    page then looks in `recent_runs`). `late` is the dead-man alert's verdict (no success for
    `alert_after` after a tick, or a tick not started within its deadline) since `late_since`.
    `settings` are the effective values and their source, `audit` the changes, newest first:
    both are shown on the job's own page only. `requests` are the first of its open run
    requests in the order they run, `requests_open` how many are open in all, `requests_error`
    why they could not be read: the job's own page only as well.
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
    last_success_at: datetime | None = None
    late: bool = False
    late_since: datetime | None = None
    settings: Sequence[SettingRow] = field(default_factory=tuple)
    audit: Sequence[AuditRow] = field(default_factory=tuple)
    requests: Sequence[RequestRow] = field(default_factory=tuple)
    requests_open: int = 0
    requests_error: str | None = None


@dataclass(frozen=True, slots=True)
class JobExtras:
    """What other parts of the worker add to a job's status, by `WorkerHealth.watch_extras`.

    The runtime settings give the effective `schedule` / `zone` / `disabled` / `calendar` (None:
    keep the registry's), the `settings` rows and, on the job's own page, the `audit`; the dead-man
    alert gives `late` and `late_since`; the run request store, on the job's own page, its open
    `requests` (the first ones), how many are open (`requests_open`) or why it could not tell.
    """

    schedule: str | None = None
    zone: str | None = None
    disabled: bool | None = None
    calendar: str | None = None
    late: bool = False
    late_since: datetime | None = None
    settings: Sequence[SettingRow] = field(default_factory=tuple)
    audit: Sequence[AuditRow] = field(default_factory=tuple)
    requests: Sequence[RequestRow] = field(default_factory=tuple)
    requests_open: int = 0
    requests_error: str | None = None


class JobExtrasSource(Protocol):
    """Gives the extras of the jobs named (a job missing from the answer has none).

    `with_audit` is True for a job's own page only: the overview shows no audit."""

    async def __call__(
        self, names: Sequence[str], *, with_audit: bool
    ) -> Mapping[str, JobExtras]: ...


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
        """Every registered job, paused ones included, with its last few runs."""
        ...

    async def job(self, name: str) -> JobStatus | None:
        """One job with a longer history (its page), or None when no job has that name."""
        ...


class MetricsExposition(Protocol):
    """Renders `/metrics` (`financial.pkg.observability.metrics.Metrics` is one)."""

    @property
    def content_type(self) -> str: ...

    async def render(self) -> bytes:
        """The exposition body, in `content_type`'s format."""
        ...
