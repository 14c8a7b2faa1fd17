"""Starts before ends (`starts_first.py`): the bookkeeping after a run waits, within a bound,
while runs dispatched with it have yet to start."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from financial.pkg.jobs import JobContext
from financial.pkg.jobs.model import RunStatus
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.execution.starts_first import StartsFirst
from financial.pkg.scheduler.store import RunError, RunRecord
from financial.pkg.scheduler.store.memory import MemoryRunStore
from tests.unit.scheduling import T0, Harness, Recorder, job_of


async def test_nothing_pending_means_no_wait(clock: FakeClock) -> None:
    gate = StartsFirst(clock)
    await asyncio.wait_for(gate.wait(), 0.1)
    gate.ticket().settle()
    await asyncio.wait_for(gate.wait(), 0.1)
    assert gate.pending == 0


async def test_ends_wait_until_every_ticket_is_settled_once(clock: FakeClock) -> None:
    gate = StartsFirst(clock)
    first, second = gate.ticket(), gate.ticket()
    waiter = asyncio.ensure_future(gate.wait())
    await clock.settle()
    first.settle()
    first.settle()  # twice counts once
    await clock.settle()
    assert not waiter.done() and gate.pending == 1
    second.settle()
    await clock.settle()
    assert waiter.done() and gate.pending == 0


async def test_the_wait_is_bounded(clock: FakeClock) -> None:
    gate = StartsFirst(clock, max_hold=timedelta(seconds=1))
    gate.ticket()  # a run that waits for a slot held by a long job
    waiter = asyncio.ensure_future(gate.wait())
    await clock.advance(0.9)
    assert not waiter.done()
    await clock.advance(0.1)
    assert waiter.done()
    # A later end waits again, for at most the bound.
    again = asyncio.ensure_future(gate.wait())
    await clock.settle()
    assert not again.done()
    await clock.advance(1)
    assert again.done()


async def test_a_stopping_worker_does_not_wait(clock: FakeClock) -> None:
    gate = StartsFirst(clock)
    gate.ticket()
    waiter = asyncio.ensure_future(gate.wait())
    await clock.settle()
    gate.close()
    await clock.settle()
    assert waiter.done()
    await asyncio.wait_for(gate.wait(), 0.1)


async def test_a_run_cancelled_while_waiting_goes_on_to_record_its_end(clock: FakeClock) -> None:
    gate = StartsFirst(clock)
    gate.ticket()
    recorded: list[str] = []

    async def end_of_run() -> None:
        await gate.wait()
        await asyncio.sleep(0)  # recording the end: not cancelled again
        recorded.append("end")

    task = asyncio.ensure_future(end_of_run())
    await clock.settle()
    task.cancel()
    await clock.settle()
    assert task.done() and not task.cancelled()
    assert recorded == ["end"]


class EndsLog(MemoryRunStore):
    """A store noting, with the jobs, the order of starts and recorded ends."""

    def __init__(self, clock: FakeClock, events: list[str]) -> None:
        super().__init__(clock)
        self.events = events

    async def finish(
        self,
        run_id: str,
        status: RunStatus,
        *,
        fence: int,
        error: RunError | None = None,
        duration_ms: float | None = None,
    ) -> RunRecord:
        record = await super().finish(
            run_id, status, fence=fence, error=error, duration_ms=duration_ms
        )
        self.events.append(f"end {record.job}")
        return record


async def test_every_run_of_a_tick_starts_before_any_end_is_recorded(clock: FakeClock) -> None:
    events: list[str] = []

    def body(name: str) -> Callable[[JobContext], Awaitable[None]]:
        async def run(ctx: JobContext) -> None:
            events.append(f"start {name}")

        return run

    jobs = [job_of("* * * * * *", body(f"j{i}"), name=f"j{i}") for i in range(25)]
    store = EndsLog(clock, events)
    async with Harness(*jobs, clock=clock, store=store, max_concurrent=2) as h:
        await h.advance_to(1)
        starts = [i for i, e in enumerate(events) if e.startswith("start")]
        ends = [i for i, e in enumerate(events) if e.startswith("end")]
        assert len(starts) == 25 and len(ends) == 25
        assert max(starts) < min(ends), events
        assert {r.status for r in await h.history()} == {RunStatus.SUCCEEDED}


async def test_a_run_waiting_for_a_slot_does_not_hold_back_the_ends(clock: FakeClock) -> None:
    long = Recorder(clock, duration=timedelta(seconds=5))
    quick, waiting = Recorder(clock), Recorder(clock)
    jobs = [
        job_of("*/10 * * * * *", quick, name="a_quick"),
        job_of("*/10 * * * * *", long, name="b_long"),
        job_of("*/10 * * * * *", waiting, name="c_waiting"),
    ]
    async with Harness(*jobs, clock=clock, max_concurrent=1) as h:
        await h.advance_to(10.5)
        # `waiting` waits for the slot `long` holds: the end of `quick` is recorded meanwhile.
        assert [len(r.starts) for r in (quick, long, waiting)] == [1, 1, 0]
        assert [r.status for r in await h.history("a_quick")] == [RunStatus.SUCCEEDED]
        await h.advance_to(15)
        assert len(waiting.starts) == 1
        assert [r.status for r in await h.history("b_long")] == [RunStatus.SUCCEEDED]


Kept = tuple[str, datetime, int, RunStatus, RunError | None, float | None]


async def run_ticks(clock: FakeClock, *, starts_first: bool) -> tuple[list[str], list[Kept]]:
    """Three ticks of 20 jobs, one failing, under a cap of 3: the store's events in order, and
    what the shortcut must not change (each run's tick, attempt, status, error and duration)."""
    events: list[str] = []

    def body(name: str) -> Callable[[JobContext], Awaitable[None]]:
        async def run(ctx: JobContext) -> None:
            events.append(f"start {name}")
            await clock.sleep(timedelta(milliseconds=int(name[1:])))
            if name == "j7":
                raise RuntimeError("j7 fails")

        return run

    jobs = [job_of("* * * * * *", body(f"j{i}"), name=f"j{i}") for i in range(20)]
    store = EndsLog(clock, events)
    async with Harness(*jobs, clock=clock, store=store, max_concurrent=3) as h:
        if not starts_first:
            h.scheduler.runner.starts.close()  # the plain path: no end waits for a start
        for second in (1, 2, 3, 3.5):
            await h.advance_to(second)
        kept: list[Kept] = [
            (r.job, r.scheduled_at, r.attempt, r.status, r.error, r.duration_ms)
            for r in sorted(await h.history(), key=lambda r: (r.job, r.scheduled_at))
        ]
    return events, kept


async def test_it_records_what_the_plain_path_records() -> None:
    """The shortcut only reorders: the same runs with the same ends as when no end ever waits
    for a start; with it, fewer ends are written before a tick's last start."""
    held_events, held = await run_ticks(FakeClock(T0), starts_first=True)
    plain_events, plain = await run_ticks(FakeClock(T0), starts_first=False)

    assert held == plain
    assert len(held) == 60 and sum(1 for r in held if r[3] is RunStatus.FAILED) == 3
    assert sorted(held_events) == sorted(plain_events)

    def ends_before_last_start(events: list[str]) -> int:
        last_start = max(i for i, e in enumerate(events) if e.startswith("start"))
        return sum(1 for e in events[:last_start] if e.startswith("end"))

    # Under the cap the ends of a wave come before the next wave starts, either way; what the
    # shortcut holds back is each run's end until the runs given a slot meanwhile have started.
    assert ends_before_last_start(held_events) < ends_before_last_start(plain_events)
