"""The late-job checker when a job's `alert_after` changes while the worker runs (`financial
jobs set --alert-after`, applied through `LateChecker.update`), on a fake clock: a tighter
threshold speaks at the next pass, 0 clears a late job with no `job.recovered`, and an alert
turned on judges the job from then on, not from its history before."""

from __future__ import annotations

from datetime import timedelta

from structlog.testing import capture_logs

from financial.pkg.jobs import JobContext, cron_job
from financial.pkg.jobs.model import RunStatus
from financial.pkg.scheduler.alerts import (
    ALERT_OFF_ROUTING_KEY,
    LATE_ROUTING_KEY,
    RECOVERED_ROUTING_KEY,
)
from financial.pkg.scheduler.job_settings import NOT_SET, RuntimeSettings
from financial.pkg.scheduler.loop.late import LateChecker
from financial.pkg.scheduler.registry import Defaults, JobRegistry
from tests.unit.late_checking import Cluster, named, tick

S = RunStatus
SECOND = timedelta(seconds=1)


async def body(ctx: JobContext) -> None:
    return None


def registry(alert_after: float | None, default: timedelta | None = None) -> JobRegistry:
    reg = JobRegistry(Defaults(alert_after=default))
    reg.add(
        cron_job("@every 1m", name="minutely", alert_after=alert_after, start_deadline=50)(body)
    )
    return reg


def checker_of(cluster: Cluster, reg: JobRegistry, worker_id: str = "w1") -> LateChecker:
    return LateChecker(
        list(reg),
        alerts=cluster.alerts,
        runs=cluster.runs,
        clock=cluster.clock,
        worker_id=worker_id,
        interval=timedelta(seconds=5),
    )


def set_alert_after(reg: JobRegistry, seconds: float | None, *checkers: LateChecker) -> None:
    """`jobs set minutely --alert-after SECONDS` (None: `jobs reset`) as the worker applies it."""
    reg.respec("minutely", NOT_SET if seconds is None else RuntimeSettings(alert_after_s=seconds))
    for checker in checkers:
        checker.update(reg)


async def failing_until(cluster: Cluster, checker: LateChecker, minutes: range) -> None:
    """Each minute: the previous tick failed, and a pass."""
    for minute in minutes:
        await cluster.at(tick(minute))
        await cluster.ran(tick(minute - 1), S.FAILED)
        await checker.check()


async def test_a_tighter_threshold_makes_a_failing_job_late_at_the_next_pass() -> None:
    cluster, reg = Cluster.new(), registry(alert_after=3600)
    checker = checker_of(cluster, reg)
    await checker.check()
    await failing_until(cluster, checker, range(2, 4))
    assert checker.late_jobs() == {}

    set_alert_after(reg, 90, checker)
    await cluster.at(tick(3) + 5 * SECOND)
    await checker.check()

    assert checker.late_jobs() == {"minutely": tick(2.5)}  # tick 1 + 90 s
    [event] = cluster.events(LATE_ROUTING_KEY)
    assert event.payload["alert_after_seconds"] == 90


async def test_0_clears_a_late_job_with_an_alert_off_event_and_keeps_it_quiet() -> None:
    cluster, reg = Cluster.new(), registry(alert_after=90)
    checker = checker_of(cluster, reg)
    await checker.check()
    await failing_until(cluster, checker, range(2, 4))
    assert "minutely" in checker.late_jobs()

    with capture_logs() as logs:
        set_alert_after(reg, 0, checker)
        await cluster.at(tick(3) + 5 * SECOND)
        await checker.check()
        await failing_until(cluster, checker, range(4, 20))  # still failing: no alert

    assert checker.late_jobs() == {} and await cluster.alerts.late() == {}
    assert checker.late_flags() == {}
    [cleared] = named(logs, "job_late_cleared")
    assert (cleared["job"], cleared["late_since"]) == ("minutely", tick(2.5).isoformat())
    assert named(logs, "job_recovered") == [] and named(logs, "job_late") == []
    assert [e.routing_key for e in cluster.events()] == [LATE_ROUTING_KEY, ALERT_OFF_ROUTING_KEY]
    [off] = cluster.events(ALERT_OFF_ROUTING_KEY)
    assert off.payload["job"] == "minutely"
    assert off.payload["late_since"] == tick(2.5).isoformat()
    assert off.payload["reason"] == "alert_after is off"
    assert cluster.events(RECOVERED_ROUTING_KEY) == []


