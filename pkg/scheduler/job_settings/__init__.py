"""Runtime settings per job, kept in PostgreSQL: the port, its values and its audit entries.

An operator changes a job's schedule, timeout, enabled flag, holiday calendar or dead-man alert
threshold with `financial jobs set` and every replica applies it without a restart. Each field is
"not set" (None) unless the operator set it; precedence is runtime setting > environment > code >
worker-wide default (`financial.pkg.scheduler.registry.JobRegistry.respec`). `alert_after_s` 0 is
a value, not "not set": the job's alert is off whatever the layers below say.

Two implementations share one contract suite (`tests/contract/job_settings_contract.py`):
`MemoryJobSettings` (`memory.py`: unit tests) and `PostgresJobSettings` (`postgres.py`). Both:

- `set` merges: the fields given replace the stored ones, the others stay as they were; its
  `check` sees the merged result under the job's lock and can refuse it (nothing stored);
- `reset` forgets every field of the job (None when nothing was set: no audit entry);
- every change appends one audit entry (who, when, old and new values, why), in the same
  transaction as the change, and `audit` lists them newest first;
- the PostgreSQL store notifies `CHANNEL` with the job's name in that same transaction, so a
  replica that LISTENs applies the change as soon as it commits.

The store stores what it is given: values are validated before, against the job as the worker
builds it (`JobRegistry.build`, with the checks of `validation.py`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

CHANNEL = "financial_job_settings"
DEFAULT_AUDIT_LIMIT = 50


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    """A job's runtime settings; None is "not set" (the environment's or the code's applies)."""

    schedule: str | None = None
    timeout_s: float | None = None
    enabled: bool | None = None
    calendar: str | None = None
    alert_after_s: float | None = None  # 0: the job's dead-man alert is off

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def merged(self, changes: RuntimeSettings) -> RuntimeSettings:
        """These settings with the fields `changes` sets replaced."""
        given = {f.name: getattr(changes, f.name) for f in fields(changes)}
        return replace(self, **{k: v for k, v in given.items() if v is not None})

    def as_dict(self) -> dict[str, Any]:
        """The fields by name, as the audit keeps them."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RuntimeSettings:
        """The settings an audit entry holds; a key it lacks (an entry written before that
        field existed, as `alert_after_s` before migration 0008) is not set."""
        return cls(
            schedule=values.get("schedule"),
            timeout_s=_seconds(values.get("timeout_s")),
            enabled=values.get("enabled"),
            calendar=values.get("calendar"),
            alert_after_s=_seconds(values.get("alert_after_s")),
        )


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


NOT_SET = RuntimeSettings()


class SettingsAction(StrEnum):
    SET = "set"
    RESET = "reset"


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """One audit entry: who changed which job's settings, when, from what to what, and why."""

    job: str
    at: datetime
    by: str
    action: SettingsAction
    old: RuntimeSettings
    new: RuntimeSettings
    reason: str | None


Check = Callable[[RuntimeSettings], None]


class JobSettingsStore(ABC):
    """Where runtime settings and their audit live (see the module's semantics)."""

    @abstractmethod
    async def get(self, job: str) -> RuntimeSettings:
        """The job's settings (`NOT_SET` when none)."""

    @abstractmethod
    async def all(self) -> dict[str, RuntimeSettings]:
        """Every job that has at least one setting."""

    @abstractmethod
    async def set(
        self,
        job: str,
        changes: RuntimeSettings,
        *,
        by: str,
        reason: str | None,
        check: Check | None = None,
    ) -> SettingsChange:
        """Merge `changes` into the job's settings and audit it; ValueError when it sets nothing.

        `check` is called with the merged settings before anything is written, with the job's
        row locked (so a concurrent `set` cannot slip between the check and the write): what it
        raises propagates and nothing is stored."""

    @abstractmethod
    async def reset(self, job: str, *, by: str, reason: str | None) -> SettingsChange | None:
        """Forget every setting of the job and audit it; None (no entry) when none was set."""

    @abstractmethod
    async def audit(self, job: str, limit: int = DEFAULT_AUDIT_LIMIT) -> list[SettingsChange]:
        """The job's changes, newest first, at most `limit`."""


def require_changes(job: str, changes: RuntimeSettings) -> None:
    if changes.empty:
        raise ValueError(
            f"job {job!r}: nothing to set; expected at least one of --schedule, --timeout, "
            "--enabled, --calendar, --alert-after"
        )


__all__ = [
    "CHANNEL",
    "DEFAULT_AUDIT_LIMIT",
    "NOT_SET",
    "Check",
    "JobSettingsStore",
    "RuntimeSettings",
    "SettingsAction",
    "SettingsChange",
    "require_changes",
]
