"""The contract every `RequestStore` keeps, run against `MemoryRequestStore` and the PostgreSQL one.

A test module subclasses `RunRequestContract` as `Test...` and provides the fixtures `requests`
(the store under test, with a claim lease of `CLAIM_LEASE`), `runs` (the run store it looks at)
and `elapse` (the stores' clock moves on by some seconds).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from financial.pkg.jobs.model import Overlap, RunStatus, Trigger
from financial.pkg.scheduler.store import RunStore
from financial.pkg.scheduler.store.requests import RequestCounts, RequestState, RequestStore

CLAIM_LEASE = timedelta(seconds=1)
PAST_LEASE_S = 1.3
T = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
Elapse = Callable[[float], Awaitable[None]]


def day(n: int) -> datetime:
    return T + timedelta(days=n)


async def succeed(runs: RunStore, job: str, at: datetime, attempt: int = 1) -> str:
    record = await runs.claim(job, at, attempt=attempt, trigger=Trigger.SCHEDULE, worker_id="w")
    assert record is not None
    await runs.start(record.run_id, fence=record.fence)
    await runs.finish(record.run_id, RunStatus.SUCCEEDED, fence=record.fence)
    return record.run_id


class RunRequestContract:
    """Tests every run request store passes."""

    async def test_add_records_pending_requests_in_tick_order(self, requests: RequestStore) -> None:
        added = await requests.add(
            "report",
            [day(2), day(0), day(1)],
            trigger=Trigger.BACKFILL,
            requested_by="ops@host",
            args={"k": [1, "two"]},
        )
        assert [r.tick for r in added] == [day(0), day(1), day(2)]
        assert {r.state for r in added} == {RequestState.PENDING}
        assert {r.requested_by for r in added} == {"ops@host"}
        assert [dict(r.args) for r in added] == [{"k": [1, "two"]}] * 3
        assert len({r.requested_at for r in added}) == 1
        got = await requests.get(added[0].request_id)
        assert got is not None and got.trigger is Trigger.BACKFILL and got.tick == day(0)

    async def test_a_manual_request_without_a_tick_takes_the_instant_it_is_recorded(
        self, requests: RequestStore
    ) -> None:
        [request] = await requests.add("report", [None], trigger=Trigger.MANUAL, requested_by="a")
        assert request.tick == request.requested_at
        assert dict(request.args) == {}

    async def test_a_backfill_tick_open_already_is_not_added_twice(
        self, requests: RequestStore
    ) -> None:
        await requests.add("report", [day(0), day(1)], trigger=Trigger.BACKFILL, requested_by="a")
        again = await requests.add(
            "report", [day(1), day(2)], trigger=Trigger.BACKFILL, requested_by="b"
        )
        assert [r.tick for r in again] == [day(2)]
        manual = await requests.add("report", [day(1)], trigger=Trigger.MANUAL, requested_by="c")
        assert len(manual) == 1  # a manual re-run of the same tick is the operator's call
        assert len(await requests.open_requests("report")) == 4

    async def test_only_manual_and_backfill_are_requests(self, requests: RequestStore) -> None:
        with pytest.raises(ValueError, match="expected manual or backfill"):
            await requests.add("report", [day(0)], trigger=Trigger.SCHEDULE, requested_by="a")
        assert await requests.open_requests() == []

    async def test_a_job_s_requests_are_claimed_one_at_a_time_in_tick_order(
        self, requests: RequestStore
    ) -> None:
        added = await requests.add(
            "report", [day(0), day(1)], trigger=Trigger.BACKFILL, requested_by="a"
        )
        [first] = await requests.claim(["report"], worker_id="w1", limit=5)
        assert first.request_id == added[0].request_id
        assert first.state is RequestState.CLAIMED and first.claimed_by == "w1"
        assert await requests.claim(["report"], worker_id="w2", limit=5) == []
        done = await requests.complete(
            first.request_id, worker_id="w1", run_id=None, status=RunStatus.MISSED
        )
        assert done is not None and done.state is RequestState.DONE
        [second] = await requests.claim(["report"], worker_id="w2", limit=5)
        assert second.request_id == added[1].request_id

    async def test_claims_follow_the_jobs_asked_for_and_the_limit(
        self, requests: RequestStore
    ) -> None:
        for job in ("a", "b", "c"):
            await requests.add(job, [day(0)], trigger=Trigger.MANUAL, requested_by="x")
        assert await requests.claim(["zzz"], worker_id="w1", limit=5) == []
        claimed = await requests.claim(["a", "b", "c"], worker_id="w1", limit=2)
        assert len(claimed) == 2
        [last] = await requests.claim(["a", "b", "c"], worker_id="w2", limit=2)
        assert {r.job for r in claimed} | {last.job} == {"a", "b", "c"}

    async def test_a_job_with_a_live_run_waits(
        self, requests: RequestStore, runs: RunStore
    ) -> None:
        live = await runs.claim(
            "report",
            day(0),
            attempt=1,
            trigger=Trigger.SCHEDULE,
            worker_id="w",
            overlap=Overlap.SKIP,
        )
        assert live is not None
        await requests.add("report", [day(0)], trigger=Trigger.MANUAL, requested_by="x")
        assert await requests.claim(["report"], worker_id="w1", limit=1) == []
        await runs.finish(live.run_id, RunStatus.SUCCEEDED, fence=live.fence)
        assert len(await requests.claim(["report"], worker_id="w1", limit=1)) == 1

    async def test_only_the_claim_holder_completes_a_request(
        self, requests: RequestStore, runs: RunStore
    ) -> None:
        await requests.add("report", [day(0)], trigger=Trigger.MANUAL, requested_by="x")
        [request] = await requests.claim(["report"], worker_id="w1", limit=1)
        run_id = await succeed(runs, "report", day(0))
        other = await requests.complete(
            request.request_id, worker_id="w2", run_id=run_id, status=RunStatus.FAILED
        )
        assert other is not None and other.state is RequestState.CLAIMED
        done = await requests.complete(
            request.request_id, worker_id="w1", run_id=run_id, status=RunStatus.SUCCEEDED
        )
        assert done is not None
        assert (done.state, done.run_id, done.status) == (
            RequestState.DONE,
            run_id,
            RunStatus.SUCCEEDED,
        )
        assert done.finished_at is not None
        assert await requests.open_requests() == []

    async def test_a_claim_not_renewed_lapses_abandoned(
        self, requests: RequestStore, elapse: Elapse
    ) -> None:
        await requests.add("a", [day(0)], trigger=Trigger.MANUAL, requested_by="x")
        await requests.add("b", [day(0)], trigger=Trigger.MANUAL, requested_by="x")
        claimed = {r.job: r for r in await requests.claim(["a", "b"], worker_id="w1", limit=2)}
        await elapse(0.6)
        renewed = await requests.renew([claimed["b"].request_id], worker_id="w1")
        assert renewed == {claimed["b"].request_id}
        assert await requests.renew([claimed["b"].request_id], worker_id="w2") == set()
        await elapse(0.7)
        expired = await requests.expire()
        assert [r.request_id for r in expired] == [claimed["a"].request_id]
        assert expired[0].status is RunStatus.ABANDONED
        assert expired[0].state is RequestState.DONE
        still = await requests.get(claimed["b"].request_id)
        assert still is not None and still.state is RequestState.CLAIMED

    async def test_succeeded_ticks_and_next_attempt_come_from_the_runs(
        self, requests: RequestStore, runs: RunStore
    ) -> None:
        await succeed(runs, "report", day(0))
        await succeed(runs, "report", day(1), attempt=1)
        await succeed(runs, "report", day(1), attempt=2)
        failed = await runs.claim(
            "report", day(2), attempt=1, trigger=Trigger.SCHEDULE, worker_id="w"
        )
        assert failed is not None
        await runs.finish(failed.run_id, RunStatus.FAILED, fence=failed.fence)
        await succeed(runs, "other", day(3))
        assert await requests.succeeded_ticks("report", day(0), day(3)) == {day(0), day(1)}
        assert await requests.succeeded_ticks("report", day(1), day(1)) == {day(1)}
        assert await requests.next_attempt("report", day(1)) == 3
        assert await requests.next_attempt("report", day(2)) == 2
        assert await requests.next_attempt("report", day(5)) == 1

    async def test_unknown_ids(self, requests: RequestStore) -> None:
        unknown = "00000000-0000-4000-8000-000000000000"
        assert await requests.get(unknown) is None
        assert (
            await requests.complete(unknown, worker_id="w", run_id=None, status=RunStatus.FAILED)
            is None
        )

    async def test_counts_give_each_job_s_open_requests_by_state(
        self, requests: RequestStore
    ) -> None:
        await requests.add(
            "report", [day(0), day(1), day(2)], trigger=Trigger.BACKFILL, requested_by="a"
        )
        await requests.add("other", [None], trigger=Trigger.MANUAL, requested_by="b")
        claimed = await requests.claim(["report", "other"], worker_id="w1", limit=5)
        assert await requests.counts(["report", "other", "idle"]) == {
            "report": RequestCounts(pending=2, claimed=1),
            "other": RequestCounts(pending=0, claimed=1),
        }
        [other] = [r for r in claimed if r.job == "other"]
        await requests.complete(
            other.request_id, worker_id="w1", run_id=None, status=RunStatus.SUCCEEDED
        )
        assert await requests.counts(["other"]) == {}
        assert await requests.counts([]) == {}
        first_two = await requests.open_requests("report", limit=2)
        assert [r.tick for r in first_two] == [day(0), day(1)]

    async def test_prune_deletes_done_requests_finished_before_the_cutoff_only(
        self, requests: RequestStore
    ) -> None:
        for job in ("done", "claimed", "pending"):
            await requests.add(job, [day(0)], trigger=Trigger.MANUAL, requested_by="x")
        claimed = {
            r.job: r for r in await requests.claim(["done", "claimed"], worker_id="w", limit=2)
        }
        finished = await requests.complete(
            claimed["done"].request_id, worker_id="w", run_id=None, status=RunStatus.FAILED
        )
        assert finished is not None and finished.finished_at is not None
        assert await requests.prune(finished.finished_at) == 0  # not finished *before* it
        far = finished.finished_at + timedelta(days=3650)
        assert await requests.prune(far) == 1
        assert await requests.get(finished.request_id) is None
        assert await requests.prune(far) == 0
        left = await requests.open_requests()
        assert sorted((r.job, r.state) for r in left) == [
            ("claimed", RequestState.CLAIMED),
            ("pending", RequestState.PENDING),
        ]

    async def test_prune_deletes_at_most_limit_a_call(self, requests: RequestStore) -> None:
        jobs = ["a", "b", "c"]
        for job in jobs:
            await requests.add(job, [day(0)], trigger=Trigger.MANUAL, requested_by="x")
        ends = []
        for request in await requests.claim(jobs, worker_id="w", limit=3):
            done = await requests.complete(
                request.request_id, worker_id="w", run_id=None, status=RunStatus.SUCCEEDED
            )
            assert done is not None and done.finished_at is not None
            ends.append(done.finished_at)
        cutoff = max(ends) + timedelta(seconds=1)
        assert await requests.prune(cutoff, limit=2) == 2
        assert await requests.prune(cutoff, limit=2) == 1
        assert await requests.prune(cutoff, limit=2) == 0
