"""The slotted draft record (`pkg/scheduler/store/drafts.py`) gives what the plain path gives:
`RunRecord(...)` for a new record, `dataclasses.replace` for each step of a run, and
`str(uuid.UUID(...))` of a random UUID for a run id."""

from __future__ import annotations

import random
import uuid
from dataclasses import FrozenInstanceError, fields, replace
from datetime import timedelta
from typing import Any

import pytest

from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.store import RunError, RunRecord, drafts
from financial.pkg.scheduler.store.memory import MemoryRunStore
from tests.unit.scheduling import T0


def test_the_store_builds_the_records_the_constructor_would() -> None:
    """The store writes a record's fields itself, not through RunRecord's `__init__`: a field
    or a check that `__init__` gained would be missed, which this test sees."""
    values = {f.name: _sentinel() for f in fields(RunRecord)}
    built = drafts.new_record(**values)
    assert type(built) is RunRecord
    assert built == RunRecord(**values)
    assert not hasattr(RunRecord, "__post_init__")
    with pytest.raises(FrozenInstanceError):
        built.status = RunStatus.FAILED  # type: ignore[misc]


def test_a_run_changes_only_the_fields_of_its_step() -> None:
    """The store builds records field by field, not through `dataclasses.replace`: a field it
    does not know (one RunRecord gained) would be dropped, which this test sees."""
    record = RunRecord(**{f.name: _sentinel() for f in fields(RunRecord)})
    at, lease_end, trace, fence = _sentinel(), _sentinel(), _sentinel(), _sentinel()
    took = 1234.5
    error = RunError("type", "message")
    changes: list[tuple[RunRecord, dict[str, Any]]] = [
        (
            drafts.as_started(record, at, trace, lease_end),
            {
                "status": RunStatus.RUNNING,
                "started_at": at,
                "trace_id": trace,
                "lease_expires_at": lease_end,
            },
        ),
        (
            drafts.as_renewed(record, lease_end),
            {"lease_expires_at": lease_end},
        ),
        (
            drafts.as_ended(record, RunStatus.FAILED, at, error, fence, took),
            {
                "status": RunStatus.FAILED,
                "finished_at": at,
                "error": error,
                "fence": fence,
                "lease_expires_at": None,
                "duration_ms": took,
            },
        ),
    ]
    for built, changed in changes:
        assert type(built) is RunRecord
        assert built == replace(record, **changed)


def test_an_end_without_a_duration_lasts_from_the_start() -> None:
    started = drafts.new_record(
        run_id="r-1",
        job="job",
        scheduled_at=T0,
        attempt=1,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.RUNNING,
        worker_id="w",
        created_at=T0,
        started_at=T0,
        fence=1,
        lease_expires_at=T0 + timedelta(seconds=30),
    )
    ended_at = T0 + timedelta(seconds=2.5)

    ended = drafts.as_ended(started, RunStatus.SUCCEEDED, ended_at, None, 1)

    assert ended == replace(
        started,
        status=RunStatus.SUCCEEDED,
        finished_at=ended_at,
        lease_expires_at=None,
        duration_ms=2500.0,
    )
    never_started = replace(started, status=RunStatus.PENDING, started_at=None)
    abandoned = drafts.as_ended(never_started, RunStatus.ABANDONED, ended_at, None, 2)
    assert abandoned.duration_ms is None


def test_a_run_id_is_the_uuid_the_uuid_module_writes() -> None:
    drawn = random.Random(12).getrandbits
    for bits in [
        0,
        2**128 - 1,
        0x0123456789ABCDEF_FEDCBA9876543210,
        *(drawn(128) for _ in range(500)),
    ]:
        assert drafts.uuid4_text(bits) == str(uuid.UUID(int=bits, version=4))


async def test_run_ids_are_random_uuid4_strings() -> None:
    store = MemoryRunStore(FakeClock(T0))
    run_ids = []
    for second in range(2000):
        record = await store.claim(
            "job",
            T0 + timedelta(seconds=second),
            attempt=1,
            trigger=Trigger.SCHEDULE,
            worker_id="w",
        )
        assert record is not None
        run_ids.append(record.run_id)
    for run_id in run_ids:
        parsed = uuid.UUID(run_id)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == run_id
    assert len(set(run_ids)) == len(run_ids)


def _sentinel() -> Any:
    """A value equal only to itself, accepted for any field (dataclasses do not check types)."""
    return object()
