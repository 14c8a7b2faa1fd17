"""The late-job checker on a fake clock: late after `alert_after`, late by the start deadline,
recovered, once only, one replica at a time, off by default, through a store outage."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from structlog.testing import capture_logs

from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.scheduler.alerts import (
    LATE_ROUTING_KEY,
    RECOVERED_ROUTING_KEY,
)
from tests.unit.late_checking import Cluster, named, spec_of, tick
from tests.unit.scheduling import T0

S = RunStatus
SECOND = timedelta(seconds=1)


async def test_a_job_with_no_success_is_late_alert_after_its_first_tick() -> None:
    cluster = Cluster.new()
    checker = cluster.checker(spec_of(alert_after=90))
    await checker.check()  # watched from T0: the first tick that counts is T0 + 1 min
    for minute in (1, 2):
        await cluster.ran(tick(minute), S.FAILED)

    await cluster.at(tick(2.5) - SECOND)
    await checker.check()
    assert checker.late_jobs() == {}

    with capture_logs() as logs:
        await cluster.at(tick(2.5))
        await checker.check()

    assert checker.late_jobs() == {"minutely": tick(2.5)}
    [line] = named(logs, "job_late")
    assert line["late_tick"] == tick(1).isoformat()
    assert "no success" in str(line["reason"])
    [event] = cluster.events(LATE_ROUTING_KEY)
    assert event.payload["late_since"] == tick(2.5).isoformat()
    assert event.payload["alert_after_seconds"] == 90


async def test_lateness_counts_from_the_tick_after_the_last_success() -> None:
    cluster = Cluster.new()
    checker = cluster.checker(spec_of(alert_after=90))
    await checker.check()
    await cluster.ran(tick(1), S.SUCCEEDED)
    await cluster.ran(tick(2), S.FAILED)
    await cluster.ran(tick(3), S.FAILED)

    await cluster.at(tick(3.5) - SECOND)
    await checker.check()
    assert checker.late_jobs() == {}
    await cluster.at(tick(3.5))
    await checker.check()
    assert checker.late_jobs() == {"minutely": tick(3.5)}


async def test_a_job_that_keeps_succeeding_is_never_late() -> None:
    cluster = Cluster.new()
    checker = cluster.checker(spec_of(alert_after=90))
    for minute in range(1, 30):
        await cluster.at(tick(minute) + 2 * SECOND)
        await cluster.ran(tick(minute), S.SUCCEEDED)
        await checker.check()
    assert checker.late_jobs() == {} and cluster.events() == []


async def test_a_tick_that_did_not_start_by_its_deadline_makes_the_job_late() -> None:
    cluster = Cluster.new()
    # alert_after is long: the start deadline (50 s) is what speaks first.
    checker = cluster.checker(spec_of(alert_after=3600, start_deadline=50))
    await checker.check()
    await cluster.ran(tick(1), S.SUCCEEDED)

    await cluster.at(tick(2) + 50 * SECOND)  # tick 2's deadline, within the grace
    await checker.check()
    assert checker.late_jobs() == {}

    with capture_logs() as logs:
        await cluster.at(tick(2) + 52 * SECOND)
        await checker.check()

    assert checker.late_jobs() == {"minutely": tick(2) + 50 * SECOND}
    [line] = named(logs, "job_late")
    assert line["late_tick"] == tick(2).isoformat()
    assert "did not start" in str(line["reason"])


async def test_a_tick_recorded_missed_did_not_start_but_a_skipped_one_did() -> None:
    cluster = Cluster.new()
    checker = cluster.checker(spec_of(alert_after=3600, start_deadline=50))
    await checker.check()
    skipped = await cluster.runs.claim(
        "minutely", tick(1), attempt=1, trigger=Trigger.SCHEDULE, worker_id="w"
    )
    assert skipped is not None
    await cluster.runs.finish(skipped.run_id, S.SKIPPED, fence=skipped.fence)
    await cluster.at(tick(1) + 55 * SECOND)
    await checker.check()
    assert checker.late_jobs() == {}

    missed = await cluster.runs.claim(
        "minutely", tick(2), attempt=1, trigger=Trigger.SCHEDULE, worker_id="w"
    )
    assert missed is not None
    await cluster.runs.finish(missed.run_id, S.MISSED, fence=missed.fence)
    await cluster.at(tick(2) + 55 * SECOND)
    await checker.check()
    assert checker.late_jobs() == {"minutely": tick(2) + 50 * SECOND}


async def test_a_late_job_alerts_once_however_many_passes() -> None:
    cluster = Cluster.new()
    checker = cluster.checker(spec_of(alert_after=90))
    await checker.check()
    with capture_logs() as logs:
        for minute in range(2, 20):
            await cluster.at(tick(minute))
            await cluster.ran(tick(minute - 1), S.FAILED)
            await checker.check()

    assert len(named(logs, "job_late")) == 1
    assert len(cluster.events(LATE_ROUTING_KEY)) == 1
    assert checker.late_flags() == {"minutely": 1}


async def test_a_late_job_recovers_once_when_it_succeeds_again() -> None:
    cluster = Cluster.new()
    checker = cluster.checker(spec_of(alert_after=90))
    await checker.check()
    await cluster.at(tick(3))
    await checker.check()
    assert "minutely" in checker.late_jobs()

    await cluster.ran(tick(3), S.SUCCEEDED)
    with capture_logs() as logs:
        await cluster.at(tick(3) + 5 * SECOND)
        await checker.check()
        await cluster.at(tick(3) + 10 * SECOND)
        await checker.check()

    assert checker.late_jobs() == {}
    assert checker.late_flags() == {"minutely": 0}
    [line] = named(logs, "job_recovered")
    assert line["last_success_tick"] == tick(3).isoformat()
    assert named(logs, "job_late") == []
    [event] = cluster.events(RECOVERED_ROUTING_KEY)
    assert event.payload["late_since"] == tick(2.5).isoformat()


async def test_a_success_of_an_older_tick_does_not_recover_it() -> None:
    cluster = Cluster.new()
    checker = cluster.checker(spec_of(alert_after=90))
    await checker.check()
    await cluster.ran(tick(1), S.SUCCEEDED)
    await cluster.at(tick(4))
    await checker.check()
    [late] = checker.late_details().values()
    assert late.late_tick == tick(2)

    await cluster.ran(tick(1), S.SUCCEEDED, attempt=2)  # a re-run of an older tick
    await checker.check()
    assert "minutely" in checker.late_jobs()


async def test_alerts_are_off_by_default() -> None:
    cluster = Cluster.new()
    checker = cluster.checker(spec_of(alert_after=None))
    await checker.check()
    for minute in range(1, 120):
        await cluster.at(tick(minute))
        await checker.check()

    assert checker.watched == []
    assert checker.late_jobs() == {} and cluster.events() == []
    assert not checker.holding
    assert await cluster.alerts.take_lease("late_jobs", "another", timedelta(seconds=15))


async def test_a_paused_job_is_not_judged() -> None:
    cluster = Cluster.new()
    checker = cluster.checker(spec_of(alert_after=90))
    await cluster.runs.pause("minutely", "maintenance")
    await cluster.at(tick(10))
    await checker.check()
    assert checker.late_jobs() == {}

    await cluster.runs.resume("minutely")
    await checker.check()  # watched from now on: not late at once
    assert checker.late_jobs() == {}


async def test_a_paused_job_is_judged_from_when_it_is_resumed() -> None:
    cluster = Cluster.new()
    checker = cluster.checker(spec_of(alert_after=90))
    await checker.check()
    await cluster.ran(tick(1), S.SUCCEEDED)
    await cluster.runs.pause("minutely")
    await cluster.at(tick(30))  # ticks skipped for the pause all along
    await checker.check()
    await cluster.runs.resume("minutely")
    await cluster.at(tick(30) + 5 * SECOND)

    await checker.check()
    assert checker.late_jobs() == {}
    await cluster.at(tick(32.5))  # no run since: late as if watched from the resume
    await checker.check()
    assert checker.late_jobs() == {"minutely": tick(31) + 50 * SECOND}


async def test_history_from_before_the_job_was_watched_does_not_count() -> None:
    cluster = Cluster.new()
    await cluster.ran(tick(1), S.SUCCEEDED)  # then years of failures, before alerts were on
    await cluster.at(tick(100))
    checker = cluster.checker(spec_of(alert_after=90))

    await checker.check()
    assert checker.late_jobs() == {}
    for minute in (101, 102):
        await cluster.ran(tick(minute), S.FAILED)
    await cluster.at(tick(102.5))
    await checker.check()
    assert checker.late_jobs() == {"minutely": tick(102.5)}


async def test_a_disabled_job_is_not_watched_until_it_is_enabled_again() -> None:
    cluster = Cluster.new()
    spec = spec_of(alert_after=90)
    checker = cluster.checker(replace(spec, options=replace(spec.options, enabled=False)))
    await checker.check()
    await cluster.at(tick(60))
    await checker.check()
    assert checker.watched == [] and checker.late_jobs() == {}

    checker.update([spec])
    await checker.check()
    assert checker.late_jobs() == {}
    await cluster.at(tick(62.5))
    await checker.check()
    assert checker.late_jobs() == {"minutely": tick(61) + 50 * SECOND}


async def test_one_replica_judges_every_replica_reports() -> None:
    cluster = Cluster.new()
    spec = spec_of(alert_after=90)
    first, second = cluster.checker(spec, "w1"), cluster.checker(spec, "w2")
    await first.check()
    await second.check()
    assert (first.holding, second.holding) == (True, False)

    with capture_logs() as logs:
        await cluster.at(tick(2.5) + 10 * SECOND)  # the holder renews within its 15 s
        await first.check()
        await second.check()
        await cluster.at(tick(2.5) + 20 * SECOND)
        await second.check()
        await first.check()

    assert not second.holding
    assert len(named(logs, "job_late")) == 1
    # No run of tick 1 at all: late from its start deadline, before alert_after speaks.
    assert first.late_jobs() == second.late_jobs() == {"minutely": tick(1) + 50 * SECOND}
    assert second.late_flags() == {"minutely": 1}


async def test_another_replica_takes_over_when_the_holder_stops() -> None:
    cluster = Cluster.new()
    spec = spec_of(alert_after=90)
    first, second = cluster.checker(spec, "w1"), cluster.checker(spec, "w2")
    await first.check()
    await second.check()
    await first.close()  # lets the lease go

    await cluster.at(tick(3))
    await second.check()
    assert second.holding
    assert second.late_jobs() == {"minutely": tick(2.5)}


async def test_a_dead_holders_lease_is_taken_over_once_it_expires() -> None:
    cluster = Cluster.new()
    spec = spec_of(alert_after=90)
    first, second = cluster.checker(spec, "w1"), cluster.checker(spec, "w2")
    await first.check()  # then dies without a word: its lease lasts 15 s
    await cluster.at(T0 + 14 * SECOND)
    await second.check()
    assert not second.holding
    await cluster.at(T0 + 16 * SECOND)
    await second.check()
    assert second.holding


async def test_the_checker_runs_every_interval_until_closed() -> None:
    cluster = Cluster.new()
    checker = cluster.checker(spec_of(alert_after=90))
    task = checker.start()
    await cluster.clock.settle()
    # No run of tick 1: late at its start deadline (50 s), seen by the pass at 55 s (the
    # pass at 50 s is within the grace).
    await cluster.clock.set(tick(1) + 54 * SECOND)
    assert checker.late_jobs() == {}
    await cluster.clock.advance(timedelta(seconds=1))
    assert checker.late_jobs() == {"minutely": tick(1) + 50 * SECOND}

    await checker.close()
    assert task.done()
    assert await cluster.alerts.take_lease("late_jobs", "w2", timedelta(seconds=15))


async def test_closing_a_checker_that_never_started_does_nothing() -> None:
    cluster = Cluster.new()
    checker = cluster.checker(spec_of(alert_after=90))
    await asyncio.wait_for(checker.close(), 1)
    assert not checker.holding
