"""The batch calls of the run store contract: `claim_many`, `start_many` and `finish_many` give,
request by request and in request order, what `claim`, `start` and `finish` give alone.

`RunStoreBatchContract` is mixed into the same `Test...` classes as `RunStoreContract`, with the
same `store` fixture.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from financial.pkg.jobs.model import Overlap, Trigger
from financial.pkg.scheduler.store import (
    ClaimRequest,
    FinishRequest,
    RunError,
    RunStore,
    StartRequest,
)
from tests.contract.run_store_contract import LEASE, TICK, S, claim, started, tick

UNKNOWN = "00000000-0000-4000-8000-000000000000"


def request(
    job: str,
    at: float = 0,
    *,
    attempt: int = 1,
    trigger: Trigger = Trigger.SCHEDULE,
    overlap: Overlap = Overlap.ALLOW,
) -> ClaimRequest:
    return ClaimRequest(job, tick(at), attempt, trigger, overlap)


class RunStoreBatchContract:
    """Tests of the batch calls every run store passes. Subclasses provide `store`."""

    async def test_empty_batches_answer_empty(self, store: RunStore) -> None:
        assert await store.claim_many([], worker_id="w1") == []
        assert await store.start_many([]) == []
        assert await store.finish_many([]) == []
        assert await store.history() == []

    # -- claim_many -----------------------------------------------------------------------------

    async def test_claim_many_answers_in_request_order(self, store: RunStore) -> None:
        taken = await claim(store, 10, job="b", worker="w2")
        await claim(store, 10, job="d", attempt=2, trigger=Trigger.RETRY, worker="w2")
        requests = [
            request("c", 10),
            request("b", 10),
            request("a", 10, trigger=Trigger.CATCHUP),
            request("b", 10, attempt=2, trigger=Trigger.RETRY),
            request("d", 10, attempt=2, trigger=Trigger.RETRY),
        ]
        results = await store.claim_many(requests, worker_id="w1")
        assert [(r.job, r.attempt) if r else None for r in results] == [
            ("c", 1),
            None,
            ("a", 1),
            ("b", 2),
            None,
        ]
        claimed = [r for r in results if r is not None]
        assert [r.trigger for r in claimed] == [Trigger.SCHEDULE, Trigger.CATCHUP, Trigger.RETRY]
        for record in claimed:
            assert record.scheduled_at == tick(10)
            assert (record.status, record.worker_id) == (S.PENDING, "w1")
            assert record.fence >= 1 and record.lease_expires_at is not None
            lease = record.lease_expires_at - record.created_at
            assert lease == pytest.approx(LEASE, abs=timedelta(seconds=0.5))
        assert len({r.run_id for r in claimed}) == 3
        assert [r.run_id for r in await store.history("b")] == [claimed[2].run_id, taken.run_id]

    async def test_pause_and_overlap_skip_are_decided_per_request(self, store: RunStore) -> None:
        await store.pause("paused", "maintenance")
        await store.pause("held")
        await started(store, 0, job="busy", worker="w2")
        await started(store, 0, job="allowed", worker="w2")
        results = await store.claim_many(
            [
                request("busy", 1, overlap=Overlap.SKIP),
                request("paused", 1),
                request("free", 1, overlap=Overlap.SKIP),
                request("allowed", 1),
                request("held", 1, trigger=Trigger.MANUAL),
            ],
            worker_id="w1",
        )
        assert [r.status if r else None for r in results] == [
            S.SKIPPED,
            S.SKIPPED,
            S.PENDING,
            S.PENDING,
            S.PENDING,
        ]
        busy, paused, *going_on = (r for r in results if r is not None)
        assert busy.error is not None
        assert "still running" in busy.error.message and "w2" in busy.error.message
        assert paused.error is not None and paused.error.message == "paused: maintenance"
        for record in (busy, paused):
            assert record.finished_at is not None and record.lease_expires_at is None
        for record in going_on:
            assert record.error is None and record.lease_expires_at is not None

    async def test_replace_in_a_batch_interrupts_that_jobs_other_live_runs(
        self, store: RunStore
    ) -> None:
        old_a = await started(store, 0, job="a", worker="w2")
        old_b = await claim(store, 0, job="b", worker="w2")
        await store.pause("p")
        old_p = await started(store, 0, job="p", trigger=Trigger.MANUAL, worker="w2")
        old_c = await started(store, 0, job="c", worker="w2")
        await claim(store, 1, job="c", worker="w3")
        results = await store.claim_many(
            [
                request("a", 1, overlap=Overlap.REPLACE),
                request("b", 1),
                # Refused (paused), or claimed elsewhere: neither replaces anything.
                request("p", 1, overlap=Overlap.REPLACE),
                request("c", 1, overlap=Overlap.REPLACE),
                request("d", 1, overlap=Overlap.REPLACE),
            ],
            worker_id="w1",
        )
        assert [r.status if r else None for r in results] == [
            S.PENDING,
            S.PENDING,
            S.SKIPPED,
            None,
            S.PENDING,
        ]
        [replaced] = await store.history(status=S.INTERRUPTED)
        assert replaced.run_id == old_a.run_id and replaced.fence > old_a.fence
        assert replaced.error is not None and "replaced" in replaced.error.message
        assert await store.renew({old_a.run_id: old_a.fence}) == set()
        live = {r.run_id for job in "abcdp" for r in await store.live_runs(job)}
        assert {old_b.run_id, old_p.run_id, old_c.run_id} <= live
        assert old_a.run_id not in live
        assert all(r.run_id in live for r in results if r and r.status is S.PENDING)

    async def test_requests_for_one_job_in_a_batch_are_decided_in_order(
        self, store: RunStore
    ) -> None:
        results = await store.claim_many(
            [
                request("skip", 0, overlap=Overlap.SKIP),
                request("replace", 0, overlap=Overlap.REPLACE),
                request("skip", 1, overlap=Overlap.SKIP),
                request("replace", 1, overlap=Overlap.REPLACE),
                request("skip", 0, overlap=Overlap.SKIP),
            ],
            worker_id="w1",
        )
        assert [r.status if r else None for r in results] == [
            S.PENDING,
            S.PENDING,
            S.SKIPPED,
            S.PENDING,
            None,
        ]
        assert [(r.scheduled_at, r.status) for r in await store.history("replace")] == [
            (tick(1), S.PENDING),
            (TICK, S.INTERRUPTED),
        ]

    # -- start_many -----------------------------------------------------------------------------

    async def test_start_many_starts_live_runs_and_returns_the_others_unchanged(
        self, store: RunStore
    ) -> None:
        fresh = await claim(store, 0, job="a")
        fenced = await claim(store, 0, job="b")
        ended = await claim(store, 0, job="c")
        ended = await store.finish(ended.run_id, S.INTERRUPTED, fence=ended.fence)
        results = await store.start_many(
            [
                StartRequest(ended.run_id, ended.fence, "cd" * 16),
                StartRequest(UNKNOWN, 1),
                StartRequest(fresh.run_id, fresh.fence, "ab" * 16),
                StartRequest(fenced.run_id, fenced.fence + 1),
            ]
        )
        final, unknown, running, stale = results
        assert final == ended
        assert unknown is None
        assert stale == fenced
        assert running is not None and running.run_id == fresh.run_id
        assert (running.status, running.trace_id, running.fence) == (
            S.RUNNING,
            "ab" * 16,
            fresh.fence,
        )
        assert running.started_at is not None and running.started_at >= fresh.created_at
        assert running.lease_expires_at is not None and fresh.lease_expires_at is not None
        assert running.lease_expires_at >= fresh.lease_expires_at
        # A start repeated (the same batch again) finds the run started, and changes nothing.
        again = await store.start_many([StartRequest(fresh.run_id, fresh.fence, "ef" * 16)])
        assert again == [running]

    # -- finish_many ----------------------------------------------------------------------------

    async def test_finish_many_gives_live_runs_their_first_final_status(
        self, store: RunStore
    ) -> None:
        ok = await started(store, 0, job="a")
        bad = await started(store, 0, job="b")
        fenced = await started(store, 0, job="c")
        pending = await claim(store, 0, job="d")
        ended = await started(store, 0, job="e")
        ended = await store.finish(ended.run_id, S.SUCCEEDED, fence=ended.fence)
        results = await store.finish_many(
            [
                FinishRequest(bad.run_id, S.FAILED, bad.fence, RunError("KeyError", "'x'")),
                FinishRequest(UNKNOWN, S.SUCCEEDED, 1),
                FinishRequest(ok.run_id, S.SUCCEEDED, ok.fence),
                FinishRequest(fenced.run_id, S.SUCCEEDED, fenced.fence + 1),
                FinishRequest(ended.run_id, S.FAILED, ended.fence, RunError("x", "late")),
                FinishRequest(pending.run_id, S.INTERRUPTED, pending.fence, RunError("i", "stop")),
            ]
        )
        failed, unknown, succeeded, kept, first, interrupted = results
        assert failed is not None and failed.status is S.FAILED
        assert failed.error == RunError("KeyError", "'x'")
        assert failed.finished_at is not None and bad.started_at is not None
        assert failed.finished_at >= bad.started_at
        assert failed.duration_ms is not None and failed.duration_ms >= 0
        assert failed.lease_expires_at is None
        assert unknown is None
        assert succeeded is not None and succeeded.status is S.SUCCEEDED
        assert succeeded.error is None
        assert kept == fenced
        assert first == ended
        assert interrupted is not None and interrupted.status is S.INTERRUPTED
        assert interrupted.error == RunError("i", "stop")
        # Later finishes, in a batch or one run twice in one, keep the first final status.
        again = await store.finish_many(
            [
                FinishRequest(ok.run_id, S.FAILED, ok.fence, RunError("x", "late")),
                FinishRequest(bad.run_id, S.SUCCEEDED, bad.fence),
            ]
        )
        assert again == [succeeded, failed]
        assert await store.finish(ok.run_id, S.TIMED_OUT, fence=ok.fence) == succeeded

    async def test_one_run_twice_in_a_batch_is_decided_in_order(self, store: RunStore) -> None:
        record = await claim(store)
        stale, running = await store.start_many(
            [
                StartRequest(record.run_id, record.fence + 1),
                StartRequest(record.run_id, record.fence, "ab" * 16),
            ]
        )
        assert stale is not None and stale.status is S.PENDING
        assert running is not None and running.status is S.RUNNING
        first, second = await store.finish_many(
            [
                FinishRequest(record.run_id, S.SUCCEEDED, record.fence),
                FinishRequest(record.run_id, S.FAILED, record.fence, RunError("x", "late")),
            ]
        )
        assert first is not None and first.status is S.SUCCEEDED
        assert second == first

    async def test_finish_many_refuses_a_status_that_is_not_final_before_writing(
        self, store: RunStore
    ) -> None:
        done = await started(store, 0, job="a")
        live = await claim(store, 0, job="b")
        with pytest.raises(ValueError, match="final"):
            await store.finish_many(
                [
                    FinishRequest(done.run_id, S.SUCCEEDED, done.fence),
                    FinishRequest(live.run_id, S.RUNNING, live.fence),
                ]
            )
        assert {r.job: r.status for r in await store.history()} == {
            "a": S.RUNNING,
            "b": S.PENDING,
        }
