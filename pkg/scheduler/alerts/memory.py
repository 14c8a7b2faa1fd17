"""MemoryAlertStore: the alert store port in memory, for unit tests (one process).

It reads the run history from a `MemoryRunStore` and keeps the events it would have written to
the outbox in `events`, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from financial.pkg.jobs.model import RunStatus
from financial.pkg.scheduler.alerts import AlertEvent, AlertState, AlertStore, JobFacts, Lateness
from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.store.memory import MemoryRunStore


class MemoryAlertStore(AlertStore):
    def __init__(self, runs: MemoryRunStore, clock: Clock) -> None:
        self._runs = runs
        self._clock = clock
        self._leases: dict[str, tuple[str, datetime]] = {}
        self._states: dict[str, AlertState] = {}
        self.events: list[AlertEvent] = []

    async def take_lease(self, name: str, holder: str, ttl: timedelta) -> bool:
        now = self._clock.now()
        current = self._leases.get(name)
        if current is not None and current[0] != holder and current[1] > now:
            return False
        self._leases[name] = (holder, now + ttl)
        return True

    async def release_lease(self, name: str, holder: str) -> None:
        current = self._leases.get(name)
        if current is not None and current[0] == holder:
            self._leases[name] = (holder, self._clock.now())

    async def watch(self, jobs: Sequence[str], at: datetime) -> dict[str, AlertState]:
        for job in jobs:
            self._states.setdefault(job, AlertState(job=job, watched_since=at))
        return {job: self._states[job] for job in jobs}

    async def rewatch(self, jobs: Sequence[str], at: datetime) -> None:
        for job in jobs:
            state = self._states.get(job)
            self._states[job] = (
                AlertState(job=job, watched_since=at)
                if state is None
                else replace(state, watched_since=at)
            )

    async def forget(
        self, jobs: Sequence[str], *, event: Callable[[AlertState], AlertEvent]
    ) -> list[AlertState]:
        dropped = [self._states.pop(job) for job in sorted(set(jobs)) if job in self._states]
        late = [state for state in dropped if state.late]
        self.events.extend(event(state) for state in late)
        return late

    async def facts(self, ticks: Mapping[str, datetime | None]) -> dict[str, JobFacts]:
        result: dict[str, JobFacts] = {}
        for job, tick in ticks.items():
            runs = await self._runs.history(job, limit=1_000_000)
            successes = [r.scheduled_at for r in runs if r.status is RunStatus.SUCCEEDED]
            started = None
            if tick is not None:
                started = any(
                    r.scheduled_at == tick
                    and (r.started_at is not None or r.status is RunStatus.SKIPPED)
                    for r in runs
                )
            result[job] = JobFacts(max(successes, default=None), started)
        return result

    async def mark_late(
        self, job: str, lateness: Lateness, *, at: datetime, event: AlertEvent
    ) -> bool:
        state = self._states.get(job) or AlertState(job=job, watched_since=at)
        if state.late:
            return False
        self._states[job] = replace(
            state,
            late_since=lateness.since,
            late_tick=lateness.tick,
            reason=lateness.reason,
            alerted_at=at,
        )
        self.events.append(event)
        return True

    async def mark_recovered(self, job: str, *, at: datetime, event: AlertEvent) -> bool:
        state = self._states.get(job)
        if state is None or not state.late:
            return False
        self._states[job] = replace(
            state, late_since=None, late_tick=None, reason=None, recovered_at=at
        )
        self.events.append(event)
        return True

    async def late(self) -> dict[str, AlertState]:
        return {job: state for job, state in sorted(self._states.items()) if state.late}
