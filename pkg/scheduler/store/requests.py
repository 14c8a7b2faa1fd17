"""The run request port: runs an operator asks the cluster for (`jobs trigger`, `jobs backfill`).

Two implementations share one contract suite (`tests/contract/run_request_contract.py`):
`MemoryRequestStore` (`requests_memory.py`, unit tests) and `PostgresRequestStore`
(`requests_postgres.py`, table `run_requests` of migration 0006). The semantics, which both keep:

- `add` records `pending` requests, one per tick, all with one `requested_at`, and wakes the
  workers (PostgreSQL: `pg_notify` on `REQUESTS_CHANNEL` in the same statement). A backfill tick
  that has an open (not `done`) backfill request already is not added twice.
- `claim` hands a worker at most one request per job, the job's oldest (`requested_at`, then
  tick order), and none for a job that has a claimed request already or a live run in the run
  store (pending or running, lease not expired). So a job's requests run one at a time, in order,
  across the cluster, and never beside another run of the job: a `--tick` re-run of a tick still
  running waits for it, and the backfill of a job with overlap `skip` is not skipped by itself.
  Claims are decided one worker at a time, so two replicas never claim two requests of one job.
- A claim holds a lease of `claim_lease` that its worker renews (`renew`); `expire` ends the
  requests whose claim lapsed (their worker died) `done` with status `abandoned` (at most once,
  as a run whose replica died: the operator asks again if the job may run twice).
- `complete` links a claimed request to the run it became and that run's final status; only the
  worker holding the claim can complete it.
- `cancel` withdraws a job's `pending` requests (those given, or all; of one trigger if asked):
  each ends `cancelled` with who and why, no run status, and `finished_at` set. A request is
  cancelled only if it is still pending at that moment, so against a racing `claim` it is either
  run or cancelled, never both; a claimed request's run goes on. A cancelled request is closed:
  never claimed, not counted, and its backfill tick can be requested again.
- `prune(before)` deletes `done` and `cancelled` requests that finished before `before` (the run
  history's retention, in the maintenance pass); pending and claimed ones are never pruned.
- `counts` gives each job's open requests by state, one read for every job (`jobs list`).
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from financial.pkg.jobs.model import RunStatus, Trigger

# The channel a request's insert notifies (its payload: the job's name).
REQUESTS_CHANNEL = "financial_run_requests"
DEFAULT_CLAIM_LEASE = timedelta(seconds=30)
REQUEST_TRIGGERS = (Trigger.MANUAL, Trigger.BACKFILL)


class RequestState(StrEnum):
    """Where a request is: waiting for a worker, being run by one, done (it became a run), or
    cancelled (withdrawn while pending: it never became a run)."""

    PENDING = "pending"
    CLAIMED = "claimed"
    DONE = "done"
    CANCELLED = "cancelled"

    @property
    def is_open(self) -> bool:
        """Pending or claimed: a request a worker has still to run or is running."""
        return self in (RequestState.PENDING, RequestState.CLAIMED)


@dataclass(frozen=True, slots=True)
class RunRequest:
    """One run asked for: of `job`, for `tick`, with `args` for `ctx.args`."""

    request_id: str
    job: str
    tick: datetime
    trigger: Trigger
    requested_at: datetime
    requested_by: str
    args: Mapping[str, Any] = field(default_factory=dict)
    state: RequestState = RequestState.PENDING
    claimed_by: str | None = None
    run_id: str | None = None
    status: RunStatus | None = None
    finished_at: datetime | None = None
    cancelled_by: str | None = None
    cancel_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Cancellation:
    """What a `cancel` did: the requests it `cancelled` (in the order they would have run), those
    asked for that it `left` as they now are (claimed, done, cancelled already, of another job or
    trigger; with `all_pending`, the job's claimed requests of that trigger), and the ids given
    that name no request (`unknown`)."""

    cancelled: tuple[RunRequest, ...] = ()
    left: tuple[RunRequest, ...] = ()
    unknown: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RequestCounts:
    """A job's open requests: `pending` (queued, waiting for a worker) and `claimed` (being run)."""

    pending: int = 0
    claimed: int = 0

    @property
    def open(self) -> int:
        return self.pending + self.claimed


class RequestStore(ABC):
    """Where run requests wait for a worker (see the module's semantics)."""

    claim_lease: timedelta = DEFAULT_CLAIM_LEASE

    @abstractmethod
    async def add(
        self,
        job: str,
        ticks: Sequence[datetime | None],
        *,
        trigger: Trigger,
        requested_by: str,
        args: Mapping[str, Any] | None = None,
    ) -> list[RunRequest]:
        """Record a pending request per tick (None: the instant it is recorded); returns those
        added, in tick order (a backfill tick with an open request already is left out)."""

    @abstractmethod
    async def claim(self, jobs: Sequence[str], *, worker_id: str, limit: int) -> list[RunRequest]:
        """Claim up to `limit` pending requests of `jobs` for `worker_id`, at most one per job."""

    @abstractmethod
    async def renew(self, request_ids: Sequence[str], *, worker_id: str) -> set[str]:
        """Renew the claims `worker_id` holds; returns the ids renewed."""

    @abstractmethod
    async def complete(
        self, request_id: str, *, worker_id: str, run_id: str | None, status: RunStatus
    ) -> RunRequest | None:
        """A claimed request is done: the run it became (None: none was recorded) and its final
        status. Returns the request as it now is; None for an unknown id."""

    @abstractmethod
    async def expire(self) -> list[RunRequest]:
        """End the requests whose claim lapsed `abandoned`; return them."""

    @abstractmethod
    async def get(self, request_id: str) -> RunRequest | None:
        """One request, as it now is."""

    @abstractmethod
    async def open_requests(
        self, job: str | None = None, *, limit: int | None = None
    ) -> list[RunRequest]:
        """Requests not done yet (of one job, or every one), in the order they are run; the
        first `limit` of them when given."""

    @abstractmethod
    async def counts(self, jobs: Sequence[str]) -> dict[str, RequestCounts]:
        """The open requests of each of `jobs` by state; a job with none is left out."""

    @abstractmethod
    async def cancel(
        self,
        job: str,
        request_ids: Sequence[str] | None,
        *,
        trigger: Trigger | None = None,
        cancelled_by: str,
        reason: str | None = None,
    ) -> Cancellation:
        """Cancel the `pending` requests of `job` among `request_ids` (None: all of the job's),
        of `trigger` only when given. ValueError for an id that is not a UUID."""

    @abstractmethod
    async def prune(self, before: datetime, *, limit: int = 1000) -> int:
        """Delete up to `limit` `done` or `cancelled` requests that finished before `before`
        (oldest first); returns how many. Pending and claimed requests are never deleted."""

    @abstractmethod
    async def succeeded_ticks(self, job: str, start: datetime, end: datetime) -> set[datetime]:
        """The ticks from `start` to `end` (both included) with a `succeeded` run of `job`."""

    @abstractmethod
    async def next_attempt(self, job: str, tick: datetime) -> int:
        """The attempt number a new run of `job` for `tick` takes: one past its highest."""

    async def close(self) -> None:  # noqa: B027 - most stores hold nothing to release
        """Release what the store holds."""


async def first_open(store: RequestStore, job: str, limit: int) -> tuple[list[RunRequest], int]:
    """The first `limit` open requests of `job` in the order they run, and how many are open in
    all (counted only when the first ones filled the limit)."""
    found = await store.open_requests(job, limit=limit)
    total = len(found)
    if total >= limit:
        total = (await store.counts([job])).get(job, RequestCounts()).open
    return found, max(total, len(found))  # a request may be added between the two reads


def request_uuids(request_ids: Sequence[str]) -> list[uuid.UUID]:
    """The ids as UUIDs; ValueError naming the first that is not one."""
    parsed: list[uuid.UUID] = []
    for request_id in request_ids:
        try:
            parsed.append(uuid.UUID(request_id))
        except (ValueError, AttributeError, TypeError):
            raise ValueError(
                f"request id {request_id!r}: expected a UUID such as "
                "3f2b8c1e-6d4a-4b7e-9c2d-1a5e8f0b7c63"
            ) from None
    return parsed


def request_trigger(value: object) -> Trigger:
    """The trigger of a request: `manual` or `backfill`, else ValueError naming the choices."""
    try:
        trigger = Trigger(str(value))
    except ValueError:
        trigger = None
    if trigger not in REQUEST_TRIGGERS:
        raise ValueError(f"run request trigger {value!r}: expected manual or backfill")
    assert trigger is not None
    return trigger
