"""The batched read of recent runs (`RunStore.recent_runs`), against every run store.

Mixed into the same `Test...` classes as `RunStoreContract` (same `store` fixture): the status
page's overview reads every job's recent runs through it in one call.
"""

from __future__ import annotations

from financial.pkg.jobs.model import Trigger
from financial.pkg.scheduler.store import RunStore
from tests.contract.run_store_contract import S, claim, tick


class RunStoreRecentContract:
    """`recent_runs` gives, per job, what `history(job, limit=...)` gives."""

    async def test_recent_runs_per_job_match_history(self, store: RunStore) -> None:
        for n in range(4):
            record = await claim(store, n * 10)
            await store.finish(record.run_id, S.SUCCEEDED, fence=record.fence)
        await claim(store, 30, attempt=2, trigger=Trigger.RETRY)
        for n in range(2):
            await claim(store, n * 10, job="other")
        recent = await store.recent_runs(["job", "other", "idle"], limit=3)
        assert set(recent) == {"job", "other", "idle"}
        assert [(r.scheduled_at, r.attempt) for r in recent["job"]] == [
            (tick(30), 2),
            (tick(30), 1),
            (tick(20), 1),
        ]
        assert [r.run_id for r in recent["job"]] == [
            r.run_id for r in await store.history("job", limit=3)
        ]
        assert [r.scheduled_at for r in recent["other"]] == [tick(10), tick(0)]
        assert recent["idle"] == []
        assert recent["job"][2].status is S.SUCCEEDED

    async def test_recent_runs_of_no_job_is_empty(self, store: RunStore) -> None:
        await claim(store, 0)
        assert await store.recent_runs([], limit=5) == {}
