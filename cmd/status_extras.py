"""What the status page shows beyond the registry and the run store: each job's effective
settings as this worker runs them (the runtime settings watcher keeps the registry current),
with their sources, and on a job's own page the audit of its runtime settings and its open run
requests (`jobs trigger`, `jobs backfill`).

Composition only: the registry and the settings store (`pkg/scheduler`) are turned into the
page's display rows (`pkg/health`), so neither package imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from financial.pkg.health.model import (
    AuditRow,
    JobExtras,
    JobExtrasSource,
    RequestRow,
    SettingRow,
    SettingSource,
)
from financial.pkg.observability.masking import mask_secrets
from financial.pkg.scheduler.job_settings import JobSettingsStore, SettingsChange
from financial.pkg.scheduler.job_settings.view import describe_change, settings_view
from financial.pkg.scheduler.registry import EffectiveSetting, JobRegistry
from financial.pkg.scheduler.store.requests import RequestStore, RunRequest, first_open

AUDIT_ROWS = 50
"""Changes on a job's page, newest first (`financial jobs audit` lists them all)."""
REQUEST_ROWS = 50
"""Open run requests on a job's page, in the order they run (the page counts the others)."""

_SOURCES: Mapping[str, SettingSource] = {
    "runtime": "runtime",
    "env": "env",
    "code": "code",
    "default": "default",
}


def setting_row(setting: EffectiveSetting) -> SettingRow:
    """`timeout 900s (runtime)`, `alert_after off (runtime)` as the page's row."""
    value = setting.value
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif setting.field in ("timeout", "alert_after") and isinstance(value, float | int) and value:
        text = f"{value:g}s"
    elif setting.field == "alert_after":
        text = "off"  # 0 at some layer, or no layer set it
    else:
        text = "none" if value is None else str(value)
    return SettingRow(setting.field, text, _SOURCES.get(setting.source, "code"))


def audit_row(change: SettingsChange) -> AuditRow:
    """One change as the page's row: the action and every field it moved in one summary."""
    return AuditRow(
        at=change.at,
        by=change.by,
        summary=f"{change.action.value}: {describe_change(change)}",
        reason=change.reason,
    )


def request_row(request: RunRequest) -> RequestRow:
    """One open request as the page's row."""
    return RequestRow(
        tick=request.tick,
        trigger=request.trigger.value,
        requested_by=request.requested_by,
        requested_at=request.requested_at,
        state=request.state.value,
    )


async def open_request_rows(
    requests: RequestStore, job: str, limit: int = REQUEST_ROWS
) -> tuple[tuple[RequestRow, ...], int, str | None]:
    """The first `limit` open requests of `job`, how many are open, and None; or no rows, 0 and
    why they could not be read (the rest of the page still shows)."""
    try:
        found, total = await first_open(requests, job, limit)
    except Exception as exc:
        return (), 0, mask_secrets(f"{type(exc).__name__}: {exc}")
    return tuple(request_row(r) for r in found), total, None


def status_extras(
    registry: JobRegistry, store: JobSettingsStore, requests: RequestStore | None = None
) -> JobExtrasSource:
    """The `WorkerHealth.watch_extras` source: the registry's current spec of each job (so a
    `jobs set` shows without a restart) and, with `with_audit`, its settings rows and audit,
    and its open run requests when `requests` is given."""

    async def extras(names: Sequence[str], *, with_audit: bool) -> Mapping[str, JobExtras]:
        out: dict[str, JobExtras] = {}
        for name in names:
            if name not in registry:
                continue
            spec = registry.get(name)
            if not with_audit:
                out[name] = JobExtras(
                    schedule=spec.schedule.expression,
                    zone=spec.zone_name,
                    disabled=not spec.options.enabled,
                    calendar=spec.calendar,
                )
                continue
            view = await settings_view(registry, store, name, AUDIT_ROWS)
            rows, total, error = (
                await open_request_rows(requests, name) if requests is not None else ((), 0, None)
            )
            out[name] = JobExtras(
                schedule=spec.schedule.expression,
                zone=spec.zone_name,
                disabled=not spec.options.enabled,
                calendar=spec.calendar,
                settings=tuple(setting_row(s) for s in view.effective),
                audit=tuple(audit_row(change) for change in view.audit),
                requests=rows,
                requests_open=total,
                requests_error=error,
            )
        return out

    return extras
