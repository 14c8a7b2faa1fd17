"""Run store calls gathered per loop pass (`Batcher`), and the scheduler sending the runs of one
tick to a batched store as one claim, one start and one finish call."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from financial.pkg.jobs.model import RunStatus
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.execution.batch import Batcher
from financial.pkg.scheduler.store import (
    ClaimRequest,
    FinishRequest,
    RunRecord,
    StartRequest,
)
from financial.pkg.scheduler.store.memory import MemoryRunStore
from tests.unit.replicas import Journal, Link
from tests.unit.scheduling import Harness, job_of

S = RunStatus


class Echo:
    """A batch call that answers each request with its double, and notes each batch."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail

    async def __call__(self, requests: list[int]) -> Sequence[int]:
        self.batches.append(list(requests))
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        return [2 * r for r in requests]


async def test_requests_of_one_pass_go_out_as_one_call_answered_in_order() -> None:
    echo = Echo()
    batcher = Batcher(echo)

    async def ask(n: int) -> int:
        return await batcher.submit(n)

    assert await asyncio.gather(*(ask(n) for n in range(5))) == [0, 2, 4, 6, 8]
    assert echo.batches == [[0, 1, 2, 3, 4]]
    assert await ask(7) == 14
    assert echo.batches[1:] == [[7]]
    await asyncio.sleep(0)  # the sending task ends just after it answered
    assert batcher.in_flight == 0


async def test_a_full_batch_goes_out_at_once_and_the_rest_follows() -> None:
    echo = Echo()
    batcher = Batcher(echo, limit=3)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(7)))
    assert results == [2 * n for n in range(7)]
    assert echo.batches == [[0, 1, 2], [3, 4, 5], [6]]


async def test_a_failed_batch_fails_every_request_in_it() -> None:
    batcher = Batcher(Echo(fail=ConnectionError("store away")))
    results = await asyncio.gather(*(batcher.submit(n) for n in range(3)), return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError] * 3


async def test_a_batch_answering_the_wrong_number_of_results_is_an_error() -> None:
    async def short(requests: list[int]) -> list[int]:
        return requests[:-1]

    batcher = Batcher(short)
    with pytest.raises(RuntimeError, match="batch of 2 requests answered with 1 results"):
        await asyncio.gather(batcher.submit(1), batcher.submit(2))


async def test_a_caller_cancelled_while_waiting_leaves_the_others_their_answers() -> None:
    echo = Echo()
    batcher = Batcher(echo)
    first = asyncio.ensure_future(batcher.submit(1))
    second = asyncio.ensure_future(batcher.submit(2))
    first.cancel()
    assert await second == 4
    assert first.cancelled()
    assert echo.batches == [[1, 2]]  # what was asked was sent, as a lost reply would be


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="batch limit 0: expected >= 1"):
        Batcher(Echo(), limit=0)


# -- the scheduler against a batched store -----------------------------------------------------


def batched_link(clock: FakeClock) -> Link:
    return Link(MemoryRunStore(clock, shared=True, batched=True))


def batch_calls(link: Link) -> dict[str, int]:
    return {name: link.calls.count(name) for name in ("claim_many", "start_many", "finish_many")}


