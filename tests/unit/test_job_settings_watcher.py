"""The applier and the watcher on a fake clock and the in-memory settings store: notifications
applied at once, the periodic re-read for a lost one, invalid or unknown rows logged once and
ignored, everything re-read when the LISTEN connection is back, and a failed read logged once,
retried with back-off and caught up."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from structlog.testing import capture_logs

from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.job_settings import RuntimeSettings
from financial.pkg.scheduler.job_settings.memory import MemoryJobSettings
from financial.pkg.scheduler.loop.job_settings import JobSettingsApplier, JobSettingsWatcher
from financial.pkg.scheduler.registry import JobRegistry, JobSpec
from tests.unit.scheduling import Recorder, job_of


class FlakyStore(MemoryJobSettings):
    """The memory store whose reads fail while `broken` (a database that does not answer)."""

    broken = False

    async def get(self, job: str) -> RuntimeSettings:
        self._check()
        return await super().get(job)

    async def all(self) -> dict[str, RuntimeSettings]:
        self._check()
        return await super().all()

    def _check(self) -> None:
        if self.broken:
            raise ConnectionResetError("connection lost")


def setup(clock: FakeClock) -> tuple[JobRegistry, FlakyStore, list[JobSpec]]:
    registry = JobRegistry()
    registry.add(job_of("*/10 * * * * *", Recorder(clock), name="alpha"))
    registry.add(job_of("0 3 * * *", Recorder(clock), name="beta"))
    return registry, FlakyStore(clock.now), []


async def test_refresh_applies_what_changed_only(clock: FakeClock) -> None:
    registry, store, applied = setup(clock)
    applier = JobSettingsApplier(registry, store, applied.append)
    await store.set("alpha", RuntimeSettings(schedule="@every 7s"), by="a", reason=None)
    assert await applier.refresh() == ["alpha"]
    assert [spec.schedule.expression for spec in applied] == ["@every 7s"]
    assert await applier.refresh() == []  # nothing new
    await store.reset("alpha", by="a", reason=None)
    assert await applier.refresh("alpha") == ["alpha"]
    assert registry.get("alpha").schedule.expression == "*/10 * * * * *"


async def test_an_invalid_or_unknown_row_is_logged_once_and_changes_nothing(
    clock: FakeClock,
) -> None:
    registry, store, applied = setup(clock)
    applier = JobSettingsApplier(registry, store, applied.append)
    # Written past validation (an older CLI, a calendar this replica's data lacks).
    await store.set("beta", RuntimeSettings(calendar="XX-NOPE"), by="a", reason=None)
    await store.set("gone", RuntimeSettings(enabled=False), by="a", reason=None)
    with capture_logs() as logs:
        assert await applier.refresh() == []
        assert await applier.refresh() == []
    events = [(e["event"], e["job"]) for e in logs]
    assert events == [("job_settings_unknown_job", "gone"), ("job_settings_invalid", "beta")]
    assert "XX-NOPE" in next(e["error"] for e in logs if e["event"] == "job_settings_invalid")
    assert applied == []
    assert registry.get("beta").calendar is None


async def run_watcher(clock: FakeClock, watcher: JobSettingsWatcher) -> asyncio.Task[None]:
    task = asyncio.create_task(watcher.run())
    await clock.settle()
    return task


async def stop(clock: FakeClock, watcher: JobSettingsWatcher, task: asyncio.Task[None]) -> None:
    watcher.stop()
    await clock.settle()
    await asyncio.wait_for(task, 1)


async def test_a_notification_is_applied_at_once(clock: FakeClock) -> None:
    registry, store, applied = setup(clock)
    watcher = JobSettingsWatcher(JobSettingsApplier(registry, store, applied.append), clock)
    store.on_change = watcher.notified  # what the notification hub does
    task = await run_watcher(clock, watcher)
    await store.set("alpha", RuntimeSettings(enabled=False), by="a", reason=None)
    await clock.settle()  # no time passes: the notification alone applies it
    assert [(s.name, s.options.enabled) for s in applied] == [("alpha", False)]
    await stop(clock, watcher, task)


async def test_a_lost_notification_is_caught_up_by_the_reread(clock: FakeClock) -> None:
    registry, store, applied = setup(clock)  # the store notifies nobody: every one is lost
    watcher = JobSettingsWatcher(
        JobSettingsApplier(registry, store, applied.append), clock, reread=timedelta(seconds=30)
    )
    task = await run_watcher(clock, watcher)
    await store.set("beta", RuntimeSettings(timeout_s=5), by="a", reason=None)
    await clock.advance(29)
    assert applied == []
    await clock.advance(1)
    assert [(s.name, s.timeout) for s in applied] == [("beta", timedelta(seconds=5))]
    await stop(clock, watcher, task)


async def test_a_reconnection_rereads_everything_at_once(clock: FakeClock) -> None:
    registry, store, applied = setup(clock)
    watcher = JobSettingsWatcher(
        JobSettingsApplier(registry, store, applied.append), clock, reread=timedelta(seconds=30)
    )
    task = await run_watcher(clock, watcher)
    # Changed while the LISTEN connection was down: no notification reached this replica.
    await store.set("alpha", RuntimeSettings(schedule="@every 9s"), by="a", reason=None)
    await store.set("beta", RuntimeSettings(enabled=False), by="a", reason=None)
    watcher.caught_up()  # the hub listens again
    await clock.settle()
    assert sorted(s.name for s in applied) == ["alpha", "beta"]
    await stop(clock, watcher, task)


async def test_a_failed_read_is_logged_once_retried_and_caught_up(clock: FakeClock) -> None:
    registry, store, applied = setup(clock)
    watcher = JobSettingsWatcher(
        JobSettingsApplier(registry, store, applied.append), clock, reread=timedelta(seconds=30)
    )
    store.on_change = watcher.notified
    with capture_logs() as logs:
        task = await run_watcher(clock, watcher)
        store.broken = True
        await store.set("alpha", RuntimeSettings(schedule="@every 9s"), by="a", reason=None)
        await clock.settle()  # the notified read fails
        await clock.advance(20)  # and the retries, with back-off, meanwhile
        assert applied == []
        store.broken = False
        await clock.advance(10)
        assert [s.schedule.expression for s in applied] == ["@every 9s"]
        await stop(clock, watcher, task)
    events = [e["event"] for e in logs if e["event"].startswith("job_settings_")]
    assert events == ["job_settings_unavailable", "job_settings_applied", "job_settings_resumed"]
    unavailable = next(e for e in logs if e["event"] == "job_settings_unavailable")
    assert unavailable["error"] == "ConnectionResetError: connection lost"
    assert unavailable["retry_in_s"] == 0.5
    assert not task.cancelled()


async def test_a_spec_the_scheduler_cannot_take_is_logged_and_the_others_go_on(
    clock: FakeClock,
) -> None:
    registry, store, applied = setup(clock)

    def apply(spec: JobSpec) -> None:
        if spec.name == "alpha":
            raise ValueError("no next tick")
        applied.append(spec)

    applier = JobSettingsApplier(registry, store, apply)
    await store.set("alpha", RuntimeSettings(timeout_s=3), by="a", reason=None)
    await store.set("beta", RuntimeSettings(timeout_s=4), by="a", reason=None)
    with capture_logs() as logs:
        assert await applier.refresh() == ["alpha", "beta"]
    assert [spec.name for spec in applied] == ["beta"]
    failed = [e for e in logs if e["event"] == "job_settings_apply_failed"]
    assert [(e["job"], e["error"]) for e in failed] == [("alpha", "ValueError: no next tick")]
