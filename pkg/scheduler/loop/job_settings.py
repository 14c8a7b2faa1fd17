"""Runtime settings applied by a running worker: read from the store, laid over the registry,
handed to the scheduler.

`JobSettingsApplier.refresh` reads the settings (all jobs, or one) and applies those that differ
from what each job runs with. A stored value this replica cannot apply (a calendar its holiday
data lacks, a job it does not have) is logged once and the job keeps running as it was: a bad
row never stops a worker.

`JobSettingsWatcher` applies each job notified on the store's channel `CHANNEL` (the CLI
notifies in the transaction of each change; the worker's one LISTEN connection,
`pkg/database/notifications.py`, hands the job's name to `notified`), re-reads everything each
time that connection listens again (`caught_up`) and every `reread`, so a lost notification, or
a change made while this replica was down or cut off, still converges. A read that fails is
tried again with back-off; an outage is logged once when it starts (`job_settings_unavailable`)
and once when it ends (`job_settings_resumed`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import structlog

from financial.pkg.jobs.model import JobDefinitionError
from financial.pkg.observability.masking import mask_secrets
from financial.pkg.scheduler.clock import Clock
from financial.pkg.scheduler.job_settings import NOT_SET, JobSettingsStore, RuntimeSettings
from financial.pkg.scheduler.registry import JobRegistry, JobSpec

log = structlog.get_logger("financial.job_settings")

DEFAULT_REREAD = timedelta(seconds=30)
RETRY_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0)
# A read that takes longer than this is treated as a failed one.
CALL_TIMEOUT_S = 10.0


class JobSettingsApplier:
    """Lays the stored runtime settings over the registry and hands changed specs to `apply`
    (the scheduler's `apply`)."""

    def __init__(
        self,
        registry: JobRegistry,
        store: JobSettingsStore,
        apply: Callable[[JobSpec], object] | None = None,
    ) -> None:
        self._registry = registry
        self._store = store
        self._apply = apply
        self._refused: dict[str, RuntimeSettings] = {}

    def attach(self, apply: Callable[[JobSpec], object]) -> None:
        """Hand each changed spec to `apply` from now on (the scheduler, once it is built)."""
        self._apply = apply

    async def refresh(self, job: str | None = None) -> list[str]:
        """Apply the stored settings of `job` (default: every job); the jobs that changed."""
        if job is None:
            stored = await self._store.all()
            names = [spec.name for spec in self._registry]
        else:
            stored = {job: await self._store.get(job)}
            names = [job] if job in self._registry else []
        for name in sorted(set(stored) - {spec.name for spec in self._registry}):
            if self._refused.get(name) != stored[name]:
                self._refused[name] = stored[name]
                log.warning("job_settings_unknown_job", job=name)
        return [name for name in names if self._one(name, stored.get(name, NOT_SET))]

    def _one(self, name: str, runtime: RuntimeSettings) -> bool:
        if runtime == self._registry.runtime(name):
            self._refused.pop(name, None)
            return False
        try:
            spec = self._registry.respec(name, runtime)
        except JobDefinitionError as exc:
            if self._refused.get(name) != runtime:
                self._refused[name] = runtime
                log.error("job_settings_invalid", job=name, error=str(exc))
            return False
        self._refused.pop(name, None)
        log.info("job_settings_applied", job=name, **_fields(runtime))
        if self._apply is not None:
            try:
                self._apply(spec)
            except Exception as exc:  # a schedule with no next tick, say: the job, not the watch
                log.error(
                    "job_settings_apply_failed", job=name, error=f"{type(exc).__name__}: {exc}"
                )
        return True


async def runtime_spec(registry: JobRegistry, name: str, store: JobSettingsStore) -> JobSpec:
    """The job `name` with its stored runtime settings laid over it (`financial jobs run`); its
    env and code values, with `job_settings_invalid` logged, when they cannot be applied."""
    await JobSettingsApplier(registry, store).refresh(name)
    return registry.get(name)


def _fields(runtime: RuntimeSettings) -> dict[str, object]:
    return {f"runtime_{key}": value for key, value in runtime.as_dict().items()}


class JobSettingsWatcher:
    """Keeps the applier's view current: each job notified at once, everything every `reread`
    and each time the notification hub listens again (`caught_up`)."""

    def __init__(
        self,
        applier: JobSettingsApplier,
        clock: Clock,
        *,
        reread: timedelta = DEFAULT_REREAD,
    ) -> None:
        self._applier = applier
        self._clock = clock
        self._reread = reread
        self._heard: set[str] = set()
        self._everything = False
        self._poke = asyncio.Event()
        self._stop = asyncio.Event()
        self._down = False

    def notified(self, job: str) -> None:
        """A change of `job` was committed (a notification on `CHANNEL`)."""
        self._heard.add(job)
        self._poke.set()

    def caught_up(self) -> None:
        """Re-read everything now: the LISTEN connection is (again) up, and what changed
        while it was not was heard by nobody."""
        self._everything = True
        self._poke.set()

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()

    async def run(self) -> None:
        """Apply what is notified, and everything at each re-read, until `stop()`; never
        raises for a lost database: a failed read is logged once and tried again with
        back-off."""
        deadline = self._clock.now() + self._reread
        failures = 0
        while not self._stop.is_set():
            self._poke.clear()
            if not (self._heard or self._everything):
                await self._clock.sleep_until(deadline, self._poke)
            if self._stop.is_set():
                return
            everything = self._everything or self._clock.now() >= deadline
            jobs, self._heard, self._everything = self._heard, set(), False
            try:
                if everything:
                    deadline = self._clock.now() + self._reread
                    await self._pass(None)
                else:
                    for job in sorted(jobs):
                        await self._pass(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay_s = RETRY_BACKOFF_S[min(failures, len(RETRY_BACKOFF_S) - 1)]
                delay_s = min(delay_s, self._reread.total_seconds())
                failures += 1
                self._went_down(exc, delay_s)
                # Everything is read again then: what failed here included.
                deadline = self._clock.now() + timedelta(seconds=delay_s)
                continue
            failures = 0
            self._up()

    async def _pass(self, job: str | None) -> None:
        await asyncio.wait_for(self._applier.refresh(job), CALL_TIMEOUT_S)

    def _up(self) -> None:
        if self._down:
            self._down = False
            log.info("job_settings_resumed")

    def _went_down(self, exc: Exception, delay_s: float) -> None:
        if not self._down:
            self._down = True
            log.warning(
                "job_settings_unavailable",
                error=mask_secrets(f"{type(exc).__name__}: {exc}"),
                retry_in_s=delay_s,
                hint="runtime settings are re-read once the database answers",
            )
