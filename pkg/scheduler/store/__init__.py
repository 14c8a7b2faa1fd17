"""The run store port: claims of ticks, leases, and the history of runs.

Two implementations share one contract test suite (`tests/contract/run_store_contract.py`):
`MemoryRunStore` (`memory.py`: unit tests; one process) and the PostgreSQL store
(`financial.pkg.scheduler.store.postgres`; every replica). The semantics, which both keep:

- A tick is claimed by a unique key on `(job, scheduled_at, attempt)`: whoever inserts it first
  runs it, which is what makes a tick run once across replicas. A claim of a key that exists
  returns None.
- A claim may be refused on the spot and recorded `skipped`, in the same step that inserts it:
  when the job is paused (every trigger but `manual`), or when its overlap policy is `skip` and
  another run of the job is live. With `replace`, the claim ends every other live run of the job
  `interrupted`. So overlap policies hold across replicas, not only inside one process.
- Every run that is not final (`pending`, `running`) holds a lease of `store.lease`, with its
  expiry taken from the store's clock (PostgreSQL's `now()`, so replica clocks may disagree). Its
  worker renews it; a run whose lease expired is "abandoned" and `sweep_abandoned` (any replica)
  gives it that final status.
- Each row carries a fence number. Changes by the run's own worker (`start`, `renew`, `finish`)
  apply only while the fence they hold is the row's; a takeover (`sweep_abandoned`, a `replace`)
  raises it. A worker that lost its lease therefore cannot overwrite the row's final status.
- A run's first final status is its only one: `finish` on a final row returns it unchanged.
- `claim_many`, `start_many` and `finish_many` do for several runs what `claim`, `start` and
  `finish` do for one, with the same semantics per run, answering in request order; a shared
  store makes each batch one round trip. The scheduler sends the claims, starts and finishes of
  runs due at the same instant through them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from financial.pkg.jobs.model import Overlap, RunStatus, Trigger
from financial.pkg.scheduler.store.runs import (
    DEFAULT_LEASE,
    LIVE_STATUSES,
    OVERLAP_REPLACED_REASON,
    OVERLAP_SKIP_REASON,
    ClaimRequest,
    FinishRequest,
    JobSummary,
    RunError,
    RunNotFound,
    RunRecord,
    RunStoreUnavailable,
    StartRequest,
    describe,
    honours_pause,
    overlap_reason,
    paused_reason,
    require_final,
    skipped_for_pause,
)

__all__ = [
    "DEFAULT_LEASE",
    "LIVE_STATUSES",
    "OVERLAP_REPLACED_REASON",
    "OVERLAP_SKIP_REASON",
    "ClaimRequest",
    "FinishRequest",
    "JobSummary",
    "RunError",
    "RunNotFound",
    "RunRecord",
    "RunStore",
    "RunStoreUnavailable",
    "StartRequest",
    "describe",
    "honours_pause",
    "overlap_reason",
    "paused_reason",
    "require_final",
    "skipped_for_pause",
]


class RunStore(ABC):
    """Where ticks are claimed, leases kept and runs recorded (see the module's semantics)."""

    lease: timedelta = DEFAULT_LEASE
    # True when other processes use the same store (replicas): only then can a run be left
    # behind by a worker that died, so only then does the scheduler sweep for abandoned runs.
    shared: bool = False
    # True when a call costs a round trip: the runner then gathers the claims, starts and
    # finishes of runs due together into `claim_many`, `start_many`, `finish_many` calls. A store
    # that answers in memory is called run by run (a batch would only add loop passes).
    batched: bool = False

    @abstractmethod
    async def claim(
        self,
        job: str,
        scheduled_at: datetime,
        *,
        attempt: int,
        trigger: Trigger,
        worker_id: str,
        overlap: Overlap = Overlap.ALLOW,
    ) -> RunRecord | None:
        """Claim a tick: a new `pending` run holding a lease, a `skipped` one (paused, or
        overlap `skip` with another live run), or None when that (job, tick, attempt) exists."""

    async def claim_many(
        self, requests: Sequence[ClaimRequest], *, worker_id: str
    ) -> list[RunRecord | None]:
        """Claim several ticks (runs due at the same instant), results in request order.

        Each request is decided as `claim` would decide it alone; requests for one job are
        not expected in one batch."""
        return [
            await self.claim(
                r.job,
                r.scheduled_at,
                attempt=r.attempt,
                trigger=r.trigger,
                worker_id=worker_id,
                overlap=r.overlap,
            )
            for r in requests
        ]

    @abstractmethod
    async def start(self, run_id: str, *, fence: int, trace_id: str | None = None) -> RunRecord:
        """Mark a claimed run `running` and renew its lease; returns the row as it now is.

        A row whose fence moved on, or that is final already, is returned unchanged: the caller
        has lost the run and must not execute it.
        """

    async def start_many(self, requests: Sequence[StartRequest]) -> list[RunRecord | None]:
        """`start` for several runs, results in request order; None for an unknown run id."""
        results: list[RunRecord | None] = []
        for r in requests:
            try:
                results.append(await self.start(r.run_id, fence=r.fence, trace_id=r.trace_id))
            except RunNotFound:
                results.append(None)
        return results

    @abstractmethod
    async def renew(self, held: Mapping[str, int]) -> set[str]:
        """Renew the leases of live runs held as {run_id: fence}; returns the ids renewed.

        A run missing from the result was taken over or ended by someone else.
        """

    @abstractmethod
    async def finish(
        self,
        run_id: str,
        status: RunStatus,
        *,
        fence: int,
        error: RunError | None = None,
        duration_ms: float | None = None,
    ) -> RunRecord:
        """Give a run its final status, if it is still live and `fence` is still its fence.

        `duration_ms` is the job's own time (None: from the run's start to now). Returns the row
        as it now is: a row that was final already keeps its first status.
        """

    async def finish_many(self, requests: Sequence[FinishRequest]) -> list[RunRecord | None]:
        """`finish` for several runs, results in request order; None for an unknown run id.

        A status that is not final is refused (ValueError) before anything is written."""
        for r in requests:
            require_final(r.run_id, r.status)
        results: list[RunRecord | None] = []
        for r in requests:
            try:
                results.append(
                    await self.finish(
                        r.run_id, r.status, fence=r.fence, error=r.error, duration_ms=r.duration_ms
                    )
                )
            except RunNotFound:
                results.append(None)
        return results

    @abstractmethod
    async def live_runs(self, job: str) -> list[RunRecord]:
        """The job's runs that are not final and whose lease has not expired."""

    @abstractmethod
    async def sweep_abandoned(self, *, limit: int = 100) -> list[RunRecord]:
        """Mark up to `limit` live runs whose lease expired `abandoned`; return them."""

    @abstractmethod
    async def prune(self, older_than: timedelta, *, limit: int = 1000) -> int:
        """Delete up to `limit` final runs created more than `older_than` ago; return how many."""

    @abstractmethod
    async def pause(self, job: str, reason: str | None = None) -> None:
        """Pause a job on every replica: its ticks are recorded `skipped` until `resume`."""

    @abstractmethod
    async def resume(self, job: str) -> bool:
        """Resume a paused job; False when it was not paused."""

    @abstractmethod
    async def paused(self) -> dict[str, str | None]:
        """Paused jobs and the reason given, if any."""

    @abstractmethod
    async def recorded_ticks(self, job: str, since: datetime) -> set[datetime]:
        """The ticks at or after `since` that have at least one run of `job`."""

    @abstractmethod
    async def history(
        self, job: str | None = None, *, status: RunStatus | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """Runs, newest tick first (then highest attempt first)."""

    async def recent_runs(self, jobs: Sequence[str], *, limit: int) -> dict[str, list[RunRecord]]:
        """The newest `limit` runs of each of `jobs` (ordered as `history`), in one call.

        Every job asked for is a key, one with no run maps to an empty list. A shared store
        answers in one round trip (the status page's overview of hundreds of jobs); this default
        asks `history` job by job."""
        return {job: await self.history(job, limit=limit) for job in dict.fromkeys(jobs)}

    @abstractmethod
    async def summaries(self, jobs: Sequence[str]) -> dict[str, JobSummary]:
        """A summary for each of `jobs` (those with no history have an empty one)."""

    async def close(self) -> None:  # noqa: B027 - most stores hold nothing to release
        """Release what the store holds."""
