"""Done run requests are pruned with the history, on the fake clock; open ones never are."""

from __future__ import annotations

from datetime import datetime, timedelta

from structlog.testing import capture_logs

from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.store.requests import RequestState
from financial.pkg.scheduler.store.requests_memory import MemoryRequestStore
from tests.unit.scheduling import T0, Harness, Recorder, job_of

DAY = timedelta(days=1)


async def done_request(requests: MemoryRequestStore, job: str) -> str:
    [request] = await requests.add(job, [None], trigger=Trigger.MANUAL, requested_by="ops")
    [claimed] = await requests.claim([job], worker_id="w", limit=1)
    await requests.complete(claimed.request_id, worker_id="w", run_id=None, status=RunStatus.FAILED)
    return request.request_id


class FailingPrune(MemoryRequestStore):
    async def prune(self, before: datetime, *, limit: int = 1000) -> int:
        raise RuntimeError("run_requests is locked")


async def test_done_requests_older_than_the_retention_go_in_the_hourly_pass(
    clock: FakeClock,
) -> None:
    h = Harness(job_of("0 0 */6 * * *", Recorder(clock)), clock=clock, history_retention=DAY)
    requests = MemoryRequestStore(h.store, clock, claim_lease=timedelta(days=30))
    h.scheduler.maintenance.attach_requests(requests)
    first = await done_request(requests, "a")  # finished at T0
    [claimed] = await requests.add("b", [None], trigger=Trigger.MANUAL, requested_by="ops")
    await requests.claim(["b"], worker_id="w", limit=1)
    [pending] = await requests.add("c", [None], trigger=Trigger.MANUAL, requested_by="ops")
    async with h:
        await h.advance_to(2 * 3600)
        second = await done_request(requests, "d")  # finished at 2 h
        # The pass at 24 h prunes before T0: `a` finished at T0 exactly, so it stays.
        await h.advance_to(24 * 3600 + 1800)
        assert await requests.get(first) is not None
        with capture_logs() as logs:
            await h.advance_to(25 * 3600 + 1800)
        assert await requests.get(first) is None
        assert await requests.get(second) is not None
        await h.advance_to(27 * 3600 + 1800)
        assert await requests.get(second) is None
        await h.advance_to(40 * 24 * 3600)
    pruned = [e for e in logs if e["event"] == "run_requests_pruned"]
    assert [(e["deleted"], e["before"]) for e in pruned] == [
        (1, (T0 + timedelta(hours=1)).isoformat())
    ]
    states = {r.job: r.state for r in await requests.open_requests()}
    assert states == {"b": RequestState.CLAIMED, "c": RequestState.PENDING}
    assert {claimed.request_id, pending.request_id} == {
        r.request_id for r in await requests.open_requests()
    }


async def test_a_failing_request_prune_is_logged_and_the_history_is_still_pruned(
    clock: FakeClock,
) -> None:
    h = Harness(job_of("0 0 */6 * * *", Recorder(clock)), clock=clock, history_retention=DAY)
    requests = FailingPrune(h.store, clock)
    done = await done_request(requests, "a")
    h.scheduler.maintenance.attach_requests(requests)
    with capture_logs() as logs:
        async with h:
            await h.advance_to(31 * 3600)
    failed = [e for e in logs if e["event"] == "maintenance_failed"]
    assert failed and {e["step"] for e in failed} == {"prune_requests"}
    assert "locked" in failed[0]["error"]
    # The history's own prune ran in the same passes: the run of 6 h is gone.
    assert [s for s, _, _ in await h.statuses()] == [12 * 3600, 18 * 3600, 24 * 3600, 30 * 3600]
    assert await requests.get(done) is not None
