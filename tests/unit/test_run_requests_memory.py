"""MemoryRequestStore: the run request contract, on a fake clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.store import RunStore
from financial.pkg.scheduler.store.memory import MemoryRunStore
from financial.pkg.scheduler.store.requests import RequestStore
from financial.pkg.scheduler.store.requests_memory import MemoryRequestStore
from tests.contract.run_request_cancel_contract import RunRequestCancelContract
from tests.contract.run_request_contract import CLAIM_LEASE, Elapse, RunRequestContract
from tests.unit.scheduling import T0


class TestMemoryRequestStore(RunRequestContract, RunRequestCancelContract):
    @pytest.fixture
    def fake_clock(self) -> FakeClock:
        return FakeClock(T0)

    @pytest.fixture
    def runs(self, fake_clock: FakeClock) -> RunStore:
        return MemoryRunStore(fake_clock, shared=True)

    @pytest.fixture
    def requests(self, runs: RunStore, fake_clock: FakeClock) -> RequestStore:
        return MemoryRequestStore(runs, fake_clock, claim_lease=CLAIM_LEASE)

    @pytest.fixture
    def elapse(self, fake_clock: FakeClock) -> Elapse:
        async def elapse(seconds: float) -> None:
            await fake_clock.advance(timedelta(seconds=seconds))

        return elapse
