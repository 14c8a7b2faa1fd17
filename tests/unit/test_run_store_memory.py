"""MemoryRunStore: the run store contract and its batch calls, on a fake clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.store import RunStore
from financial.pkg.scheduler.store.memory import MemoryRunStore
from tests.contract.run_store_batch_contract import RunStoreBatchContract
from tests.contract.run_store_contract import LEASE, Elapse, RunStoreContract
from tests.contract.run_store_recent_contract import RunStoreRecentContract
from tests.unit.scheduling import T0


class TestMemoryRunStore(RunStoreContract, RunStoreBatchContract, RunStoreRecentContract):
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
