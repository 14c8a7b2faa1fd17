"""The scheduler while its run store is slow or away: it keeps running, no tick is lost
silently, and a worker asked to stop starts nothing it claimed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.store import RunRecord, StartRequest
from financial.pkg.scheduler.store.memory import MemoryRunStore
from tests.unit.replicas import Journal, Link, shared_store
from tests.unit.scheduling import T0, Harness, Recorder, job_of

S = RunStatus


def replica_on_a_link(
    clock: FakeClock, schedule: str, duration_s: float = 0.0, *, lease_s: float = 30
) -> tuple[Link, Journal, Harness]:
    """A replica `a` running one job of `duration_s` on a shared store behind a link the test
    cuts or freezes."""
    link = Link(shared_store(clock, lease_s=lease_s))
    journal = Journal(clock)
    h = Harness(
        job_of(schedule, journal.body("a", lambda ctx: duration_s)),
        clock=clock,
        store=link.store,
        worker_id="a",
    )
    return link, journal, h


async def test_ticks_due_while_the_store_is_away_are_recorded_missed_once_it_is_back(
    clock: FakeClock,
) -> None:
    link, journal, h = replica_on_a_link(clock, "*/10 * * * * *")
    with capture_logs() as logs:
        async with h:
            await h.advance_to(10)
            link.cut = True
            await h.advance_to(35)
            link.cut = False
            await h.advance_to(45)
    assert journal.ticks() == [10, 40]
    assert await h.statuses() == [
        (10, 1, S.SUCCEEDED),
        (20, 1, S.MISSED),
        (30, 1, S.MISSED),
        (40, 1, S.SUCCEEDED),
    ]
    missed = (await h.history())[1]
    assert missed.error is not None and "run store unavailable" in missed.error.message
    not_recorded = [e for e in logs if e["event"] == "tick_not_recorded"]
    assert [e["scheduled_at"][-8:-6] for e in not_recorded] == ["20", "30"]
    assert "ConnectionError" in not_recorded[0]["reason"]


async def test_a_run_whose_end_cannot_be_written_gets_it_once_the_store_is_back(
    clock: FakeClock,
) -> None:
    link, journal, h = replica_on_a_link(clock, "0 * * * * *", 5)
    with capture_logs() as logs:
        async with h:
            await h.advance_to(62)
            link.cut = True
            await h.advance_to(70)
            link.cut = False
            # The lease taken when the run started (60 s) would lapse at 90 s: the end is
            # written by the housekeeping pass before the sweep could see it.
            await h.advance_to(100)
    assert journal.ticks() == [60]
    [run] = await h.history()
    assert run.status is S.SUCCEEDED
    assert run.duration_ms == 5000.0  # the job's own time, not the wait for the store
    [lost] = [e for e in logs if e["event"] == "run_not_recorded"]
    assert lost["status"] == "succeeded" and "written once it answers" in lost["reason"]
    assert [e["count"] for e in logs if e["event"] == "run_ends_recorded"] == [1]


async def test_the_tick_after_an_outage_is_not_skipped_for_a_run_whose_end_was_not_written(
    clock: FakeClock,
) -> None:
    link, journal, h = replica_on_a_link(clock, "*/10 * * * * *", 1, lease_s=60)
    async with h:
        await h.advance_to(10.5)
        link.cut = True  # the run of tick 10 ends at 11 s: its end cannot be written
        await h.advance_to(35)
        link.cut = False
        await h.advance_to(41)
    assert journal.ticks() == [10, 40]
    statuses = await h.statuses()
    assert statuses == [
        (10, 1, S.SUCCEEDED),
        (20, 1, S.MISSED),
        (30, 1, S.MISSED),
        (40, 1, S.SUCCEEDED),
    ]
    for run in (await h.history())[1:3]:
        assert run.error is not None and "run store unavailable" in run.error.message


async def test_a_run_that_cannot_renew_its_lease_is_cancelled_before_it_lapses(
    clock: FakeClock,
) -> None:
    link, journal, h = replica_on_a_link(clock, "0 * * * * *", 100)
    with capture_logs() as logs:
        async with h:
            await h.advance_to(75)  # one renewal went through, at 70 s: the lease lasts to 100 s
            link.cut = True
            await h.advance_to(99)
            assert journal.cancelled == [("a", 95)]
            link.cut = False
            await h.advance_to(106)
            interrupted = h.scheduler.runner.interrupted
    assert interrupted == 0
    [run] = await h.history()
    assert run.status is S.ABANDONED
    events = [e["event"] for e in logs]
    assert "lease_renewal_failed" in events
    assert events.index("lease_lost") < events.index("job_lease_lost")


class SlowStore(MemoryRunStore):
    """A store whose claims or starts wait at a gate the test opens: a slow round trip."""

    def __init__(self, clock: FakeClock, slow: str) -> None:
        super().__init__(clock)
        self.slow = slow
        self.waiting = asyncio.Event()
        self.gate = asyncio.Event()

    async def _pass(self, call: str) -> None:
        if call == self.slow:
            self.waiting.set()
            await self.gate.wait()

    async def claim(self, *args: object, **kwargs: object) -> RunRecord | None:
        await self._pass("claim")
        return await super().claim(*args, **kwargs)  # type: ignore[arg-type]

    async def start(self, run_id: str, *, fence: int, trace_id: str | None = None) -> RunRecord:
        await self._pass("start")
        return await super().start(run_id, fence=fence, trace_id=trace_id)

    async def finish(self, run_id: str, status: RunStatus, **kwargs: Any) -> RunRecord:
        await self._pass("finish")
        return await super().finish(run_id, status, **kwargs)


@pytest.mark.parametrize("slow", ["claim", "start"])
async def test_a_run_claimed_as_the_worker_is_asked_to_stop_is_missed_not_started(
    clock: FakeClock, slow: str
) -> None:
    store = SlowStore(clock, slow)
    body = Recorder(clock)
    h = Harness(job_of("*/10 * * * * *", body), clock=clock, store=store)
    async with h:
        await h.advance_to(10)
        await store.waiting.wait()
        h.scheduler.stop()  # the signal handler's call, while the round trip is under way
        store.gate.set()
        await clock.settle()
        [run] = await h.history()
    assert body.starts == []
    assert (run.status, run.trigger) == (RunStatus.MISSED, Trigger.SCHEDULE)
    assert run.error is not None and "stopping" in run.error.message


class CountingClock(FakeClock):
    """A fake clock that counts the waits, so a loop that spins on a past deadline shows."""

    def __init__(self) -> None:
        super().__init__(T0)
        self.waits = 0

    async def sleep_until(self, deadline: datetime, wake: asyncio.Event | None = None) -> bool:
        self.waits += 1
        return await super().sleep_until(deadline, wake)


async def test_a_store_frozen_past_the_lease_cancels_the_run_and_the_worker_goes_on() -> None:
    clock = CountingClock()
    store = shared_store(clock)
    link = Link(store)
    journal = Journal(clock)
    h = Harness(
        job_of(
            "0 * * * * *",
            journal.body(
                "a", lambda ctx: 100 if ctx.scheduled_at == T0 + timedelta(seconds=60) else 1
            ),
        ),
        clock=clock,
        store=link.store,
        worker_id="a",
    )
    with capture_logs() as logs:
        async with h:
            await h.advance_to(75)  # one renewal went through, at 70 s: the lease lasts to 100 s
            link.thawed.clear()  # the database is frozen: every call hangs
            waits_before = clock.waits
            await h.advance_to(110)
            # The renewals sent at 80 and 90 s hang; each is given up at its time limit, and the
            # run is cancelled before its lease could lapse. The keeper never spins meanwhile.
            assert journal.cancelled == [("a", 95)]
            assert clock.waits - waits_before < 50
            link.thawed.set()
            await h.advance_to(125)
    assert [tick for _, _, tick, _, _ in journal.starts] == [60, 120]
    statuses = await h.statuses()
    assert statuses == [(60, 1, S.ABANDONED), (120, 1, S.SUCCEEDED)]
    failed = [e for e in logs if e["event"] == "lease_renewal_failed"]
    assert failed and "no answer within 10 s" in failed[0]["error"]


async def test_ticks_of_a_frozen_store_are_missed_never_skipped_for_each_other(
    clock: FakeClock,
) -> None:
    link, _, h = replica_on_a_link(clock, "* * * * * *", 0.5, lease_s=60)
    async with h:
        await h.advance_to(2.9)
        link.thawed.clear()  # the claims of ticks 3..10 hang in the frozen store
        await h.advance_to(10.5)
        link.thawed.set()
        await h.advance_to(13)
    statuses = await h.statuses()
    # Ticks 3 to 9 passed their start deadline (the next tick) in the freeze; tick 10 did not.
    window = [(at, status) for at, _, status in statuses if 3 <= at <= 9]
    assert [at for at, _ in window] == [float(s) for s in range(3, 10)]
    assert {status for _, status in window} == {S.MISSED}, window
    for run in await h.history():
        if 3 <= (run.scheduled_at - T0).total_seconds() <= 9:
            assert run.error is not None and "start deadline" in run.error.message
    assert [status for at, _, status in statuses if 10 <= at <= 12] == [S.SUCCEEDED] * 3


async def test_a_claim_waits_for_the_end_of_the_jobs_last_run_still_on_its_way(
    clock: FakeClock,
) -> None:
    # The run of tick 1 has ended; its end is in flight (a slow or frozen store). Tick 2 must
    # not be decided before it lands, or it would see tick 1 `running` and skip as an overlap.
    store = SlowStore(clock, "finish")
    journal = Journal(clock)
    h = Harness(job_of("* * * * * *", journal.body("a", lambda ctx: 0.5)), clock=clock, store=store)
    async with h:
        await h.advance_to(1.6)
        await store.waiting.wait()
        await h.advance_to(2.2)
        assert journal.ticks() == [1]  # tick 2 waits for tick 1's end
        store.gate.set()
        await h.advance_to(2.9)
    assert journal.ticks() == [1, 2]
    assert [(at, status) for at, _, status in await h.statuses()][:2] == [
        (1, S.SUCCEEDED),
        (2, S.SUCCEEDED),
    ]


async def test_a_claim_answered_too_late_to_hold_its_lease_is_missed_not_started(
    clock: FakeClock,
) -> None:
    # Lease 30 s: a claim answered 12 s after it was sent (more than a third of the lease)
    # has a lease that may lapse before the first renewal; its tick is recorded missed.
    store = SlowStore(clock, "claim")
    journal = Journal(clock)
    h = Harness(
        job_of("0 * * * * *", journal.body("a"), start_deadline=30), clock=clock, store=store
    )
    async with h:
        await h.advance_to(60)
        await store.waiting.wait()
        await h.advance_to(72)
        store.gate.set()
        await h.advance_to(75)
    assert journal.ticks() == []
    [run] = await h.history()
    assert run.status is S.MISSED
    assert run.error is not None and "third of the lease" in run.error.message


class SlowMarks(MemoryRunStore):
    """A batched store whose `running` marks wait at a gate: the job runs (the claim made the
    tick ours) and returns, and its end waits for the mark's answer."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock, batched=True)
        self.waiting = asyncio.Event()
        self.gate = asyncio.Event()

    async def start_many(self, requests: Sequence[StartRequest]) -> list[RunRecord | None]:
        self.waiting.set()
        await self.gate.wait()
        return await super().start_many(requests)


