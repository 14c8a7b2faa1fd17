"""The `jobs` commands: list, names, run, pause, resume, history.

Each imports what it uses when it runs (see cli.py): `jobs list` and `jobs names` build the
registry from `cmd.wiring` and read history through `cmd.history`, never `cmd.worker`, so
neither the health server's aiohttp nor the scheduler is imported for them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypedDict

from financial.cmd import event_loop
from financial.cmd.errors import EX_FAILED, EX_OK, EX_USAGE, run_command, store_errors

if TYPE_CHECKING:
    from financial.cmd.history import Listing
    from financial.cmd.wiring import Clients
    from financial.configs import Settings
    from financial.pkg.scheduler.job_settings import RuntimeSettings
    from financial.pkg.scheduler.registry import EffectiveSetting, JobRegistry, JobSpec
    from financial.pkg.scheduler.store import JobSummary


def report_logging(settings: Settings) -> None:
    """Commands that print a report keep stdout for it: their log lines go to stderr, and only
    from WARNING up unless LOG_LEVEL=DEBUG."""
    from financial.pkg.observability.logging import configure_logging

    level = "DEBUG" if settings.log_level == "DEBUG" else "WARNING"
    configure_logging(level, settings.log_format, stream=sys.stderr)


def jobs_list(args: argparse.Namespace, settings: Settings) -> int:
    # Not cmd.worker: `jobs list` needs neither the health server nor the scheduler.
    from financial.cmd import history
    from financial.cmd.wiring import registry_for

    report_logging(settings)
    registry = registry_for(settings)
    now = datetime.now(UTC)
    found = event_loop.run(
        settings.worker_event_loop, history.listing(settings, [spec.name for spec in registry])
    )
    notes = [found.note] if found.note is not None else []
    notes += lay_runtime(registry, found.runtime or {})
    for note in notes:
        print(f"financial: {note}", file=sys.stderr)
    summaries = found.summaries or {}
    rows = [
        _with_state(
            _job_row(spec, now, summaries.get(spec.name), registry.sources(spec.name)), found
        )
        for spec in registry
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EX_OK
    if not rows:
        print("no jobs registered")
        return EX_OK
    headers = ["NAME", "SCHEDULE", "ZONE", "CALENDAR", "OVERLAP", "TIMEOUT", "ALERT AFTER"]
    headers += ["ENABLED", "PAUSED", "LATE", "REQUESTS", "LAST RUN", "LAST SUCCESS", "NEXT RUNS"]
    table = [
        [
            r["name"],
            r["schedule"] + _from(r, "schedule"),
            r["zone"],
            (f"{r['calendar']} ({r['on_holiday']})" if r["calendar"] else "-")
            + _from(r, "calendar"),
            r["overlap"],
            f"{r['timeout_s']:g}s" + _from(r, "timeout"),
            _alert_after_cell(r) + _from(r, "alert_after"),
            ("yes" if r["enabled"] else "no") + _from(r, "enabled"),
            _paused_cell(r),
            _late_cell(r),
            "-" if r["pending_requests"] is None else str(r["pending_requests"]),
            f"{r['last_status']} {r['last_run_at']}" if r["last_status"] else "-",
            r["last_success_at"] or "-",
            ", ".join(r["next"]),
        ]
        for r in rows
    ]
    print_table(headers, table)
    return EX_OK


class JobRow(TypedDict):
    """One job as `jobs list` shows it, and as `jobs list --json` prints it."""

    name: str
    schedule: str
    zone: str
    calendar: str | None
    on_holiday: str
    overlap: str
    timeout_s: float
    # The dead-man alert threshold; None when the job's alert is off.
    alert_after_s: float | None
    enabled: bool
    retries: int
    next: list[str]
    # From the run history; None when it could not be read.
    paused: bool | None
    paused_reason: str | None
    last_status: str | None
    last_run_at: str | None
    last_success_at: str | None
    # Where schedule, timeout, enabled, calendar and alert_after come from: runtime, env, code
    # or default.
    sources: dict[str, str]
    # The dead-man alert's verdict and since when (UTC); its queued (pending) run requests.
    # None when the database could not be read.
    late: bool | None
    late_since: str | None
    pending_requests: int | None


def _with_state(row: JobRow, found: Listing) -> JobRow:
    """`row` with the job's late state and queued requests from the database, when read."""
    if found.late is not None:
        since = found.late.get(row["name"])
        row["late"] = since is not None
        row["late_since"] = since.astimezone(UTC).isoformat() if since else None
    if found.requests is not None:
        counts = found.requests.get(row["name"])
        row["pending_requests"] = counts.pending if counts is not None else 0
    return row


def _alert_after_cell(row: JobRow) -> str:
    seconds = row["alert_after_s"]
    return "off" if seconds is None else f"{seconds:g}s"


def _late_cell(row: JobRow) -> str:
    if row["late"] is None:
        return "-"
    return f"LATE since {row['late_since']}" if row["late"] else "no"


def _from(row: JobRow, field: str) -> str:
    """` [runtime]` or ` [env]` after a value an operator set; nothing for code and defaults."""
    source = row["sources"].get(field)
    return f" [{source}]" if source in ("runtime", "env") else ""


