"""What a page or a report shows of a job's runtime settings: its effective values with their
sources, and its audit entries in words. For the status page (`pkg/health`) and the CLI alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from financial.pkg.scheduler.job_settings import (
    DEFAULT_AUDIT_LIMIT,
    JobSettingsStore,
    RuntimeSettings,
    SettingsChange,
)
from financial.pkg.scheduler.registry import EffectiveSetting, JobRegistry

FIELDS = ("schedule", "timeout_s", "enabled", "calendar", "alert_after_s")
# How a summary names a field, where not by its own name: the threshold as the option is named
# (`alert_after`), its value in seconds or `off`.
LABELS = {"timeout_s": "timeout", "alert_after_s": "alert_after"}
"""How the text names a field: as the flag of `jobs set` does, the unit in the value."""


@dataclass(frozen=True, slots=True)
class SettingsView:
    """A job's effective settings (field, value, source) and its latest changes, newest first."""

    effective: list[EffectiveSetting]
    audit: list[SettingsChange]


async def settings_view(
    registry: JobRegistry, store: JobSettingsStore, job: str, limit: int = DEFAULT_AUDIT_LIMIT
) -> SettingsView:
    """The view of `job`: the registry's spec as this worker runs it (the watcher keeps it in
    step with the database) and the audit read from `store`. UnknownJobError for a job the
    registry does not hold."""
    effective = registry.sources(job)
    return SettingsView(effective=effective, audit=await store.audit(job, limit))


def _value(field: str, value: object) -> str:
    if value is None:
        return "unset"
    if field == "enabled":
        return "true" if value else "false"
    if field == "timeout_s":
        return f"{value:g}s"
    if field == "alert_after_s":
        return f"{value:g}s" if value else "off"
    return repr(value)


def _label(field: str) -> str:
    return LABELS.get(field, field)


def describe(settings: RuntimeSettings) -> str:
    """`schedule='*/5 * * * *', enabled=false`: the fields that are set."""
    values = settings.as_dict()
    shown = [f"{_label(f)}={_value(f, values[f])}" for f in FIELDS if values[f] is not None]
    return ", ".join(shown) or "nothing set"


def describe_change(change: SettingsChange) -> str:
    """`timeout: unset -> 30s; enabled: true -> false`: the fields the change moved
    (`alert_after: unset -> 3600s`, `alert_after: 3600s -> off`)."""
    old, new = change.old.as_dict(), change.new.as_dict()
    moved = [
        f"{_label(f)}: {_value(f, old[f])} -> {_value(f, new[f])}"
        for f in FIELDS
        if old[f] != new[f]
    ]
    return "; ".join(moved) or "no change"


def change_dict(change: SettingsChange) -> dict[str, Any]:
    """One audit entry as JSON (`jobs audit --json`)."""
    return {
        "job": change.job,
        "at": change.at.isoformat(),
        "by": change.by,
        "action": change.action.value,
        "old": change.old.as_dict(),
        "new": change.new.as_dict(),
        "reason": change.reason,
    }
