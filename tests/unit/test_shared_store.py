"""Replicas sharing one run store, on a fake clock: one run per tick, overlap across replicas,
leases, abandoned runs and their recovery."""

from __future__ import annotations

import itertools
from datetime import datetime

from structlog.testing import capture_logs

from financial.pkg.jobs import JobContext
from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.scheduler.clock import FakeClock
from tests.unit.replicas import Journal, Link, shared_store
from tests.unit.scheduling import T0, Harness, job_of

S = RunStatus


def seconds(value: datetime) -> float:
    return (value - T0).total_seconds()


async def test_replicas_on_one_store_run_each_tick_once(clock: FakeClock) -> None:
    store = shared_store(clock)
    journal = Journal(clock)
    a, b, c = (
        Harness(
            job_of("*/5 * * * * *", journal.body(name)), clock=clock, store=store, worker_id=name
        )
        for name in ("a", "b", "c")
    )
    async with a, b, c:
        await a.advance_to(60)
    expected = [5.0 * n for n in range(1, 13)]
    assert sorted(journal.ticks()) == expected
    runs = await a.history()
    assert [seconds(r.scheduled_at) for r in runs] == expected
    assert {r.status for r in runs} == {S.SUCCEEDED}


async def test_skip_sees_a_run_of_another_replica(clock: FakeClock) -> None:
    store = shared_store(clock)
    journal = Journal(clock)
    replicas = [
        Harness(
            job_of("*/10 * * * * *", journal.body(name, lambda ctx: 25)),
            clock=clock,
            store=store,
            worker_id=name,
        )
        for name in ("a", "b")
    ]
    async with replicas[0], replicas[1]:
        await replicas[0].advance_to(45)
    assert journal.most_at_once == 1
    assert journal.ticks() == [10, 40]
    statuses = await replicas[0].statuses()
    assert statuses[:3] == [(10, 1, S.SUCCEEDED), (20, 1, S.SKIPPED), (30, 1, S.SKIPPED)]
    for run in (await replicas[0].history())[1:3]:
        assert run.error is not None and "still running" in run.error.message


async def test_queue_waits_for_a_run_of_another_replica(clock: FakeClock) -> None:
    store = shared_store(clock)
    journal = Journal(clock)
    replicas = [
        Harness(
            job_of(
                "*/10 * * * * *",
                journal.body(name, lambda ctx: 12),
                overlap="queue",
                start_deadline=30,
            ),
            clock=clock,
            store=store,
            worker_id=name,
        )
        for name in ("a", "b", "c")
    ]
    async with replicas[0], replicas[1], replicas[2]:
        await replicas[0].advance_to(70)
    assert journal.most_at_once == 1
    starts = [start for _, start, _, _, _ in journal.starts]
    # Each run starts when the one before it ends (within the 1 s poll of another replica).
    for before, after in itertools.pairwise(starts):
        assert 12 <= after - before <= 13
    assert len(starts) >= 5


async def test_replace_by_another_replica_cancels_the_run_at_its_next_renewal(
    clock: FakeClock,
) -> None:
    store = shared_store(clock)
    journal = Journal(clock)
    # One job, two replicas whose schedules differ (an operator's override on one of them), so
    # the tick at 20 s is certainly claimed by the other replica.
    first = Harness(
        job_of("10 * * * * *", journal.body("a", lambda ctx: 100), overlap="replace"),
        clock=clock,
        store=store,
        worker_id="a",
    )
    second = Harness(
        job_of("20 * * * * *", journal.body("b", lambda ctx: 5), overlap="replace"),
        clock=clock,
        store=store,
        worker_id="b",
    )
    with capture_logs() as logs:
        async with first, second:
            await first.advance_to(40)
            interrupted_by_a = first.scheduler.runner.interrupted
    # Its worker learns it at its next renewal (every 10 s of a 30 s lease): the one at 20 s,
    # if it comes after the claim of the same instant, else the one at 30 s.
    assert journal.cancelled in ([("a", 20)], [("a", 30)])
    assert interrupted_by_a == 0
    replaced, replacing = await first.history()
    assert (replaced.worker_id, replaced.status) == ("a", S.INTERRUPTED)
    assert replaced.error is not None and "replaced" in replaced.error.message
    assert (replacing.worker_id, replacing.status) == ("b", S.SUCCEEDED)
    lost = [e for e in logs if e["event"] == "lease_lost"]
    assert lost and "ended by another worker" in lost[0]["reason"]