def lay_runtime(registry: JobRegistry, runtime: dict[str, RuntimeSettings]) -> list[str]:
    """Lay the runtime settings read from the database over `registry`, as every replica does;
    a note for each that cannot be applied (the job keeps its env and code values)."""
    from financial.pkg.jobs.model import JobDefinitionError

    notes = []
    for name, values in sorted(runtime.items()):
        if name not in registry:
            continue
        try:
            registry.respec(name, values)
        except JobDefinitionError as exc:
            notes.append(f"runtime settings of {name} not applied: {exc}")
    return notes


def _paused_cell(row: JobRow) -> str:
    if row["paused"] is None:
        return "-"
    if not row["paused"]:
        return "no"
    return f"yes ({row['paused_reason']})" if row["paused_reason"] else "yes"


def _job_row(
    spec: JobSpec,
    now: datetime,
    summary: JobSummary | None,
    sources: Sequence[EffectiveSetting] = (),
) -> JobRow:
    zone = spec.schedule.zone
    last_run = summary.last_scheduled_at if summary else None
    last_success = summary.last_success_at if summary else None
    return {
        "name": spec.name,
        "schedule": spec.schedule.expression,
        "zone": str(zone),
        "calendar": spec.calendar,
        "on_holiday": spec.options.on_holiday.value,
        "overlap": spec.options.overlap.value,
        "timeout_s": spec.timeout.total_seconds(),
        "alert_after_s": None if spec.alert_after is None else spec.alert_after.total_seconds(),
        "enabled": spec.options.enabled,
        "retries": spec.options.retry.max_retries,
        "next": [t.astimezone(zone).isoformat() for t in spec.schedule.next_n(now, 3)],
        "paused": summary.paused if summary else None,
        "paused_reason": summary.paused_reason if summary else None,
        "last_status": summary.last_status.value if summary and summary.last_status else None,
        "last_run_at": last_run.astimezone(zone).isoformat() if last_run else None,
        "last_success_at": last_success.astimezone(zone).isoformat() if last_success else None,
        "sources": {row.field: row.source for row in sources},
        "late": None,
        "late_since": None,
        "pending_requests": None,
    }


def jobs_names(args: argparse.Namespace, settings: Settings) -> int:
    """One job name a line, for shell completion: the registry alone, no connection."""
    from financial.cmd.wiring import registry_for

    report_logging(settings)
    for spec in registry_for(settings):
        print(spec.name)
    return EX_OK


def jobs_run(args: argparse.Namespace, settings: Settings) -> int:
    from financial.cmd import worker
    from financial.cmd.wiring import build_clients, registry_for

    clients = build_clients(settings)
    registry = registry_for(settings, clients)
    if args.name not in registry:
        _find_job(settings, args.name, clients)  # prints the known names
        return EX_USAGE
    spec = registry.get(args.name)
    return run_command(
        settings.worker_event_loop, worker.run_once(settings, spec, clients, registry)
    )


def _find_job(settings: Settings, name: str, clients: Clients | None = None) -> JobSpec | None:
    """The registered job `name`, or None after printing the known names."""
    from financial.cmd.wiring import registry_for
    from financial.pkg.scheduler.registry import UnknownJobError

    try:
        return registry_for(settings, clients).get(name)
    except UnknownJobError as exc:
        print(f"financial: {exc}", file=sys.stderr)
        return None


def jobs_pause(args: argparse.Namespace, settings: Settings) -> int:
    from financial.cmd import history

    report_logging(settings)
    if _find_job(settings, args.name) is None:
        return EX_USAGE
    try:
        event_loop.run(settings.worker_event_loop, history.pause(settings, args.name, args.reason))
    except store_errors() as exc:
        print(f"financial: {exc}", file=sys.stderr)
        return EX_FAILED
    print(
        f"{args.name}: paused on every replica; its ticks are recorded skipped until "
        f"`financial jobs resume {args.name}`"
    )
    return EX_OK


def jobs_resume(args: argparse.Namespace, settings: Settings) -> int:
    from financial.cmd import history

    report_logging(settings)
    if _find_job(settings, args.name) is None:
        return EX_USAGE
    try:
        resumed = event_loop.run(settings.worker_event_loop, history.resume(settings, args.name))
    except store_errors() as exc:
        print(f"financial: {exc}", file=sys.stderr)
        return EX_FAILED
    print(f"{args.name}: resumed" if resumed else f"{args.name}: was not paused")
    return EX_OK


def jobs_history(args: argparse.Namespace, settings: Settings) -> int:
    from financial.cmd import history
    from financial.pkg.jobs.model import RunStatus

    report_logging(settings)
    if args.limit < 1:
        print(f"financial: --limit {args.limit}: expected a positive number", file=sys.stderr)
        return EX_USAGE
    status = RunStatus(args.status) if args.status else None
    try:
        runs = event_loop.run(
            settings.worker_event_loop, history.history(settings, args.name, status, args.limit)
        )
    except store_errors() as exc:
        print(f"financial: {exc}", file=sys.stderr)
        return EX_FAILED
    if args.json:
        print(history.history_json(runs))
        return EX_OK
    if not runs:
        print("no runs recorded" + (f" for {args.name}" if args.name else ""))
        return EX_OK
    print_table(*history.history_table(runs))
    return EX_OK


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
