"""MemoryJobSettings against the job settings contract, and its change callback."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from financial.pkg.scheduler.job_settings import RuntimeSettings
from financial.pkg.scheduler.job_settings.memory import MemoryJobSettings
from tests.contract.job_settings_contract import JobSettingsContract

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


class TestMemoryJobSettings(JobSettingsContract):
    @pytest.fixture
    def settings(self) -> MemoryJobSettings:
        return MemoryJobSettings(lambda: NOW)


async def test_each_change_calls_on_change_with_the_job() -> None:
    heard: list[str] = []
    store = MemoryJobSettings(lambda: NOW, on_change=heard.append)
    await store.set("a", RuntimeSettings(enabled=False), by="x", reason=None)
    await store.reset("a", by="x", reason=None)
    await store.reset("a", by="x", reason=None)  # nothing set: no change, no call
    assert heard == ["a", "a"]
