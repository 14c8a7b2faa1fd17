"""The contract every `AlertStore` keeps, run against `MemoryAlertStore` and the PostgreSQL one.

A test module subclasses `AlertStoreContract` as `Test...` and provides four fixtures: `alerts`
(the implementation under test), `runs` (the run store whose history it reads), `elapse` (the
store's clock moves on: a fake clock in memory, a real sleep for PostgreSQL's `now()`) and
`written` (the outbox events written so far, as (routing key, message id) pairs).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.scheduler.alerts import (
    ALERT_OFF_ROUTING_KEY,
    LATE_ROUTING_KEY,
    RECOVERED_ROUTING_KEY,
    AlertEvent,
    AlertState,
    AlertStore,
    JobFacts,
    Lateness,
)
from financial.pkg.scheduler.store import RunStore
from tests.contract.run_store_contract import TICK, Elapse, tick

LEASE_TTL = timedelta(seconds=1)
PAST_TTL_S = 1.3
Written = Callable[[], Awaitable[list[tuple[str, str]]]]
LATE_ID = "8f0c3f4e-1d7a-5b1e-9c55-6a1f0d2b7e01"
RECOVERED_ID = "8f0c3f4e-1d7a-5b1e-9c55-6a1f0d2b7e02"
OFF_ID = "8f0c3f4e-1d7a-5b1e-9c55-6a1f0d2b7e05"


def late_event(message_id: str = LATE_ID) -> AlertEvent:
    return AlertEvent(LATE_ROUTING_KEY, {"job": "job"}, message_id)


def recovered_event(message_id: str = RECOVERED_ID) -> AlertEvent:
    return AlertEvent(RECOVERED_ROUTING_KEY, {"job": "job"}, message_id)


LATENESS = Lateness(since=tick(70), tick=tick(10), reason="no success")


async def run_of(
    runs: RunStore, at: float, status: RunStatus, *, start: bool = True, attempt: int = 1
) -> None:
    """A run of `job` for tick `at` that started (unless `start` is False) and ended `status`."""
    record = await runs.claim(
        "job", tick(at), attempt=attempt, trigger=Trigger.SCHEDULE, worker_id="w1"
    )
    assert record is not None
    if start:
        record = await runs.start(record.run_id, fence=record.fence)
    if status.is_final:
        await runs.finish(record.run_id, status, fence=record.fence)


class AlertStoreContract:
    """Tests every alert store passes. Subclasses provide the fixtures (see the module)."""

    # -- the lease ------------------------------------------------------------------------------

    async def test_a_lease_has_one_holder_until_it_expires(
        self, alerts: AlertStore, elapse: Elapse
    ) -> None:
        assert await alerts.take_lease("late_jobs", "a", LEASE_TTL)
        assert not await alerts.take_lease("late_jobs", "b", LEASE_TTL)
        assert await alerts.take_lease("late_jobs", "a", LEASE_TTL)  # renewed by its holder
        await elapse(PAST_TTL_S)
        assert await alerts.take_lease("late_jobs", "b", LEASE_TTL)  # taken over
        assert not await alerts.take_lease("late_jobs", "a", LEASE_TTL)

    async def test_a_released_lease_is_taken_at_once_and_only_its_holder_releases_it(
        self, alerts: AlertStore
    ) -> None:
        assert await alerts.take_lease("late_jobs", "a", timedelta(seconds=60))
        await alerts.release_lease("late_jobs", "b")
        assert not await alerts.take_lease("late_jobs", "b", LEASE_TTL)
        await alerts.release_lease("late_jobs", "a")
        assert await alerts.take_lease("late_jobs", "b", LEASE_TTL)

    async def test_leases_of_other_names_are_separate(self, alerts: AlertStore) -> None:
        assert await alerts.take_lease("late_jobs", "a", LEASE_TTL)
        assert await alerts.take_lease("other", "b", LEASE_TTL)

    # -- states ---------------------------------------------------------------------------------

    async def test_watch_keeps_the_instant_a_job_was_first_watched(
        self, alerts: AlertStore
    ) -> None:
        first = await alerts.watch(["job"], TICK)
        again = await alerts.watch(["job", "other"], tick(60))

        assert first["job"].watched_since == TICK and not first["job"].late
        assert again["job"].watched_since == TICK
        assert again["other"].watched_since == tick(60)

    async def test_rewatch_moves_the_instant_a_job_is_watched_from(
        self, alerts: AlertStore
    ) -> None:
        await alerts.watch(["job"], TICK)
        await alerts.rewatch(["job", "new"], tick(60))

        states = await alerts.watch(["job", "new"], tick(99))
        assert states["job"].watched_since == tick(60)
        assert states["new"].watched_since == tick(60)

    async def test_a_job_turns_late_once_with_one_event(
        self, alerts: AlertStore, written: Written
    ) -> None:
        await alerts.watch(["job"], TICK)

        assert await alerts.mark_late("job", LATENESS, at=tick(75), event=late_event())
        assert not await alerts.mark_late(
            "job", Lateness(tick(80), tick(20), "again"), at=tick(80), event=late_event()
        )

        late = await alerts.late()
        assert list(late) == ["job"]
        assert (late["job"].late_since, late["job"].late_tick) == (tick(70), tick(10))
        assert (late["job"].reason, late["job"].alerted_at) == ("no success", tick(75))
        assert await written() == [(LATE_ROUTING_KEY, LATE_ID)]

    async def test_a_job_never_watched_can_still_turn_late(self, alerts: AlertStore) -> None:
        assert await alerts.mark_late("job", LATENESS, at=tick(75), event=late_event())
        assert list(await alerts.late()) == ["job"]

    async def test_a_late_job_recovers_once_with_one_event(
        self, alerts: AlertStore, written: Written
    ) -> None:
        await alerts.watch(["job"], TICK)
        assert not await alerts.mark_recovered("job", at=tick(5), event=recovered_event())
        await alerts.mark_late("job", LATENESS, at=tick(75), event=late_event())

        assert await alerts.mark_recovered("job", at=tick(90), event=recovered_event())
        assert not await alerts.mark_recovered("job", at=tick(95), event=recovered_event())

        assert await alerts.late() == {}
        state = (await alerts.watch(["job"], tick(99)))["job"]
        assert (state.late_since, state.late_tick, state.recovered_at) == (None, None, tick(90))
        assert await written() == [
            (LATE_ROUTING_KEY, LATE_ID),
            (RECOVERED_ROUTING_KEY, RECOVERED_ID),
        ]

    async def test_a_recovered_job_can_turn_late_again(
        self, alerts: AlertStore, written: Written
    ) -> None:
        await alerts.mark_late("job", LATENESS, at=tick(75), event=late_event())
        await alerts.mark_recovered("job", at=tick(90), event=recovered_event())
        second = Lateness(tick(200), tick(100), "no success")
        other_id = "8f0c3f4e-1d7a-5b1e-9c55-6a1f0d2b7e03"

        assert await alerts.mark_late("job", second, at=tick(201), event=late_event(other_id))

        assert (await alerts.late())["job"].late_tick == tick(100)
        assert len(await written()) == 3

    async def test_forget_drops_a_late_job_with_its_alert_off_event(
        self, alerts: AlertStore, written: Written
    ) -> None:
        await alerts.watch(["job", "other", "calm"], TICK)
        await alerts.mark_late("job", LATENESS, at=tick(75), event=late_event())
        other_id = "8f0c3f4e-1d7a-5b1e-9c55-6a1f0d2b7e04"
        await alerts.mark_late("other", LATENESS, at=tick(75), event=late_event(other_id))
        given: list[str] = []

        def off(state: AlertState) -> AlertEvent:
            given.append(state.job)
            return AlertEvent(ALERT_OFF_ROUTING_KEY, {"job": state.job}, OFF_ID)

        dropped = await alerts.forget(["job", "calm", "never_watched"], event=off)

        assert [(s.job, s.late_since, s.late_tick) for s in dropped] == [
            ("job", tick(70), tick(10))
        ]
        assert given == ["job"]  # one event, for the one that was late
        assert list(await alerts.late()) == ["other"]
        assert await written() == [
            (LATE_ROUTING_KEY, LATE_ID),
            (LATE_ROUTING_KEY, other_id),
            (ALERT_OFF_ROUTING_KEY, OFF_ID),
        ]
        assert await alerts.forget(["job"], event=off) == []  # nothing left to drop
        assert len(await written()) == 3

    async def test_a_forgotten_job_is_watched_afresh(self, alerts: AlertStore) -> None:
        await alerts.watch(["job"], TICK)
        await alerts.mark_late("job", LATENESS, at=tick(75), event=late_event())
        await alerts.forget(["job"], event=lambda state: recovered_event())

        state = (await alerts.watch(["job"], tick(200)))["job"]
        assert (state.watched_since, state.late) == (tick(200), False)

    # -- facts ----------------------------------------------------------------------------------

    async def test_facts_of_a_job_without_history(self, alerts: AlertStore) -> None:
        assert await alerts.facts({"job": None}) == {"job": JobFacts(None, None)}
        assert await alerts.facts({"job": TICK}) == {"job": JobFacts(None, False)}

    async def test_the_latest_success_is_the_latest_succeeded_tick(
        self, alerts: AlertStore, runs: RunStore
    ) -> None:
        await run_of(runs, 0, RunStatus.SUCCEEDED)
        await run_of(runs, 10, RunStatus.SUCCEEDED)
        await run_of(runs, 20, RunStatus.FAILED)
        await run_of(runs, 20, RunStatus.FAILED, attempt=2)

        facts = await alerts.facts({"job": None})
        assert facts["job"].last_success_tick == tick(10)

        await run_of(runs, 20, RunStatus.SUCCEEDED, attempt=3)  # a retry that succeeds
        assert (await alerts.facts({"job": None}))["job"].last_success_tick == tick(20)

    async def test_a_tick_started_when_a_run_of_it_began_or_it_was_skipped(
        self, alerts: AlertStore, runs: RunStore
    ) -> None:
        await run_of(runs, 0, RunStatus.FAILED)
        await run_of(runs, 10, RunStatus.RUNNING)
        await run_of(runs, 20, RunStatus.SKIPPED, start=False)
        await run_of(runs, 30, RunStatus.MISSED, start=False)
        await run_of(runs, 40, RunStatus.PENDING, start=False)

        started = {
            at: (await alerts.facts({"job": tick(at)}))["job"].tick_started
            for at in (0, 10, 20, 30, 40, 50)
        }
        assert started == {0: True, 10: True, 20: True, 30: False, 40: False, 50: False}
