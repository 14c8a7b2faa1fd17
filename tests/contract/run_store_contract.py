"""The contract every `RunStore` keeps, run against `MemoryRunStore` and the PostgreSQL store.

A test module subclasses `RunStoreContract` and `RunStoreBatchContract` (the batch calls, in
`run_store_batch_contract`) as `Test...` and provides two fixtures: `store` (the implementation
under test, with a lease of `LEASE`) and `elapse` (lets the store's clock move on by some seconds:
a fake clock for the memory store, a real sleep for PostgreSQL, whose clock is the server's
`now()`). Another replica is the same store used with another worker id: both stores hold all
their state in the store itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from financial.pkg.jobs.model import Overlap, RunStatus, Trigger
from financial.pkg.scheduler.store import RunError, RunNotFound, RunRecord, RunStore

LEASE = timedelta(seconds=1)
# Long enough for any lease of `LEASE` taken before it to have expired.
PAST_LEASE_S = 1.3
TICK = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
S = RunStatus

Elapse = Callable[[float], Awaitable[None]]


def tick(seconds: float) -> datetime:
    return TICK + timedelta(seconds=seconds)


async def claim(
    store: RunStore,
    at: float = 0,
    *,
    job: str = "job",
    attempt: int = 1,
    trigger: Trigger = Trigger.SCHEDULE,
    worker: str = "w1",
    overlap: Overlap = Overlap.ALLOW,
) -> RunRecord:
    record = await store.claim(
        job, tick(at), attempt=attempt, trigger=trigger, worker_id=worker, overlap=overlap
    )
    assert record is not None, f"tick {at} of {job} was claimed already"
    return record


async def started(store: RunStore, at: float = 0, **kwargs: object) -> RunRecord:
    record = await claim(store, at, **kwargs)  # type: ignore[arg-type]
    return await store.start(record.run_id, fence=record.fence)


class RunStoreContract:
    """Tests every run store passes. Subclasses provide the `store` and `elapse` fixtures."""

    # -- claims -------------------------------------------------------------------------------

    async def test_claim_creates_a_pending_run_holding_a_lease(self, store: RunStore) -> None:
        record = await claim(store, trigger=Trigger.CATCHUP, worker="w1")
        assert (record.job, record.scheduled_at, record.attempt) == ("job", TICK, 1)
        assert record.trigger is Trigger.CATCHUP
        assert record.status is S.PENDING
        assert record.worker_id == "w1"
        assert record.started_at is None and record.finished_at is None
        assert record.error is None
        assert record.fence >= 1
        assert record.lease_expires_at is not None
        lease = record.lease_expires_at - record.created_at
        assert lease == pytest.approx(LEASE, abs=timedelta(seconds=0.5))
        assert await store.history() == [record]

    async def test_a_tick_is_claimed_once(self, store: RunStore) -> None:
        first = await claim(store, worker="w1")
        again = await store.claim("job", TICK, attempt=1, trigger=Trigger.SCHEDULE, worker_id="w2")
        assert again is None
        assert [r.run_id for r in await store.history()] == [first.run_id]

    async def test_each_attempt_of_a_tick_is_a_claim_of_its_own(self, store: RunStore) -> None:
        await claim(store, attempt=1)
        second = await claim(store, attempt=2, trigger=Trigger.RETRY, worker="w2")
        assert (second.attempt, second.trigger, second.status) == (2, Trigger.RETRY, S.PENDING)
        assert (
            await store.claim("job", TICK, attempt=2, trigger=Trigger.RETRY, worker_id="w3") is None
        )

    # -- start, finish --------------------------------------------------------------------------

    async def test_start_marks_the_run_running(self, store: RunStore) -> None:
        record = await claim(store)
        running = await store.start(record.run_id, fence=record.fence, trace_id="ab" * 16)
        assert running.status is S.RUNNING
        assert running.trace_id == "ab" * 16
        assert running.started_at is not None and running.started_at >= record.created_at
        assert running.fence == record.fence

    async def test_start_with_a_stale_fence_changes_nothing(self, store: RunStore) -> None:
        record = await claim(store)
        stale = await store.start(record.run_id, fence=record.fence + 7)
        assert stale.status is S.PENDING and stale.started_at is None

    async def test_finish_records_the_status_the_error_and_ends_the_lease(
        self, store: RunStore
    ) -> None:
        record = await started(store)
        done = await store.finish(
            record.run_id, S.FAILED, fence=record.fence, error=RunError("KeyError", "'x'")
        )
        assert done.status is S.FAILED
        assert done.error == RunError("KeyError", "'x'")
        assert done.finished_at is not None and record.started_at is not None
        assert done.finished_at >= record.started_at
        assert done.duration_ms is not None and done.duration_ms >= 0
        assert done.lease_expires_at is None
        assert await store.history() == [done]

    async def test_finish_keeps_the_jobs_own_duration_when_given(
        self, store: RunStore, elapse: Elapse
    ) -> None:
        # The job ran 5 ms; its end reached the store later (an outage): the record says 5 ms.
        record = await started(store)
        await elapse(0.2)
        done = await store.finish(record.run_id, S.SUCCEEDED, fence=record.fence, duration_ms=5.0)
        assert done.duration_ms == 5.0
        assert await store.history() == [done]

    async def test_the_first_final_status_is_the_only_one(self, store: RunStore) -> None:
        record = await started(store)
        await store.finish(record.run_id, S.SUCCEEDED, fence=record.fence)
        again = await store.finish(
            record.run_id, S.INTERRUPTED, fence=record.fence, error=RunError("x", "late")
        )
        assert again.status is S.SUCCEEDED and again.error is None

    async def test_finish_with_a_stale_fence_changes_nothing(self, store: RunStore) -> None:
        record = await started(store)
        kept = await store.finish(record.run_id, S.SUCCEEDED, fence=record.fence + 1)
        assert kept.status is S.RUNNING

    async def test_finish_refuses_a_status_that_is_not_final(self, store: RunStore) -> None:
        record = await claim(store)
        with pytest.raises(ValueError, match="final"):
            await store.finish(record.run_id, S.RUNNING, fence=record.fence)

    async def test_unknown_runs_are_reported(self, store: RunStore) -> None:
        unknown = "00000000-0000-4000-8000-000000000000"
        with pytest.raises(RunNotFound):
            await store.finish(unknown, S.SUCCEEDED, fence=1)
        with pytest.raises(RunNotFound):
            await store.start(unknown, fence=1)

    # -- overlap across replicas ----------------------------------------------------------------

    async def test_overlap_skip_records_a_tick_skipped_while_another_run_is_live(
        self, store: RunStore
    ) -> None:
        await started(store, 0, worker="w1")
        skipped = await claim(store, 1, worker="w2", overlap=Overlap.SKIP)
        assert skipped.status is S.SKIPPED
        assert skipped.error is not None
        assert "still running" in skipped.error.message and "w1" in skipped.error.message
        assert skipped.finished_at is not None and skipped.lease_expires_at is None

    async def test_a_pending_run_counts_as_live_for_skip(self, store: RunStore) -> None:
        await claim(store, 0, worker="w1")
        assert (await claim(store, 1, worker="w2", overlap=Overlap.SKIP)).status is S.SKIPPED

    async def test_overlap_skip_goes_on_once_the_other_run_ended(self, store: RunStore) -> None:
        first = await started(store, 0)
        await store.finish(first.run_id, S.SUCCEEDED, fence=first.fence)
        assert (await claim(store, 1, worker="w2", overlap=Overlap.SKIP)).status is S.PENDING

    async def test_other_policies_are_not_refused_by_the_claim(self, store: RunStore) -> None:
        await started(store, 0)
        for n, policy in enumerate((Overlap.ALLOW, Overlap.QUEUE), start=1):
            assert (await claim(store, n, overlap=policy)).status is S.PENDING

    async def test_an_expired_lease_does_not_hold_back_a_skip_tick(
        self, store: RunStore, elapse: Elapse
    ) -> None:
        await started(store, 0, worker="dead")
        await elapse(PAST_LEASE_S)
        assert (await claim(store, 1, worker="w2", overlap=Overlap.SKIP)).status is S.PENDING

    async def test_overlap_replace_interrupts_the_other_live_runs(self, store: RunStore) -> None:
        old = await started(store, 0, worker="w1")
        new = await claim(store, 1, worker="w2", overlap=Overlap.REPLACE)
        assert new.status is S.PENDING
        [replaced] = await store.history(status=S.INTERRUPTED)
        assert replaced.run_id == old.run_id
        assert replaced.fence > old.fence
        assert replaced.error is not None and "replaced" in replaced.error.message
        # Its worker finds out at its next renewal, and cannot overwrite the status.
        assert await store.renew({old.run_id: old.fence}) == set()
        kept = await store.finish(old.run_id, S.SUCCEEDED, fence=old.fence)
        assert kept.status is S.INTERRUPTED

    async def test_a_tick_claimed_elsewhere_replaces_nothing(self, store: RunStore) -> None:
        running = await started(store, 0, worker="w1")
        await claim(store, 1, worker="w1")
        assert (
            await store.claim(
                "job",
                tick(1),
                attempt=1,
                trigger=Trigger.SCHEDULE,
                worker_id="w2",
                overlap=Overlap.REPLACE,
            )
            is None
        )
        assert {r.run_id for r in await store.live_runs("job")} >= {running.run_id}

    # -- leases ---------------------------------------------------------------------------------

    async def test_renew_extends_the_leases_still_held(
        self, store: RunStore, elapse: Elapse
    ) -> None:
        a = await started(store, 0, job="a")
        b = await claim(store, 0, job="b")
        await elapse(0.3)
        assert await store.renew({a.run_id: a.fence, b.run_id: b.fence}) == {a.run_id, b.run_id}
        [renewed] = await store.live_runs("a")
        assert renewed.lease_expires_at is not None and a.lease_expires_at is not None
        assert renewed.lease_expires_at > a.lease_expires_at

    async def test_renew_leaves_out_runs_that_are_final_or_fenced_off(
        self, store: RunStore
    ) -> None:
        done = await started(store, 0, job="a")
        await store.finish(done.run_id, S.SUCCEEDED, fence=done.fence)
        live = await claim(store, 0, job="b")
        held = {done.run_id: done.fence, live.run_id: live.fence + 1}
        assert await store.renew(held) == set()
        assert await store.renew({}) == set()

    async def test_live_runs_are_those_not_final_with_a_lease_not_expired(
        self, store: RunStore, elapse: Elapse
    ) -> None:
        finished = await started(store, 0)
        await store.finish(finished.run_id, S.SUCCEEDED, fence=finished.fence)
        early = await claim(store, 1)
        await elapse(PAST_LEASE_S)
        late = await claim(store, 2, attempt=1)
        await claim(store, 3, job="other")
        assert [r.run_id for r in await store.live_runs("job")] == [late.run_id]
        assert early.run_id not in {r.run_id for r in await store.live_runs("job")}

    async def test_sweep_marks_runs_whose_lease_expired_abandoned(
        self, store: RunStore, elapse: Elapse
    ) -> None:
        running = await started(store, 0, worker="dead")
        pending = await claim(store, 0, job="other", worker="dead")
        assert await store.sweep_abandoned() == []
        await elapse(PAST_LEASE_S)
        fresh = await claim(store, 1, job="fresh", worker="alive")
        swept = await store.sweep_abandoned()
        assert {r.run_id for r in swept} == {running.run_id, pending.run_id}
        for record in swept:
            assert record.status is S.ABANDONED
            assert record.error is not None and "dead" in record.error.message
            assert record.finished_at is not None and record.lease_expires_at is None
        assert {r.run_id: r.fence for r in swept}[running.run_id] > running.fence
        # The worker that lost it cannot overwrite it; nothing is swept twice.
        kept = await store.finish(running.run_id, S.SUCCEEDED, fence=running.fence)
        assert kept.status is S.ABANDONED
        assert await store.renew({running.run_id: running.fence}) == set()
        assert await store.sweep_abandoned() == []
        assert [r.status for r in await store.history("fresh")] == [S.PENDING]
        assert fresh.status is S.PENDING

    async def test_sweep_takes_at_most_its_limit(self, store: RunStore, elapse: Elapse) -> None:
        for n in range(5):
            await claim(store, n)
        await elapse(PAST_LEASE_S)
        assert len(await store.sweep_abandoned(limit=3)) == 3
        assert len(await store.sweep_abandoned(limit=3)) == 2

    async def test_a_renewed_run_is_not_swept(self, store: RunStore, elapse: Elapse) -> None:
        record = await started(store)
        for _ in range(3):
            await elapse(0.6)
            assert await store.renew({record.run_id: record.fence}) == {record.run_id}
        assert await store.sweep_abandoned() == []

    # -- pause ----------------------------------------------------------------------------------

    async def test_a_paused_jobs_ticks_are_recorded_skipped_with_the_reason(
        self, store: RunStore
    ) -> None:
        await store.pause("job", "maintenance window")
        assert await store.paused() == {"job": "maintenance window"}
        for n, trigger in enumerate((Trigger.SCHEDULE, Trigger.CATCHUP, Trigger.RETRY)):
            record = await claim(store, n, trigger=trigger)
            assert record.status is S.SKIPPED
            assert record.error is not None
            assert record.error.message == "paused: maintenance window"
        assert (await claim(store, 0, job="other")).status is S.PENDING

    async def test_a_run_asked_for_by_hand_runs_while_paused(self, store: RunStore) -> None:
        await store.pause("job")
        assert (await claim(store, trigger=Trigger.MANUAL)).status is S.PENDING
        skipped = await claim(store, 1)
        assert skipped.error is not None and skipped.error.message == "paused"

    async def test_resume_lets_ticks_run_again(self, store: RunStore) -> None:
        await store.pause("job", "first")
        await store.pause("job", "second")
        assert await store.paused() == {"job": "second"}
        assert await store.resume("job") is True
        assert await store.resume("job") is False
        assert await store.resume("never_paused") is False
        assert await store.paused() == {}
        assert (await claim(store)).status is S.PENDING

    # -- reading --------------------------------------------------------------------------------

    async def test_history_is_newest_tick_first_and_filters(self, store: RunStore) -> None:
        for n in range(3):
            record = await claim(store, n * 10)
            await store.finish(record.run_id, S.SUCCEEDED, fence=record.fence)
        retry = await claim(store, 20, attempt=2, trigger=Trigger.RETRY)
        await claim(store, 5, job="other")
        runs = await store.history("job")
        assert [(r.scheduled_at, r.attempt) for r in runs] == [
            (tick(20), 2),
            (tick(20), 1),
            (tick(10), 1),
            (tick(0), 1),
        ]
        assert [r.run_id for r in await store.history("job", status=S.PENDING)] == [retry.run_id]
        assert len(await store.history(limit=2)) == 2
        assert [r.job for r in await store.history()] == ["job", "job", "job", "other", "job"]
        assert await store.history("nobody") == []

    async def test_recorded_ticks_since_an_instant(self, store: RunStore) -> None:
        for at in (0, 10, 20):
            await claim(store, at)
        await claim(store, 20, attempt=2)
        await claim(store, 15, job="other")
        assert await store.recorded_ticks("job", tick(10)) == {tick(10), tick(20)}

    async def test_summaries_show_the_last_run_last_success_and_pause(
        self, store: RunStore
    ) -> None:
        ok = await claim(store, 0)
        await store.finish(ok.run_id, S.SUCCEEDED, fence=ok.fence)
        failed = await claim(store, 10, worker="w2")
        await store.finish(failed.run_id, S.FAILED, fence=failed.fence)
        await store.pause("idle", "not needed")
        summaries = await store.summaries(["job", "idle"])
        job, idle = summaries["job"], summaries["idle"]
        assert (job.last_status, job.last_scheduled_at, job.last_worker_id) == (
            S.FAILED,
            tick(10),
            "w2",
        )
        assert job.last_success_at == tick(0)
        assert not job.paused and job.paused_reason is None
        assert idle.last_status is None and idle.last_success_at is None
        assert idle.paused and idle.paused_reason == "not needed"

    async def test_prune_deletes_old_final_runs_only(self, store: RunStore, elapse: Elapse) -> None:
        old = []
        for n in range(5):
            record = await claim(store, n)
            old.append(await store.finish(record.run_id, S.SUCCEEDED, fence=record.fence))
        still_live = await claim(store, 9, job="live")
        await elapse(PAST_LEASE_S)
        recent = await claim(store, 100)
        assert await store.prune(timedelta(seconds=1), limit=3) == 3
        assert await store.prune(timedelta(seconds=1), limit=3) == 2
        assert await store.prune(timedelta(seconds=1), limit=3) == 0
        left = {r.run_id for r in await store.history()}
        assert left == {still_live.run_id, recent.run_id}
        # A pruned tick is gone from the history, and its key with it.
        assert await store.recorded_ticks("job", TICK) == {tick(100)}
