"""The alert store port: the checker's lease, each watched job's alert state, and its events.

Two implementations share one contract test suite (`tests/contract/alert_store_contract.py`):
`MemoryAlertStore` (`memory.py`: unit tests, over a `MemoryRunStore`) and `PostgresAlertStore`
(`postgres.py`: every replica, tables of migration 0007). The semantics, which both keep:

- A named lease (`take_lease`) is held by one holder at a time, until it expires (the store's
  clock: PostgreSQL's `now()`); its holder renews it by taking it again, anyone takes it over
  once it expired, and `release_lease` lets it go at once.
- `watch` gives the alert state of each job asked for, creating the missing ones with
  `watched_since` set to the instant given: a job that never succeeded is judged from then on.
- `rewatch` sets `watched_since` of each job given to the instant given (a paused or disabled
  job: it is judged again from when it comes back, not from before its pause).
- `mark_late` turns a job late only when it is not late already, and `mark_recovered` ends it
  only when it is late; each writes its outbox event in the same transaction as the state
  change and returns whether it changed anything. So two replicas (or a restart) that decide the
  same thing raise one alert, with one event, not two.
- `forget` drops the alert state of each job given (its alert was turned off: `alert_after` 0,
  or no layer sets it any more), and the job is judged afresh, watched from the instant it is
  next watched, if its alert is turned on again. A late one stops being late with the event
  `event(state)` gives (`job.alert_off`, not `job.recovered`, which is for a job that succeeded
  again), written in the same transaction, so a pager or chat bridge can close what `job.late`
  opened. It returns the states dropped that were late.
- `facts` reads the run history the checker needs: the tick of each job's latest success, and
  whether a given tick of it started (a run of it began, or the tick was skipped by the job's
  overlap policy or a pause: a decision, not a miss).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

LATE_ROUTING_KEY = "job.late"
RECOVERED_ROUTING_KEY = "job.recovered"
ALERT_OFF_ROUTING_KEY = "job.alert_off"
CHECKER_LEASE = "late_jobs"


@dataclass(frozen=True, slots=True)
class AlertState:
    """One watched job's alert state; `late_since` is None while the job is not late."""

    job: str
    watched_since: datetime
    late_since: datetime | None = None
    late_tick: datetime | None = None
    reason: str | None = None
    alerted_at: datetime | None = None
    recovered_at: datetime | None = None

    @property
    def late(self) -> bool:
        return self.late_since is not None


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What the history says of one job: its latest success's tick, and whether the tick asked
    about started (None when no tick was asked about)."""

    last_success_tick: datetime | None = None
    tick_started: bool | None = None


@dataclass(frozen=True, slots=True)
class Lateness:
    """Why a job is late: since when, the tick that made it late, and the reason in words."""

    since: datetime
    tick: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An outbox event written with a state change: routing key, payload, stable message id."""

    routing_key: str
    payload: Mapping[str, Any]
    message_id: str


class AlertStore(ABC):
    """Where the checker's lease and the jobs' alert states are kept (see the module)."""

    @abstractmethod
    async def take_lease(self, name: str, holder: str, ttl: timedelta) -> bool:
        """Take or renew the lease `name` for `ttl`; False while another holder has it."""

    @abstractmethod
    async def release_lease(self, name: str, holder: str) -> None:
        """Let the lease go, if `holder` has it, so another replica takes it at once."""

    @abstractmethod
    async def watch(self, jobs: Sequence[str], at: datetime) -> dict[str, AlertState]:
        """The alert state of each of `jobs`, new ones watched from `at`."""

    @abstractmethod
    async def rewatch(self, jobs: Sequence[str], at: datetime) -> None:
        """Watch `jobs` from `at` on, whatever they were watched from before."""

    @abstractmethod
    async def forget(
        self, jobs: Sequence[str], *, event: Callable[[AlertState], AlertEvent]
    ) -> list[AlertState]:
        """Drop the alert state of `jobs`, writing `event(state)` for each that was late; the
        dropped states that were late."""

    @abstractmethod
    async def facts(self, ticks: Mapping[str, datetime | None]) -> dict[str, JobFacts]:
        """For each job: its latest success's tick, and whether the tick given started."""

    @abstractmethod
    async def mark_late(
        self, job: str, lateness: Lateness, *, at: datetime, event: AlertEvent
    ) -> bool:
        """Make the job late and write `event`, unless it is late already (then False)."""

    @abstractmethod
    async def mark_recovered(self, job: str, *, at: datetime, event: AlertEvent) -> bool:
        """End the job's lateness and write `event`, if it is late (else False)."""

    @abstractmethod
    async def late(self) -> dict[str, AlertState]:
        """The jobs that are late now, by name."""


__all__ = [
    "ALERT_OFF_ROUTING_KEY",
    "CHECKER_LEASE",
    "LATE_ROUTING_KEY",
    "RECOVERED_ROUTING_KEY",
    "AlertEvent",
    "AlertState",
    "AlertStore",
    "JobFacts",
    "Lateness",
]
