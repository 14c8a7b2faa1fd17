"""The part of the run request contract about withdrawing requests (`RequestStore.cancel`).

Subclassed beside `RunRequestContract` by each store's test module, with the same fixtures
(`requests`, `runs`).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.scheduler.store.requests import (
    Cancellation,
    RequestCounts,
    RequestState,
    RequestStore,
)
from tests.contract.run_request_contract import day

UNKNOWN = "00000000-0000-4000-8000-000000000000"


class RunRequestCancelContract:
    """Tests of `cancel` every run request store passes."""

    async def test_a_pending_request_is_cancelled_with_who_and_why(
        self, requests: RequestStore
    ) -> None:
        first, second = await requests.add(
            "report", [day(0), day(1)], trigger=Trigger.BACKFILL, requested_by="ops"
        )
        done = await requests.cancel(
            "report", [first.request_id], cancelled_by="alice", reason="wrong range"
        )
        assert [r.request_id for r in done.cancelled] == [first.request_id]
        assert (done.left, done.unknown) == ((), ())
        got = await requests.get(first.request_id)
        assert got is not None
        assert (got.state, got.cancelled_by, got.cancel_reason, got.status, got.run_id) == (
            RequestState.CANCELLED,
            "alice",
            "wrong range",
            None,
            None,
        )
        assert got.finished_at is not None
        assert [r.request_id for r in await requests.open_requests("report")] == [second.request_id]
        assert await requests.counts(["report"]) == {"report": RequestCounts(pending=1)}

    async def test_all_cancels_the_job_s_pending_requests_of_the_trigger_asked(
        self, requests: RequestStore
    ) -> None:
        await requests.add("report", [day(0), day(1)], trigger=Trigger.BACKFILL, requested_by="a")
        [manual] = await requests.add("report", [None], trigger=Trigger.MANUAL, requested_by="a")
        [other] = await requests.add("other", [day(0)], trigger=Trigger.BACKFILL, requested_by="a")
        done = await requests.cancel(
            "report", None, trigger=Trigger.BACKFILL, cancelled_by="bob", reason=None
        )
        assert [r.tick for r in done.cancelled] == [day(0), day(1)]
        assert {r.cancel_reason for r in done.cancelled} == {None}
        assert [r.request_id for r in await requests.open_requests("report")] == [manual.request_id]
        rest = await requests.cancel("report", None, cancelled_by="bob")
        assert [r.request_id for r in rest.cancelled] == [manual.request_id]
        assert await requests.cancel("report", None, cancelled_by="bob") == Cancellation()
        assert [r.request_id for r in await requests.open_requests()] == [other.request_id]

    async def test_a_claimed_request_is_not_cancelled_and_its_run_goes_on(
        self, requests: RequestStore
    ) -> None:
        await requests.add(
            "report", [day(0), day(1), day(2)], trigger=Trigger.BACKFILL, requested_by="a"
        )
        [claimed] = await requests.claim(["report"], worker_id="w1", limit=1)
        done = await requests.cancel("report", None, cancelled_by="bob")
        assert [r.tick for r in done.cancelled] == [day(1), day(2)]
        assert [(r.request_id, r.state, r.claimed_by) for r in done.left] == [
            (claimed.request_id, RequestState.CLAIMED, "w1")
        ]
        by_id = await requests.cancel("report", [claimed.request_id], cancelled_by="bob")
        assert by_id.cancelled == ()
        assert [r.state for r in by_id.left] == [RequestState.CLAIMED]
        finished = await requests.complete(
            claimed.request_id, worker_id="w1", run_id=None, status=RunStatus.SUCCEEDED
        )
        assert finished is not None and finished.state is RequestState.DONE
        assert finished.cancelled_by is None

    async def test_ids_that_are_done_cancelled_unknown_or_another_job_s_are_left(
        self, requests: RequestStore
    ) -> None:
        [done] = await requests.add("report", [day(0)], trigger=Trigger.MANUAL, requested_by="a")
        [claimed] = await requests.claim(["report"], worker_id="w", limit=1)
        await requests.complete(
            done.request_id, worker_id="w", run_id=None, status=RunStatus.FAILED
        )
        [gone, pending] = await requests.add(
            "report", [day(1), day(2)], trigger=Trigger.BACKFILL, requested_by="a"
        )
        await requests.cancel("report", [gone.request_id], cancelled_by="first")
        [foreign] = await requests.add("other", [day(0)], trigger=Trigger.MANUAL, requested_by="a")
        asked = [done.request_id, gone.request_id, foreign.request_id, UNKNOWN]
        result = await requests.cancel(
            "report", [*asked, pending.request_id, pending.request_id], cancelled_by="second"
        )
        assert [r.request_id for r in result.cancelled] == [pending.request_id]
        left = {r.request_id: r for r in result.left}
        assert set(left) == {done.request_id, gone.request_id, foreign.request_id}
        assert (left[done.request_id].state, left[done.request_id].status) == (
            RequestState.DONE,
            RunStatus.FAILED,
        )
        assert (left[gone.request_id].state, left[gone.request_id].cancelled_by) == (
            RequestState.CANCELLED,
            "first",
        )
        assert (left[foreign.request_id].job, left[foreign.request_id].state) == (
            "other",
            RequestState.PENDING,
        )
        assert result.unknown == (UNKNOWN,)
        assert claimed.request_id == done.request_id

    async def test_an_id_of_the_other_trigger_is_left_pending(self, requests: RequestStore) -> None:
        [manual] = await requests.add("report", [None], trigger=Trigger.MANUAL, requested_by="a")
        result = await requests.cancel(
            "report", [manual.request_id], trigger=Trigger.BACKFILL, cancelled_by="b"
        )
        assert result.cancelled == ()
        assert [(r.request_id, r.state) for r in result.left] == [
            (manual.request_id, RequestState.PENDING)
        ]

    async def test_a_malformed_id_is_refused(self, requests: RequestStore) -> None:
        await requests.add("report", [None], trigger=Trigger.MANUAL, requested_by="a")
        with pytest.raises(ValueError, match="request id 'nope': expected a UUID"):
            await requests.cancel("report", ["nope"], cancelled_by="b")
        assert len(await requests.open_requests("report")) == 1

    async def test_a_cancelled_request_is_never_claimed(self, requests: RequestStore) -> None:
        first, second = await requests.add(
            "report", [day(0), day(1)], trigger=Trigger.BACKFILL, requested_by="a"
        )
        await requests.cancel("report", [first.request_id], cancelled_by="b")
        [claimed] = await requests.claim(["report"], worker_id="w", limit=5)
        assert claimed.request_id == second.request_id
        await requests.complete(
            claimed.request_id, worker_id="w", run_id=None, status=RunStatus.SUCCEEDED
        )
        assert await requests.claim(["report"], worker_id="w", limit=5) == []
        gone = await requests.get(first.request_id)
        assert gone is not None and gone.state is RequestState.CANCELLED

    async def test_a_cancelled_backfill_tick_can_be_requested_again(
        self, requests: RequestStore
    ) -> None:
        [first] = await requests.add("report", [day(0)], trigger=Trigger.BACKFILL, requested_by="a")
        await requests.cancel("report", None, cancelled_by="b")
        [again] = await requests.add("report", [day(0)], trigger=Trigger.BACKFILL, requested_by="a")
        assert again.request_id != first.request_id
        assert again.state is RequestState.PENDING
        assert (
            await requests.add("report", [day(0)], trigger=Trigger.BACKFILL, requested_by="a") == []
        )

    async def test_prune_deletes_old_cancelled_requests(self, requests: RequestStore) -> None:
        await requests.add("report", [day(0)], trigger=Trigger.MANUAL, requested_by="a")
        [pending] = await requests.add("other", [day(0)], trigger=Trigger.MANUAL, requested_by="a")
        [cancelled] = (await requests.cancel("report", None, cancelled_by="b")).cancelled
        assert cancelled.finished_at is not None
        assert await requests.prune(cancelled.finished_at) == 0
        far = cancelled.finished_at + timedelta(days=3650)
        assert await requests.prune(far) == 1
        assert await requests.get(cancelled.request_id) is None
        assert [r.request_id for r in await requests.open_requests()] == [pending.request_id]