async def test_a_run_whose_replica_is_cut_off_is_abandoned_and_not_run_again(
    clock: FakeClock,
) -> None:
    store = shared_store(clock)
    journal = Journal(clock)

    def long_first(ctx: JobContext) -> float:
        return 100 if seconds(ctx.scheduled_at) == 60 and ctx.attempt == 1 else 1

    links = {name: Link(store) for name in ("a", "b")}
    replicas = {
        name: Harness(
            job_of("0 * * * * *", journal.body(name, long_first)),
            clock=clock,
            store=links[name].store,
            worker_id=name,
        )
        for name in ("a", "b")
    }
    with capture_logs() as logs:
        async with replicas["a"], replicas["b"]:
            await replicas["a"].advance_to(61)
            [(owner, *_)] = journal.starts
            links[owner].cut = True
            await replicas["a"].advance_to(100)
            survivor = "b" if owner == "a" else "a"
            runs = await store.history()
    # The cut-off replica gives up its run before the lease (30 s from 60 s) could lapse.
    assert journal.cancelled == [(owner, 85)]
    [abandoned] = runs
    assert abandoned.status is S.ABANDONED
    assert abandoned.worker_id == owner
    assert abandoned.error is not None and owner in abandoned.error.message
    assert not any(e["event"] == "run_recovering" for e in logs)
    swept = [e for e in logs if e["event"] == "run_abandoned"]
    assert swept and swept[0]["abandoned_by"] == owner
    assert survivor != owner


async def test_an_abandoned_tick_of_a_recover_job_runs_again_on_a_survivor(
    clock: FakeClock,
) -> None:
    store = shared_store(clock)
    journal = Journal(clock)

    def long_first(ctx: JobContext) -> float:
        return 100 if ctx.attempt == 1 and seconds(ctx.scheduled_at) == 60 else 1

    links = {name: Link(store) for name in ("a", "b")}
    replicas = {
        name: Harness(
            job_of("0 * * * * *", journal.body(name, long_first), recover=True),
            clock=clock,
            store=links[name].store,
            worker_id=name,
        )
        for name in ("a", "b")
    }
    async with replicas["a"], replicas["b"]:
        await replicas["a"].advance_to(61)
        [(owner, *_)] = journal.starts
        links[owner].cut = True
        await replicas["a"].advance_to(100)
        survivor = "b" if owner == "a" else "a"
        runs = await store.history()
    assert [(r.attempt, r.status, r.trigger, r.worker_id) for r in runs] == [
        (2, S.SUCCEEDED, Trigger.RETRY, survivor),
        (1, S.ABANDONED, Trigger.SCHEDULE, owner),
    ]
    rerun = journal.starts[-1]
    assert rerun[0] == survivor and rerun[2:] == (60, 2, Trigger.RETRY)
    # The sweep runs every 5 s: the lease lapsed at 90 s, so the rerun came by 95 s.
    assert 90 <= rerun[1] <= 95


async def test_renewals_keep_a_long_run_alive(clock: FakeClock) -> None:
    store = shared_store(clock)
    journal = Journal(clock)
    replicas = [
        Harness(
            job_of("0 0 * * * *", journal.body(name, lambda ctx: 200)),
            clock=clock,
            store=store,
            worker_id=name,
        )
        for name in ("a", "b")
    ]
    async with replicas[0], replicas[1]:
        await replicas[0].advance_to(3600 + 250)
    assert journal.cancelled == []
    assert await replicas[0].statuses() == [(3600, 1, S.SUCCEEDED)]