async def test_only_the_lease_holder_clears_and_every_replica_then_reads_it() -> None:
    cluster, reg = Cluster.new(), registry(alert_after=90)
    holder, other = checker_of(cluster, reg, "w1"), checker_of(cluster, reg, "w2")
    await holder.check()
    await other.check()
    await failing_until(cluster, holder, range(2, 4))
    await other.check()
    assert "minutely" in other.late_jobs() and holder.holding and not other.holding

    set_alert_after(reg, 0, holder, other)
    with capture_logs() as logs:
        await other.check()  # not the holder: reads, clears nothing
        assert "minutely" in other.late_jobs()
        await holder.check()
        await other.check()

    assert holder.late_jobs() == {} and other.late_jobs() == {}
    assert len(named(logs, "job_late_cleared")) == 1
    assert len(cluster.events(ALERT_OFF_ROUTING_KEY)) == 1  # by the holder alone
    assert cluster.events(RECOVERED_ROUTING_KEY) == []


async def test_an_alert_turned_on_again_judges_from_then_not_from_before() -> None:
    cluster, reg = Cluster.new(), registry(alert_after=90)
    checker = checker_of(cluster, reg)
    await checker.check()
    await cluster.at(tick(1) + 2 * SECOND)
    await cluster.ran(tick(1), S.SUCCEEDED)
    await checker.check()

    set_alert_after(reg, 0, checker)  # off while not late: its state stays in the store
    await failing_until(cluster, checker, range(3, 6))  # ticks 2..4 fail unwatched
    await cluster.at(tick(5) + 10 * SECOND)
    set_alert_after(reg, 90, checker)
    await checker.check()
    assert checker.late_jobs() == {}  # ticks 2..4 failed before it was turned on

    await failing_until(cluster, checker, range(6, 8))
    await cluster.at(tick(7.5) - SECOND)
    await checker.check()
    assert checker.late_jobs() == {}
    await cluster.at(tick(7.5))
    await checker.check()
    assert checker.late_jobs() == {"minutely": tick(7.5)}  # tick 6 + 90 s


async def test_a_job_without_an_alert_is_watched_from_when_one_is_set() -> None:
    cluster, reg = Cluster.new(), registry(alert_after=None)
    checker = checker_of(cluster, reg)
    assert checker.watched == []
    await checker.check()
    await failing_until(cluster, checker, range(2, 6))

    set_alert_after(reg, 90, checker)
    assert checker.watched == ["minutely"]
    await cluster.at(tick(5) + 10 * SECOND)
    await checker.check()
    assert checker.late_jobs() == {}

    await failing_until(cluster, checker, range(6, 8))
    await cluster.at(tick(7.5))
    await checker.check()
    assert checker.late_jobs() == {"minutely": tick(7.5)}


async def test_a_reset_goes_back_to_the_worker_default() -> None:
    cluster, reg = Cluster.new(), registry(alert_after=None, default=timedelta(seconds=90))
    checker = checker_of(cluster, reg)
    set_alert_after(reg, 0, checker)
    assert checker.watched == []
    set_alert_after(reg, None, checker)
    assert checker.watched == ["minutely"]


async def test_a_late_job_stays_late_under_a_looser_threshold_until_it_succeeds() -> None:
    cluster, reg = Cluster.new(), registry(alert_after=90)
    checker = checker_of(cluster, reg)
    await checker.check()
    await failing_until(cluster, checker, range(2, 4))
    assert "minutely" in checker.late_jobs()

    set_alert_after(reg, 3600, checker)
    await cluster.at(tick(4))
    await checker.check()
    assert "minutely" in checker.late_jobs()

    with capture_logs() as logs:
        await cluster.ran(tick(4), S.SUCCEEDED)
        await cluster.at(tick(4) + 5 * SECOND)
        await checker.check()
    assert checker.late_jobs() == {}
    assert len(named(logs, "job_recovered")) == 1
    assert len(cluster.events(RECOVERED_ROUTING_KEY)) == 1
