"""The request watcher on a fake clock: requests run through the scheduler's whole chain, as new
attempts of their ticks, one at a time per job, under the concurrency cap."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.loop.requests import RequestWatcher
from financial.pkg.scheduler.store.requests import RequestState
from financial.pkg.scheduler.store.requests_memory import MemoryRequestStore
from tests.unit.scheduling import T0, Harness, Recorder, job_of

DAY = timedelta(days=1)


def watcher_for(h: Harness) -> tuple[RequestWatcher, MemoryRequestStore]:
    requests = MemoryRequestStore(h.store, h.clock)
    watcher = RequestWatcher(
        requests=requests, scheduler=h.scheduler, clock=h.clock, worker_id="test-worker"
    )
    return watcher, requests


async def settle(clock: FakeClock, watcher: RequestWatcher, passes: int = 6) -> None:
    for _ in range(passes):
        await watcher.run_pass()
        await clock.settle()


async def test_a_trigger_runs_through_the_chain_with_its_args(clock: FakeClock) -> None:
    body = Recorder(clock)
    h = Harness(job_of("0 3 * * *", body), clock=clock)
    async with h:
        watcher, requests = watcher_for(h)
        [request] = await requests.add(
            "probe", [None], trigger=Trigger.MANUAL, requested_by="ops", args={"day": "x"}
        )
        await settle(clock, watcher)
        [ctx] = body.contexts
        assert ctx.trigger is Trigger.MANUAL
        assert dict(ctx.args) == {"day": "x"}
        with pytest.raises(TypeError):
            ctx.args["day"] = "changed"  # type: ignore[index]
        assert ctx.scheduled_at == T0
        done = await requests.get(request.request_id)
        assert done is not None and done.state is RequestState.DONE
        assert done.status is RunStatus.SUCCEEDED and done.run_id == ctx.run_id
    [run] = await h.history()
    assert (run.trigger, run.status, run.attempt) == (Trigger.MANUAL, RunStatus.SUCCEEDED, 1)


async def test_a_past_tick_runs_again_as_its_next_attempt(clock: FakeClock) -> None:
    body = Recorder(clock)
    h = Harness(job_of("0 3 * * *", body), clock=clock)
    async with h:
        await h.advance_to(DAY.total_seconds())  # the 03:00 tick runs
        tick = T0 + timedelta(hours=3)
        watcher, requests = watcher_for(h)
        await requests.add("probe", [tick], trigger=Trigger.MANUAL, requested_by="ops")
        await settle(clock, watcher)
    assert [(c.scheduled_at, c.attempt, c.trigger) for c in body.contexts] == [
        (tick, 1, Trigger.SCHEDULE),
        (tick, 2, Trigger.MANUAL),
    ]
    assert dict(body.contexts[0].args) == {}  # scheduled runs get no args


async def test_a_backfill_runs_each_tick_once_in_order_one_at_a_time(clock: FakeClock) -> None:
    body = Recorder(clock, duration=timedelta(seconds=5))
    # overlap skip (the default): a backfill must not be skipped by its own runs.
    h = Harness(job_of("0 3 * * *", body), clock=clock)
    async with h:
        watcher, requests = watcher_for(h)
        ticks = [T0 - DAY * n + timedelta(hours=3) for n in (3, 2, 1)]
        await requests.add("probe", ticks, trigger=Trigger.BACKFILL, requested_by="ops")
        for _ in range(6):
            await watcher.run_pass()
            assert len([r for r in await h.store.live_runs("probe")]) <= 1
            await clock.advance(timedelta(seconds=6))
    assert [c.scheduled_at for c in body.contexts] == ticks
    assert {c.trigger for c in body.contexts} == {Trigger.BACKFILL}
    runs = await h.history()
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED] * 3


async def test_no_claim_while_the_cap_is_full(clock: FakeClock) -> None:
    body = Recorder(clock, duration=timedelta(seconds=30))
    h = Harness(
        job_of("* * * * * *", body, overlap="allow"),
        job_of("0 3 * * *", Recorder(clock), name="other"),
        clock=clock,
        max_concurrent=1,
    )
    async with h:
        await h.advance_to(1)  # one run of probe holds the only slot
        watcher, requests = watcher_for(h)
        await requests.add("other", [None], trigger=Trigger.MANUAL, requested_by="ops")
        assert await watcher.run_pass() == []
        [pending] = await requests.open_requests()
        assert pending.state is RequestState.PENDING


async def test_a_paused_job_skips_a_backfill_but_runs_a_trigger(clock: FakeClock) -> None:
    body = Recorder(clock)
    h = Harness(job_of("0 3 * * *", body), clock=clock)
    async with h:
        await h.store.pause("probe", "maintenance")
        watcher, requests = watcher_for(h)
        [backfill] = await requests.add(
            "probe", [T0 - DAY], trigger=Trigger.BACKFILL, requested_by="ops"
        )
        await settle(clock, watcher)
        [manual] = await requests.add("probe", [None], trigger=Trigger.MANUAL, requested_by="ops")
        await settle(clock, watcher)
        statuses = [(await requests.get(r.request_id)) for r in (backfill, manual)]
    assert [s.status if s else None for s in statuses] == [RunStatus.SKIPPED, RunStatus.SUCCEEDED]
    assert [c.trigger for c in body.contexts] == [Trigger.MANUAL]


async def test_the_loop_stops_and_a_store_failure_does_not_crash_it(clock: FakeClock) -> None:
    h = Harness(job_of("0 3 * * *", Recorder(clock)), clock=clock)
    async with h:
        watcher, requests = watcher_for(h)

        async def broken(*args: object, **kwargs: object) -> list[object]:
            raise ConnectionError("database down")

        requests.claim = broken  # type: ignore[method-assign,assignment]
        task = asyncio.create_task(watcher.run())
        await clock.settle()
        await clock.advance(timedelta(seconds=5))
        assert not task.done()
        watcher.stop()
        await asyncio.wait_for(task, 1)


async def test_a_request_cut_short_by_the_drain_ends_interrupted(clock: FakeClock) -> None:
    body = Recorder(clock, duration=timedelta(minutes=5))
    h = Harness(job_of("0 3 * * *", body), clock=clock)
    watcher, requests = watcher_for(h)
    async with h:
        [request] = await requests.add("probe", [None], trigger=Trigger.MANUAL, requested_by="x")
        await settle(clock, watcher)
        assert len(body.starts) == 1
        watcher.stop()
    # The harness drained with no grace: the run was cancelled, and the request says so.
    done = await requests.get(request.request_id)
    assert done is not None and done.state is RequestState.DONE
    assert done.status is RunStatus.INTERRUPTED
    [run] = await h.history()
    assert run.status is RunStatus.INTERRUPTED


async def test_without_a_listener_the_poll_finds_requests(clock: FakeClock) -> None:
    body = Recorder(clock)
    h = Harness(job_of("0 3 * * *", body), clock=clock)
    async with h:
        watcher, requests = watcher_for(h)
        task = asyncio.create_task(watcher.run())
        await clock.settle()
        await requests.add("probe", [None], trigger=Trigger.MANUAL, requested_by="x")
        await clock.advance(timedelta(seconds=1))
        assert body.starts == []  # no notification: it waits for the next poll
        await clock.advance(timedelta(seconds=1.5))
        assert len(body.starts) == 1
        watcher.stop()
        await asyncio.wait_for(task, 1)


async def test_a_notification_or_a_reconnection_looks_for_requests_at_once(
    clock: FakeClock,
) -> None:
    body = Recorder(clock)
    h = Harness(job_of("0 3 * * *", body), clock=clock)
    async with h:
        watcher, requests = watcher_for(h)
        task = asyncio.create_task(watcher.run())
        await clock.settle()
        await requests.add("probe", [None], trigger=Trigger.MANUAL, requested_by="x")
        watcher.notified("probe")  # what the notification hub does for REQUESTS_CHANNEL
        await clock.settle()  # no time passes: the notification alone starts it
        assert len(body.starts) == 1
        await requests.add("probe", [T0 - DAY], trigger=Trigger.MANUAL, requested_by="x")
        await clock.settle()
        await clock.advance(timedelta(seconds=0.5))
        assert len(body.starts) == 1  # not notified: it waits for the poll ...
        watcher.wake()  # ... or for the LISTEN connection to come back
        await clock.settle()
        assert len(body.starts) == 2
        watcher.stop()
        await asyncio.wait_for(task, 1)
