"""The in-memory job settings store: unit tests and a worker without a shared database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from financial.pkg.scheduler.job_settings import (
    DEFAULT_AUDIT_LIMIT,
    NOT_SET,
    Check,
    JobSettingsStore,
    RuntimeSettings,
    SettingsAction,
    SettingsChange,
    require_changes,
)


class MemoryJobSettings(JobSettingsStore):
    """Settings in a dict; `now` stamps the audit (a fake clock's in tests). `on_change` is
    called with the job's name after each change, as PostgreSQL's notification would be."""

    def __init__(
        self, now: Callable[[], datetime], on_change: Callable[[str], None] | None = None
    ) -> None:
        self._now = now
        self._settings: dict[str, RuntimeSettings] = {}
        self._audit: list[SettingsChange] = []
        self.on_change = on_change

    async def get(self, job: str) -> RuntimeSettings:
        return self._settings.get(job, NOT_SET)

    async def all(self) -> dict[str, RuntimeSettings]:
        return dict(self._settings)

    async def set(
        self,
        job: str,
        changes: RuntimeSettings,
        *,
        by: str,
        reason: str | None,
        check: Check | None = None,
    ) -> SettingsChange:
        require_changes(job, changes)
        old = self._settings.get(job, NOT_SET)
        new = old.merged(changes)
        if check is not None:
            check(new)
        self._settings[job] = new
        return self._record(job, SettingsAction.SET, old, new, by, reason)

    async def reset(self, job: str, *, by: str, reason: str | None) -> SettingsChange | None:
        old = self._settings.pop(job, None)
        if old is None:
            return None
        return self._record(job, SettingsAction.RESET, old, NOT_SET, by, reason)

    async def audit(self, job: str, limit: int = DEFAULT_AUDIT_LIMIT) -> list[SettingsChange]:
        return [c for c in reversed(self._audit) if c.job == job][:limit]

    def _record(
        self,
        job: str,
        action: SettingsAction,
        old: RuntimeSettings,
        new: RuntimeSettings,
        by: str,
        reason: str | None,
    ) -> SettingsChange:
        change = SettingsChange(job, self._now(), by, action, old, new, reason)
        self._audit.append(change)
        if self.on_change is not None:
            self.on_change(job)
        return change
