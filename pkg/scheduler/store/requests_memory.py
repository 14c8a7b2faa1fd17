"""`MemoryRequestStore`: the in-memory twin of the PostgreSQL run request store, for unit tests.

It keeps the semantics of the port (`requests.py`) and passes the same contract suite; the runs it
looks at (live runs, succeeded ticks, attempts) are those of the run store it is given.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.store import RunStore
from financial.pkg.scheduler.store.requests import (
    DEFAULT_CLAIM_LEASE,
    Cancellation,
    RequestCounts,
    RequestState,
    RequestStore,
    RunRequest,
    request_trigger,
    request_uuids,
)

# Enough to see every run of a job in a unit test's store.
_ALL = 1_000_000


class MemoryRequestStore(RequestStore):
    """Run requests in memory, beside the run store `runs` (timestamps from `clock`)."""

    def __init__(
        self, runs: RunStore, clock: Clock, *, claim_lease: timedelta | None = None
    ) -> None:
        self._runs = runs
        self._clock = clock
        self.claim_lease = claim_lease or DEFAULT_CLAIM_LEASE
        self._requests: dict[str, RunRequest] = {}
        self._expiry: dict[str, datetime] = {}
        self._order: list[str] = []

    async def add(
        self,
        job: str,
        ticks: Sequence[datetime | None],
        *,
        trigger: Trigger,
        requested_by: str,
        args: Mapping[str, Any] | None = None,
    ) -> list[RunRequest]:
        trigger = request_trigger(trigger)
        now = self._clock.now()
        open_ticks = {
            r.tick
            for r in self._requests.values()
            if r.job == job and r.trigger is Trigger.BACKFILL and r.state.is_open
        }
        added: list[RunRequest] = []
        for tick in sorted(ticks, key=lambda t: now if t is None else t):
            at = now if tick is None else tick
            if trigger is Trigger.BACKFILL and at in open_ticks:
                continue
            open_ticks.add(at)
            request = RunRequest(
                request_id=str(uuid.uuid4()),
                job=job,
                tick=at,
                trigger=trigger,
                requested_at=now,
                requested_by=requested_by,
                args=dict(args or {}),
            )
            self._requests[request.request_id] = request
            self._order.append(request.request_id)
            added.append(request)
        return added

    async def claim(self, jobs: Sequence[str], *, worker_id: str, limit: int) -> list[RunRequest]:
        await self.expire()
        busy = {r.job for r in self._requests.values() if r.state is RequestState.CLAIMED}
        claimed: list[RunRequest] = []
        for request in await self.open_requests():
            if len(claimed) >= limit:
                break
            if request.job not in jobs or request.job in busy:
                continue
            busy.add(request.job)  # its oldest open request, claimable or not, goes first
            if request.state is not RequestState.PENDING or await self._runs.live_runs(request.job):
                continue
            taken = replace(request, state=RequestState.CLAIMED, claimed_by=worker_id)
            self._requests[request.request_id] = taken
            self._expiry[request.request_id] = self._clock.now() + self.claim_lease
            claimed.append(taken)
        return claimed

    async def renew(self, request_ids: Sequence[str], *, worker_id: str) -> set[str]:
        await self.expire()
        renewed: set[str] = set()
        for request_id in request_ids:
            request = self._requests.get(request_id)
            if (
                request is not None
                and request.state is RequestState.CLAIMED
                and request.claimed_by == worker_id
            ):
                self._expiry[request_id] = self._clock.now() + self.claim_lease
                renewed.add(request_id)
        return renewed

    async def complete(
        self, request_id: str, *, worker_id: str, run_id: str | None, status: RunStatus
    ) -> RunRequest | None:
        request = self._requests.get(request_id)
        if request is None:
            return None
        if request.state is RequestState.CLAIMED and request.claimed_by == worker_id:
            request = self._done(request, run_id, status)
        return request

    async def expire(self) -> list[RunRequest]:
        now = self._clock.now()
        lapsed = [
            r
            for r in self._requests.values()
            if r.state is RequestState.CLAIMED and self._expiry[r.request_id] <= now
        ]
        return [self._done(r, r.run_id, RunStatus.ABANDONED) for r in lapsed]

    def _done(self, request: RunRequest, run_id: str | None, status: RunStatus) -> RunRequest:
        done = replace(
            request,
            state=RequestState.DONE,
            run_id=run_id,
            status=status,
            finished_at=self._clock.now(),
        )
        self._requests[request.request_id] = done
        self._expiry.pop(request.request_id, None)
        return done

    async def get(self, request_id: str) -> RunRequest | None:
        return self._requests.get(request_id)

    async def open_requests(
        self, job: str | None = None, *, limit: int | None = None
    ) -> list[RunRequest]:
        found = [
            r
            for r in (self._requests[i] for i in self._order)
            if r.state.is_open and (job is None or r.job == job)
        ]
        ordered = sorted(found, key=lambda r: (r.requested_at, r.tick))
        return ordered if limit is None else ordered[:limit]

    async def counts(self, jobs: Sequence[str]) -> dict[str, RequestCounts]:
        found: dict[str, RequestCounts] = {}
        for request in self._requests.values():
            if request.job not in jobs or not request.state.is_open:
                continue
            now = found.get(request.job, RequestCounts())
            pending = request.state is RequestState.PENDING
            found[request.job] = RequestCounts(
                pending=now.pending + pending, claimed=now.claimed + (not pending)
            )
        return found

    async def cancel(
        self,
        job: str,
        request_ids: Sequence[str] | None,
        *,
        trigger: Trigger | None = None,
        cancelled_by: str,
        reason: str | None = None,
    ) -> Cancellation:
        if request_ids is None:
            asked = [r for r in await self.open_requests(job) if trigger in (None, r.trigger)]
            unknown: list[str] = []
        else:
            ids = [str(i) for i in request_uuids(request_ids)]
            asked = [self._requests[i] for i in dict.fromkeys(ids) if i in self._requests]
            unknown = [i for i in dict.fromkeys(ids) if i not in self._requests]
        cancelled: list[RunRequest] = []
        left: list[RunRequest] = []
        for request in asked:
            if (
                request.job == job
                and request.state is RequestState.PENDING
                and trigger in (None, request.trigger)
            ):
                request = replace(
                    request,
                    state=RequestState.CANCELLED,
                    finished_at=self._clock.now(),
                    cancelled_by=cancelled_by,
                    cancel_reason=reason,
                )
                self._requests[request.request_id] = request
                cancelled.append(request)
            else:
                left.append(request)
        return Cancellation(
            cancelled=tuple(sorted(cancelled, key=lambda r: (r.requested_at, r.tick))),
            left=tuple(left),
            unknown=tuple(unknown),
        )

    async def prune(self, before: datetime, *, limit: int = 1000) -> int:
        old = sorted(
            (r for r in self._requests.values() if not r.state.is_open and _finished(r) < before),
            key=_finished,
        )[:limit]
        for request in old:
            del self._requests[request.request_id]
            self._order.remove(request.request_id)
        return len(old)

    async def succeeded_ticks(self, job: str, start: datetime, end: datetime) -> set[datetime]:
        runs = await self._runs.history(job, status=RunStatus.SUCCEEDED, limit=_ALL)
        return {r.scheduled_at for r in runs if start <= r.scheduled_at <= end}

    async def next_attempt(self, job: str, tick: datetime) -> int:
        runs = await self._runs.history(job, limit=_ALL)
        return 1 + max((r.attempt for r in runs if r.scheduled_at == tick), default=0)


def _finished(request: RunRequest) -> datetime:
    return request.finished_at or request.requested_at
