"""The slotted draft record: how `MemoryRunStore` builds its `RunRecord`s and run ids.

A shortcut of its own (STYLE 13). The plain path is `RunRecord(...)` for a claimed run,
`dataclasses.replace(record, ...)` for each step of its life (started, lease renewed, ended),
and `str(uuid.uuid4())` for its id. Building records is most of what a run costs the in-memory
store, so here a `Draft` (the same slots as `RunRecord`, so the same memory layout) takes plain
attribute writes and then becomes a `RunRecord` by switching its class, and each step copies the
old record field by field; a run id is 128 bits from the store's own generator, given the
version and variant bits of a random UUID and formatted as `str(uuid.UUID)` formats one.
`tests/unit/test_store_drafts.py` holds these to the constructor, `dataclasses.replace` and
`uuid.UUID` (and fails when `RunRecord` gains a field or a check they do not know); what they
save is in `benchmarks/README.md#what-the-shortcuts-save`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.scheduler.store.runs import RunError, RunRecord

__all__ = ["as_ended", "as_renewed", "as_started", "new_record", "uuid4_text"]

# The bits of a random UUID that are random, and its version (4) and variant (RFC 4122).
_UUID4_KEPT = ~(0xF << 76 | 0x3 << 62)
_UUID4_SET = 0x4 << 76 | 0x2 << 62


def uuid4_text(bits: int) -> str:
    """`str(uuid.UUID(int=bits, version=4))` for 128 random `bits`."""
    h = f"{bits & _UUID4_KEPT | _UUID4_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Draft:
    """A `RunRecord` being written: the same slots, so the same memory layout, but writable."""

    __slots__ = RunRecord.__slots__


def new_record(
    *,
    run_id: str,
    job: str,
    scheduled_at: datetime,
    attempt: int,
    trigger: Trigger,
    status: RunStatus,
    worker_id: str,
    created_at: datetime,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    error: RunError | None = None,
    trace_id: str | None = None,
    fence: int = 0,
    lease_expires_at: datetime | None = None,
    duration_ms: float | None = None,
) -> RunRecord:
    """`RunRecord(...)` with the same arguments, an ordinary frozen RunRecord.

    A frozen dataclass's `__init__` writes each field through `object.__setattr__`. Here a
    `Draft` takes plain writes, then becomes a RunRecord by switching its class, which Python
    allows between classes of the same layout.
    """
    draft: Any = object.__new__(Draft)
    draft.run_id = run_id
    draft.job = job
    draft.scheduled_at = scheduled_at
    draft.attempt = attempt
    draft.trigger = trigger
    draft.status = status
    draft.worker_id = worker_id
    draft.created_at = created_at
    draft.started_at = started_at
    draft.finished_at = finished_at
    draft.error = error
    draft.trace_id = trace_id
    draft.fence = fence
    draft.lease_expires_at = lease_expires_at
    draft.duration_ms = duration_ms
    draft.__class__ = RunRecord
    return cast(RunRecord, draft)


def as_started(
    r: RunRecord, started_at: datetime, trace_id: str | None, lease_expires_at: datetime
) -> RunRecord:
    """`r` marked running at `started_at`, under a fresh lease."""
    return _changed(
        r,
        RunStatus.RUNNING,
        started_at,
        r.finished_at,
        r.error,
        trace_id,
        r.fence,
        lease_expires_at,
        r.duration_ms,
    )


def as_renewed(r: RunRecord, lease_expires_at: datetime) -> RunRecord:
    """`r` with its lease renewed until `lease_expires_at`."""
    return _changed(
        r,
        r.status,
        r.started_at,
        r.finished_at,
        r.error,
        r.trace_id,
        r.fence,
        lease_expires_at,
        r.duration_ms,
    )


def as_ended(
    r: RunRecord,
    status: RunStatus,
    finished_at: datetime,
    error: RunError | None,
    fence: int,
    duration_ms: float | None = None,
) -> RunRecord:
    """`r` ended with `status` at `finished_at`, its lease gone; without `duration_ms`, a run
    that started lasted from its start to `finished_at`."""
    if duration_ms is None and r.started_at is not None:
        duration_ms = (finished_at - r.started_at).total_seconds() * 1000.0
    return _changed(
        r, status, r.started_at, finished_at, error, r.trace_id, fence, None, duration_ms
    )


def _changed(
    r: RunRecord,
    status: RunStatus,
    started_at: datetime | None,
    finished_at: datetime | None,
    error: RunError | None,
    trace_id: str | None,
    fence: int,
    lease_expires_at: datetime | None,
    duration_ms: float | None,
) -> RunRecord:
    """`r` with the fields a run's life changes, the identity of the run kept."""
    return new_record(
        run_id=r.run_id,
        job=r.job,
        scheduled_at=r.scheduled_at,
        attempt=r.attempt,
        trigger=r.trigger,
        status=status,
        worker_id=r.worker_id,
        created_at=r.created_at,
        started_at=started_at,
        finished_at=finished_at,
        error=error,
        trace_id=trace_id,
        fence=fence,
        lease_expires_at=lease_expires_at,
        duration_ms=duration_ms,
    )