async def test_a_claim_waits_for_an_end_held_back_by_its_running_mark(clock: FakeClock) -> None:
    store = SlowMarks(clock)
    journal = Journal(clock)
    h = Harness(job_of("* * * * * *", journal.body("a")), clock=clock, store=store)
    async with h:
        await h.advance_to(1)
        await store.waiting.wait()
        await h.advance_to(2.2)
        assert journal.ticks() == [1]  # tick 2 waits for tick 1's end, which waits for its mark
        store.gate.set()
        await h.advance_to(2.5)
    assert journal.ticks() == [1, 2]
    assert [(at, status) for at, _, status in await h.statuses()][:2] == [
        (1, S.SUCCEEDED),
        (2, S.SUCCEEDED),
    ]


class RefusingEnds(MemoryRunStore):
    """A store that refuses every end with an error that is not an outage."""

    async def finish(self, run_id: str, status: RunStatus, **kwargs: Any) -> RunRecord:
        raise ValueError("value too long for type character varying(2000)")


async def test_an_end_the_store_refuses_is_logged_and_not_tried_again(clock: FakeClock) -> None:
    h = Harness(job_of("*/10 * * * * *", Recorder(clock)), clock=clock, store=RefusingEnds(clock))
    with capture_logs() as logs:
        async with h:
            await h.advance_to(25)
            assert len(h.scheduler.runner.backlog.unwritten) == 0
    lost = [e for e in logs if e["event"] == "run_not_recorded"]
    assert lost and "refused the end: ValueError" in lost[0]["reason"]