class Sizes(MemoryRunStore):
    """A batched memory store that notes the size of each batch."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock, shared=True, batched=True)
        self.sizes: dict[str, list[int]] = {"claim": [], "start": [], "finish": []}

    async def claim_many(
        self, requests: Sequence[ClaimRequest], *, worker_id: str
    ) -> list[RunRecord | None]:
        self.sizes["claim"].append(len(requests))
        return await super().claim_many(requests, worker_id=worker_id)

    async def start_many(self, requests: Sequence[StartRequest]) -> list[RunRecord | None]:
        self.sizes["start"].append(len(requests))
        return await super().start_many(requests)

    async def finish_many(self, requests: Sequence[FinishRequest]) -> list[RunRecord | None]:
        self.sizes["finish"].append(len(requests))
        return await super().finish_many(requests)


async def test_the_runs_of_one_tick_share_one_claim_one_start_and_one_finish(
    clock: FakeClock,
) -> None:
    store = Sizes(clock)
    journal = Journal(clock)
    jobs = [job_of("*/10 * * * * *", journal.body("a"), name=f"j{n}") for n in range(40)]
    async with Harness(*jobs, clock=clock, store=store, max_concurrent=100) as h:
        await h.advance_to(10)
    assert len(journal.starts) == 40
    assert store.sizes == {"claim": [40], "start": [40], "finish": [40]}
    assert {status for _, _, status in await h.statuses()} == {S.SUCCEEDED}


async def test_under_the_cap_a_start_does_not_wait_for_its_round_trip(
    clock: FakeClock,
) -> None:
    # With the cap full the runs go in waves; were each wave to wait for its `running` mark,
    # every wave would cost a round trip. The marks of all the waves still go out as one batch.
    store = Sizes(clock)
    journal = Journal(clock)
    jobs = [job_of("*/10 * * * * *", journal.body("a"), name=f"j{n}") for n in range(25)]
    async with Harness(*jobs, clock=clock, store=store, max_concurrent=10) as h:
        await h.advance_to(10)
    assert journal.most_at_once <= 10
    assert store.sizes["claim"] == [25]
    assert store.sizes["start"] == [25]
    assert sum(store.sizes["finish"]) == 25
    assert [status for _, _, status in await h.statuses()] == [S.SUCCEEDED] * 25


async def test_a_batch_the_store_refuses_leaves_every_tick_in_it_to_be_recorded_missed(
    clock: FakeClock,
) -> None:
    link = batched_link(clock)
    journal = Journal(clock)
    jobs = [job_of("*/10 * * * * *", journal.body("a"), name=f"j{n}") for n in range(3)]
    h = Harness(*jobs, clock=clock, store=link.store)
    with capture_logs() as logs:
        async with h:
            link.cut = True
            await h.advance_to(10)
            link.cut = False
            await h.advance_to(15)
    assert batch_calls(link)["claim_many"] >= 1
    assert journal.starts == []
    assert sorted(e["job"] for e in logs if e["event"] == "tick_not_recorded") == [
        "j0",
        "j1",
        "j2",
    ]
    assert [status for _, _, status in await h.statuses()] == [S.MISSED] * 3


class Marks(MemoryRunStore):
    """A batched memory store whose `running` marks fail, or find the run taken over."""

    def __init__(self, clock: FakeClock, *, fail: bool = False, take_over: bool = False) -> None:
        super().__init__(clock, shared=True, batched=True)
        self.fail = fail
        self.take_over = take_over

    async def start_many(self, requests: Sequence[StartRequest]) -> list[RunRecord | None]:
        await asyncio.sleep(0)  # the answer comes a pass later, as a round trip's would
        if self.fail:
            raise ConnectionError("start_many: connection reset")
        if self.take_over:
            for r in requests:  # another replica's `replace` raised the fence meanwhile
                await self.finish(r.run_id, S.INTERRUPTED, fence=r.fence)
        return await super().start_many(requests)


async def test_a_start_the_store_cannot_mark_runs_and_its_end_is_recorded(
    clock: FakeClock,
) -> None:
    store = Marks(clock, fail=True)
    journal = Journal(clock)
    h = Harness(
        job_of("*/10 * * * * *", journal.body("a", lambda ctx: 2)), clock=clock, store=store
    )
    with capture_logs() as logs:
        async with h:
            await h.advance_to(15)
    assert [tick for _, _, tick, _, _ in journal.starts] == [10]
    assert [e["event"] for e in logs if e["event"] == "run_start_not_recorded"] == [
        "run_start_not_recorded"
    ]
    [run] = await h.history()
    assert run.status is S.SUCCEEDED and run.started_at is None


async def test_a_run_found_taken_over_by_its_mark_is_cancelled_and_written_no_more(
    clock: FakeClock,
) -> None:
    store = Marks(clock, take_over=True)
    journal = Journal(clock)
    h = Harness(
        job_of("*/10 * * * * *", journal.body("a", lambda ctx: 2)), clock=clock, store=store
    )
    with capture_logs() as logs:
        async with h:
            await h.advance_to(15)
    assert journal.cancelled == [("a", 10.0)]
    assert any(e["event"] == "job_lease_lost" for e in logs)
    [run] = await h.history()
    assert run.status is S.INTERRUPTED  # the other replica's status stands


# -- a tick as one batch: claimed together, a task per run only once claimed -----------------


class GatedClaims(MemoryRunStore):
    """A store whose claims wait at a gate, noting the tasks alive while they wait."""

    def __init__(self, clock: FakeClock, *, batched: bool) -> None:
        super().__init__(clock, shared=True, batched=batched)
        self.gate = asyncio.Event()
        self.claims: list[str] = []
        self.tasks_while_claiming = 0

    async def claim(self, job: str, *args: Any, **kwargs: Any) -> RunRecord | None:
        self.claims.append(job)
        if not self.gate.is_set():
            self.tasks_while_claiming = len(asyncio.all_tasks())
            await self.gate.wait()
        return await super().claim(job, *args, **kwargs)


@pytest.mark.parametrize("batched", [True, False])
async def test_no_run_of_a_tick_has_a_task_before_its_claim_is_answered(
    clock: FakeClock, batched: bool
) -> None:
    store = GatedClaims(clock, batched=batched)
    journal = Journal(clock)
    jobs = [job_of("*/10 * * * * *", journal.body(f"j{n}"), name=f"j{n}") for n in range(50)]
    async with Harness(*jobs, clock=clock, store=store, max_concurrent=100) as h:
        quiet = len(asyncio.all_tasks())
        await h.advance_to(10)
        # The loop, its batch, and what a batched store's call runs in: not one per run.
        assert 0 < store.tasks_while_claiming - quiet <= 2
        assert journal.starts == []
        store.gate.set()
        await h.advance_to(11)
    assert sorted(job for job, *_ in journal.starts) == sorted(f"j{n}" for n in range(50))
    assert [status for _, _, status in await h.statuses()] == [S.SUCCEEDED] * 50


async def test_the_runs_of_a_batch_start_in_the_order_they_were_due(clock: FakeClock) -> None:
    journal = Journal(clock)
    names = [f"j{n:02}" for n in range(30)]
    jobs = [job_of("*/10 * * * * *", journal.body(name), name=name) for name in names]
    async with Harness(*jobs, clock=clock, max_concurrent=100) as h:
        await h.advance_to(10)
    assert [job for job, *_ in journal.starts] == names


async def test_a_job_whose_end_is_in_flight_is_claimed_after_it_beside_the_batch(
    clock: FakeClock,
) -> None:
    """The job's end is held by the store: its next tick waits for it (and is not skipped as an
    overlap of its own last run), while the other jobs of that tick start at once."""
    store = HeldEnds(clock, hold="slow")
    journal = Journal(clock)
    jobs = [
        job_of("*/10 * * * * *", journal.body("slow"), name="slow", overlap="skip"),
        job_of("*/10 * * * * *", journal.body("quick"), name="quick", overlap="skip"),
    ]
    async with Harness(*jobs, clock=clock, store=store) as h:
        await h.advance_to(10)
        assert store.held == 1  # the end of slow's run at 10 s waits in the store
        await h.advance_to(20)
        assert sorted((job, tick) for job, _, tick, *_ in journal.starts) == [
            ("quick", 10.0),
            ("quick", 20.0),
            ("slow", 10.0),
        ]
        store.release.set()
        await h.advance_to(21)
    assert await h.statuses("slow") == [(10.0, 1, S.SUCCEEDED), (20.0, 1, S.SUCCEEDED)]
    assert await h.statuses("quick") == [(10.0, 1, S.SUCCEEDED), (20.0, 1, S.SUCCEEDED)]


class HeldEnds(MemoryRunStore):
    """A store that holds the end of one job's first run until `release` is set."""

    def __init__(self, clock: FakeClock, *, hold: str) -> None:
        super().__init__(clock, shared=True)
        self.hold = hold
        self.held = 0
        self.release = asyncio.Event()

    async def finish(self, run_id: str, status: RunStatus, **kwargs: Any) -> RunRecord:
        if (await self.history(self.hold, limit=1))[0].run_id == run_id and not self.held:
            self.held += 1
            await self.release.wait()
        return await super().finish(run_id, status, **kwargs)
