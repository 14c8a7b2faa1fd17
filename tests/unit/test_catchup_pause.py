"""Catch-up at start, pause and resume through the store, and pruning of old history."""

from __future__ import annotations

from datetime import timedelta

from structlog.testing import capture_logs

from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.store import RunStore
from financial.pkg.scheduler.store.memory import MemoryRunStore
from tests.unit.scheduling import T0, Harness, Recorder, job_of, secs

S = RunStatus
HOURLY = "0 0 * * * *"


async def ran_before(store: RunStore, job: str = "probe") -> None:
    """A run of `job` long ago, as a replica that ran before the downtime left it."""
    record = await store.claim(
        job, T0 - timedelta(days=3), attempt=1, trigger=Trigger.SCHEDULE, worker_id="old"
    )
    assert record is not None
    await store.finish(record.run_id, S.SUCCEEDED, fence=record.fence)


def late_clock(minutes_after_hour: int = 10) -> FakeClock:
    """A worker coming back at 03:10 on T0's day, after a downtime."""
    return FakeClock(T0 + timedelta(hours=3, minutes=minutes_after_hour))


async def test_the_latest_missed_tick_runs_once_and_older_ones_are_recorded_missed() -> None:
    clock = late_clock()
    body = Recorder(clock)
    h = Harness(job_of(HOURLY, body, catchup_window=timedelta(hours=2)), clock=clock)
    await ran_before(h.store)
    with capture_logs() as logs:
        async with h:
            await clock.advance(1)
    # 03:00 runs now; 02:00 is recorded missed; 01:00 is outside the 2 h window (from 01:10).
    assert body.starts == [T0 + timedelta(hours=3, minutes=10)]
    assert body.contexts[0].trigger is Trigger.CATCHUP
    assert body.contexts[0].scheduled_at == T0 + timedelta(hours=3)
    recent = [(r.scheduled_at, r.trigger, r.status) for r in await h.history()][1:]
    assert recent == [
        (T0 + timedelta(hours=2), Trigger.SCHEDULE, S.MISSED),
        (T0 + timedelta(hours=3), Trigger.CATCHUP, S.SUCCEEDED),
    ]
    assert any(e["event"] == "catchup_started" for e in logs)


async def test_no_catch_up_outside_the_window_without_a_window_or_without_history() -> None:
    clock = late_clock(50)
    outside = Recorder(clock)
    no_window = Recorder(clock)
    never_ran = Recorder(clock)
    store = MemoryRunStore(clock)
    h = Harness(
        job_of(HOURLY, outside, name="outside", catchup_window=timedelta(minutes=30)),
        job_of(HOURLY, no_window, name="no_window"),
        job_of(HOURLY, never_ran, name="never_ran", catchup_window=timedelta(hours=2)),
        clock=clock,
        store=store,
    )
    await ran_before(store, "outside")
    await ran_before(store, "no_window")
    async with h:
        await clock.advance(1)
    assert outside.starts == no_window.starts == never_ran.starts == []
    assert len(await h.history()) == 2


async def test_a_tick_another_replica_ran_is_not_caught_up() -> None:
    clock = late_clock()
    body = Recorder(clock)
    h = Harness(job_of(HOURLY, body, catchup_window=timedelta(hours=2)), clock=clock)
    record = await h.store.claim(
        "probe", T0 + timedelta(hours=3), attempt=1, trigger=Trigger.SCHEDULE, worker_id="b"
    )
    assert record is not None
    await h.store.finish(record.run_id, S.SUCCEEDED, fence=record.fence)
    async with h:
        await clock.advance(1)
    assert body.starts == []


async def test_a_paused_jobs_ticks_are_skipped_until_it_is_resumed(clock: FakeClock) -> None:
    body = Recorder(clock)
    h = Harness(job_of("*/10 * * * * *", body), clock=clock)
    async with h:
        await h.advance_to(10)
        await h.store.pause("probe", "investigating")
        await h.advance_to(35)
        manual = await h.scheduler.run_now(h.spec())
        await h.store.resume("probe")
        await h.advance_to(40)
    assert manual is not None and manual.status is S.SUCCEEDED
    assert manual.trigger is Trigger.MANUAL
    assert body.starts == secs(10, 35, 40)
    statuses = [(s, st) for s, _, st in await h.statuses()]
    assert statuses == [
        (10, S.SUCCEEDED),
        (20, S.SKIPPED),
        (30, S.SKIPPED),
        (35, S.SUCCEEDED),
        (40, S.SUCCEEDED),
    ]
    skipped = (await h.history())[1]
    assert skipped.error is not None and skipped.error.message == "paused: investigating"


async def test_history_older_than_the_retention_is_pruned_hourly(clock: FakeClock) -> None:
    h = Harness(
        job_of("0 0 */6 * * *", Recorder(clock)),
        clock=clock,
        history_retention=timedelta(days=1),
    )
    async with h:
        await h.advance_to(3 * 3600)
        assert len(await h.history()) == 0
        # Runs at 6 h .. 30 h; at the hourly pass of 31 h the one of 6 h is older than a day.
        await h.advance_to(31 * 3600)
    assert [s for s, _, _ in await h.statuses()] == [12 * 3600, 18 * 3600, 24 * 3600, 30 * 3600]
