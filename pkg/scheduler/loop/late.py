"""The late-job checker: dead-man alerts, computed by one replica at a time.

Every `interval`, each replica tries to take (or renew) the `late_jobs` lease in the alert
store. The holder judges every watched job (`alert_after` set, enabled, not paused) by the rules
of `financial.pkg.scheduler.alerts.rules` and records each change of state with its outbox event
(`job.late`, `job.recovered`) in one transaction, conditioned on the state it changes, so an
alert is raised once across replicas and restarts; the replica whose change went through logs
`job_late` or `job_recovered`. Then every replica, holder or not, reads which jobs are late: its
`late_jobs()` and the `financial_worker_job_late` gauge of every replica say the same thing (one
pass behind the holder at most), so a dashboard or an alert rule may read any replica.

A job's threshold may change while the worker runs (`financial jobs set --alert-after`: the
worker calls `update` with the new specs): from the next pass on it is judged by the new
threshold (a late job stays late until it succeeds, whatever its threshold became). A job whose
alert is turned on is watched from the next pass on: its history from before does not count. A
late job whose alert is turned off (0, or no layer sets it) is no longer late: the holder drops
its alert state, writes a `job.alert_off` event (not `job.recovered`: it did not succeed again)
and logs `job_late_cleared`; it is judged afresh if its alert is turned on again.

A failing store (PostgreSQL down) is logged once (`late_check_failed`) and tried again on the
next pass (`late_check_resumed` once it answers); the checker never stops for it, and keeps the
last state it read.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

import structlog

from financial.pkg.observability.masking import mask_secrets
from financial.pkg.scheduler.alerts import (
    ALERT_OFF_ROUTING_KEY,
    CHECKER_LEASE,
    LATE_ROUTING_KEY,
    RECOVERED_ROUTING_KEY,
    AlertEvent,
    AlertState,
    AlertStore,
    Lateness,
)
from financial.pkg.scheduler.alerts.rules import DeadlineTick, assess, deadline_tick, recovered
from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.registry import JobSpec
from financial.pkg.scheduler.store import RunStore

log = structlog.get_logger("financial.alerts")

DEFAULT_INTERVAL = timedelta(seconds=5)
# At shutdown, how long the pass in progress and the lease's release may take (real seconds).
CLOSE_TIMEOUT_S = 5.0


class LateChecker:
    """Watches the jobs with `alert_after` set; see the module. Start `run()` as a task, and
    `close()` it before the database closes."""

    def __init__(
        self,
        specs: Iterable[JobSpec],
        *,
        alerts: AlertStore,
        runs: RunStore,
        clock: Clock,
        worker_id: str,
        interval: timedelta = DEFAULT_INTERVAL,
        lease_ttl: timedelta | None = None,
    ) -> None:
        self._deadline_ticks: dict[str, DeadlineTick] = {}
        self._specs: dict[str, JobSpec] = {}
        self._watched: dict[str, JobSpec] = {}
        self._disabled: list[str] = []
        self._off: set[str] = set()
        self._turned_on: set[str] = set()
        self._late: dict[str, AlertState] = {}
        self.update(specs)
        self._turned_on.clear()  # at start every job is as it was: nothing was turned on
        self._alerts = alerts
        self._runs = runs
        self._clock = clock
        self._worker_id = worker_id
        self._interval = interval
        self._lease_ttl = lease_ttl or max(3 * interval, timedelta(seconds=3))
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._holding = False
        self._failing = False

    # -- what others read -----------------------------------------------------------------------

    @property
    def watched(self) -> list[str]:
        """The jobs this checker judges, by name."""
        return sorted(self._watched)

    @property
    def holding(self) -> bool:
        """Whether this replica held the lease at its last pass."""
        return self._holding

    def late_jobs(self) -> Mapping[str, datetime]:
        """The jobs that are late, with the instant each became late (as of the last pass)."""
        return {job: state.late_since for job, state in self._late.items() if state.late_since}

    def late_details(self) -> Mapping[str, AlertState]:
        """The late jobs' full alert state: since, the tick, the reason, when alerted."""
        return dict(self._late)

    def late_flags(self) -> Mapping[str, int]:
        """1 for each late job, 0 for each watched one that is not (the gauge's values)."""
        flags = dict.fromkeys(self._watched, 0)
        flags.update(dict.fromkeys(self._late, 1))
        return flags

    def update(self, specs: Iterable[JobSpec]) -> None:
        """Judge these specs from the next pass on (a job's settings changed at run time)."""
        had_alert = set(self._watched) | set(self._disabled)
        self._specs = {spec.name: spec for spec in specs}
        self._watched = {
            name: spec
            for name, spec in self._specs.items()
            if spec.alert_after is not None and spec.options.enabled
        }
        # Disabled jobs with an alert: watched from when they are enabled again.
        self._disabled = sorted(
            name
            for name, spec in self._specs.items()
            if spec.alert_after is not None and not spec.options.enabled
        )
        # Jobs without an alert: a late one is no longer late (see the module).
        self._off = {name for name, spec in self._specs.items() if spec.alert_after is None}
        has_alert = set(self._watched) | set(self._disabled)
        self._turned_on = (self._turned_on | (has_alert - had_alert)) - self._off
        self._deadline_ticks.clear()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name="late-checker")
        return self._task

    async def run(self) -> None:
        """A pass every `interval` until `stop()`."""
        while not self._stopping.is_set():
            await self.check()
            deadline = self._clock.now() + self._interval
            await self._clock.sleep_until(deadline, wake=self._stopping)

    def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        """Stop, wait for the pass in progress, and let the lease go so another replica takes
        over at once rather than after the lease's time."""
        self.stop()
        if self._task is not None:
            # A pass stuck on a database that does not answer must not hold the exit.
            done, _ = await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT_S)
            if not done:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._holding:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self._alerts.release_lease(CHECKER_LEASE, self._worker_id)
            except Exception as exc:
                log.debug("late_checker_release_failed", error=_describe(exc))
            self._holding = False

    # -- one pass -------------------------------------------------------------------------------

    async def check(self) -> None:
        """One pass; a store failure is logged (once until it answers again), never raised."""
        try:
            await self._pass()
        except Exception as exc:
            if not self._failing:
                log.warning("late_check_failed", error=_describe(exc), retry_in_s=self._retry_s)
            self._failing = True
            return
        if self._failing:
            log.info("late_check_resumed")
            self._failing = False

    @property
    def _retry_s(self) -> float:
        return self._interval.total_seconds()

    async def _pass(self) -> None:
        # Taken now: an `update` while this pass awaits the store is for the next pass.
        turned_on = set(self._turned_on)
        if self._watched or self._disabled or self._silenced():
            holding = await self._alerts.take_lease(CHECKER_LEASE, self._worker_id, self._lease_ttl)
            if holding != self._holding:
                event = "late_checker_lease_taken" if holding else "late_checker_lease_lost"
                log.info(event, worker_id=self._worker_id)
            self._holding = holding
            if holding:
                await self._clear(self._silenced())
                await self._judge(turned_on)
        # The holder rewatched them; on another replica the holder's own update does it.
        self._turned_on -= turned_on
        self._late = await self._alerts.late()

    def _silenced(self) -> list[str]:
        """The jobs late at the last read whose alert is now off."""
        return sorted(self._off & set(self._late))

    async def _clear(self, jobs: list[str]) -> None:
        if not jobs:
            return
        now = self._clock.now()
        for state in await self._alerts.forget(jobs, event=lambda s: self._alert_off(s, now)):
            log.info(
                "job_late_cleared",
                job=state.job,
                late_since=state.late_since.isoformat() if state.late_since else None,
                reason="alert_after is off",
            )

    def _alert_off(self, state: AlertState, now: datetime) -> AlertEvent:
        """`job.alert_off`: the alert of a late job was turned off; it did not succeed again."""
        since = state.late_since or now
        return AlertEvent(
            ALERT_OFF_ROUTING_KEY,
            {
                "job": state.job,
                "late_since": since.isoformat(),
                "late_tick": state.late_tick.isoformat() if state.late_tick else None,
                "cleared_at": now.isoformat(),
                "reason": "alert_after is off",
                "detected_by": self._worker_id,
            },
            _message_id(ALERT_OFF_ROUTING_KEY, state.job, since),
        )

    async def _judge(self, turned_on: set[str]) -> None:
        now = self._clock.now()
        paused = await self._runs.paused()
        specs = {name: spec for name, spec in self._watched.items() if name not in paused}
        # Paused and disabled ones, and those whose alert was just turned on.
        resting = sorted((set(paused) & set(self._watched)) | set(self._disabled) | turned_on)
        if resting:  # judged from when they come back, not from before they rested
            await self._alerts.rewatch(resting, now)
        if not specs:
            return
        states = await self._alerts.watch(sorted(specs), now)
        ticks = {name: self._deadline_tick(spec, now) for name, spec in specs.items()}
        facts = await self._alerts.facts(ticks)
        for name, spec in specs.items():
            state, fact = states[name], facts[name]
            if state.late:
                if recovered(state.late_tick, fact.last_success_tick):
                    await self._recover(state, now, fact.last_success_tick)
                continue
            lateness = assess(
                spec,
                now=now,
                watched_since=state.watched_since,
                last_success_tick=fact.last_success_tick,
                checked_tick=ticks[name],
                checked_tick_started=fact.tick_started,
            )
            if lateness is not None:
                await self._turn_late(spec, lateness, now)

    def _deadline_tick(self, spec: JobSpec, now: datetime) -> datetime | None:
        cached = self._deadline_ticks.get(spec.name)
        if cached is None or now > cached.valid_until:
            cached = deadline_tick(spec, now)
            self._deadline_ticks[spec.name] = cached
        return cached.tick

    async def _turn_late(self, spec: JobSpec, lateness: Lateness, now: datetime) -> None:
        alert_after = spec.alert_after or timedelta(0)
        event = AlertEvent(
            LATE_ROUTING_KEY,
            {
                "job": spec.name,
                "late_since": lateness.since.isoformat(),
                "late_tick": lateness.tick.isoformat(),
                "reason": lateness.reason,
                "alert_after_seconds": alert_after.total_seconds(),
                "detected_by": self._worker_id,
            },
            _message_id(LATE_ROUTING_KEY, spec.name, lateness.since),
        )
        if await self._alerts.mark_late(spec.name, lateness, at=now, event=event):
            log.warning(
                "job_late",
                job=spec.name,
                late_since=lateness.since.isoformat(),
                late_tick=lateness.tick.isoformat(),
                reason=lateness.reason,
            )

    async def _recover(self, state: AlertState, now: datetime, success: datetime | None) -> None:
        since = state.late_since or now
        event = AlertEvent(
            RECOVERED_ROUTING_KEY,
            {
                "job": state.job,
                "late_since": since.isoformat(),
                "recovered_at": now.isoformat(),
                "last_success_tick": success.isoformat() if success else None,
                "detected_by": self._worker_id,
            },
            _message_id(RECOVERED_ROUTING_KEY, state.job, since),
        )
        if await self._alerts.mark_recovered(state.job, at=now, event=event):
            log.info(
                "job_recovered",
                job=state.job,
                late_since=since.isoformat(),
                late_for_s=round((now - since).total_seconds(), 3),
                last_success_tick=success.isoformat() if success else None,
            )


def _message_id(kind: str, job: str, since: datetime) -> str:
    """Stable per episode: a consumer drops a duplicate delivery by it."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"financial-worker/{kind}/{job}/{since.isoformat()}"))


def _describe(exc: BaseException) -> str:
    return mask_secrets(f"{type(exc).__name__}: {exc}")
