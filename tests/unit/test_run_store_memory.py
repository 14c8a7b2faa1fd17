"""MemoryRunStore: the run store contract and its batch calls, on a fake clock."""

from __future__ import annotations

import uuid
from dataclasses import FrozenInstanceError, fields, replace
from datetime import timedelta
from typing import Any

import pytest

from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.store import RunError, RunRecord, RunStore
from financial.pkg.scheduler.store import memory as memory_store
from financial.pkg.scheduler.store.memory import MemoryRunStore
from tests.contract.run_store_batch_contract import RunStoreBatchContract
from tests.contract.run_store_contract import LEASE, Elapse, RunStoreContract
from tests.unit.scheduling import T0


class TestMemoryRunStore(RunStoreContract, RunStoreBatchContract):
    @pytest.fixture
    def fake_clock(self) -> FakeClock:
        return FakeClock(T0)

    @pytest.fixture
    def store(self, fake_clock: FakeClock) -> RunStore:
        return MemoryRunStore(fake_clock, lease=LEASE)

    @pytest.fixture
    def elapse(self, fake_clock: FakeClock) -> Elapse:
        async def elapse(seconds: float) -> None:
            await fake_clock.advance(timedelta(seconds=seconds))

        return elapse


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


def test_the_store_builds_the_records_the_constructor_would() -> None:
    """The store writes a record's fields itself, not through RunRecord's `__init__`: a field
    or a check that `__init__` gained would be missed, which this test sees."""
    values = {f.name: _sentinel() for f in fields(RunRecord)}
    built = memory_store._record(**values)
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
            memory_store._started(record, at, trace, lease_end),
            {
                "status": RunStatus.RUNNING,
                "started_at": at,
                "trace_id": trace,
                "lease_expires_at": lease_end,
            },
        ),
        (
            memory_store._renewed(record, lease_end),
            {"lease_expires_at": lease_end},
        ),
        (
            memory_store._ended(record, RunStatus.FAILED, at, error, fence, took),
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


def _sentinel() -> Any:
    """A value equal only to itself, accepted for any field (dataclasses do not check types)."""
    return object()
