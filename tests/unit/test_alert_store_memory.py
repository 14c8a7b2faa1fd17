"""MemoryAlertStore: the alert store contract, on a fake clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from financial.pkg.scheduler.alerts import AlertStore
from financial.pkg.scheduler.alerts.memory import MemoryAlertStore
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.store import RunStore
from financial.pkg.scheduler.store.memory import MemoryRunStore
from tests.contract.alert_store_contract import AlertStoreContract, Written
from tests.contract.run_store_contract import LEASE, Elapse
from tests.unit.scheduling import T0


class TestMemoryAlertStore(AlertStoreContract):
    @pytest.fixture
    def fake_clock(self) -> FakeClock:
        return FakeClock(T0)

    @pytest.fixture
    def memory_runs(self, fake_clock: FakeClock) -> MemoryRunStore:
        return MemoryRunStore(fake_clock, lease=LEASE)

    @pytest.fixture
    def runs(self, memory_runs: MemoryRunStore) -> RunStore:
        return memory_runs

    @pytest.fixture
    def memory_alerts(self, memory_runs: MemoryRunStore, fake_clock: FakeClock) -> MemoryAlertStore:
        return MemoryAlertStore(memory_runs, fake_clock)

    @pytest.fixture
    def alerts(self, memory_alerts: MemoryAlertStore) -> AlertStore:
        return memory_alerts

    @pytest.fixture
    def elapse(self, fake_clock: FakeClock) -> Elapse:
        async def elapse(seconds: float) -> None:
            await fake_clock.advance(timedelta(seconds=seconds))

        return elapse

    @pytest.fixture
    def written(self, memory_alerts: MemoryAlertStore) -> Written:
        async def written() -> list[tuple[str, str]]:
            return [(event.routing_key, event.message_id) for event in memory_alerts.events]

        return written
