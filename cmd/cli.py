"""The `financial` command line: worker, jobs (list, run, pause, resume, history), schedule,
migrate."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypedDict

from financial.cmd import fire_times, history, worker
from financial.cmd.wiring import Clients, ConfigError, build_clients
from financial.configs import Settings, SettingsError, load_settings
from financial.pkg.database.embedded import EmbeddedPostgresError
from financial.pkg.database.migrator import MigrationError
from financial.pkg.database.pool import DatabaseUnavailable
from financial.pkg.health import HealthServerError
from financial.pkg.jobs.model import RunStatus
from financial.pkg.observability.logging import configure_logging
from financial.pkg.scheduler.registry import JobSpec, UnknownJobError
from financial.pkg.scheduler.store import JobSummary, RunStoreUnavailable

EX_OK, EX_FAILED, EX_USAGE, EX_CONFIG = 0, 1, 2, 78
# What reaching the run store from the command line can meet; each message names the cause.
STORE_ERRORS = (
    DatabaseUnavailable,
    EmbeddedPostgresError,
    MigrationError,
    RunStoreUnavailable,
)

Command = Callable[[argparse.Namespace, Settings], int]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `financial` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"financial: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(EX_CONFIG) from None
    configure_logging(settings.log_level, settings.log_format)
    command: Command = args.command
    try:
        code = command(args, settings)
    except ConfigError as exc:
        print(f"financial: configuration error: {exc}", file=sys.stderr)
        code = EX_CONFIG
    raise SystemExit(code)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="financial", description="financial worker: runs the service's periodic jobs"
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    run_worker = sub.add_parser("worker", help="run the scheduler until SIGTERM or SIGINT")
    run_worker.set_defaults(command=_worker)

    jobs = sub.add_parser(
        "jobs", help="list the jobs, run one now, pause or resume one, show the run history"
    ).add_subparsers(required=True, metavar="ACTION")
    listing = jobs.add_parser("list", help="every job with its schedule and next fire times")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(command=_jobs_list)
    run = jobs.add_parser("run", help="run one job once now, with retries and timeout")
    run.add_argument("name")
    run.set_defaults(command=_jobs_run)
    pause = jobs.add_parser(
        "pause", help="pause a job on every replica: its ticks are recorded skipped"
    )
    pause.add_argument("name")
    pause.add_argument("--reason", help="why; shown with each tick it skips")
    pause.set_defaults(command=_jobs_pause)
    resume = jobs.add_parser("resume", help="resume a paused job on every replica")
    resume.add_argument("name")
    resume.set_defaults(command=_jobs_resume)
    past = jobs.add_parser("history", help="recent runs, newest first: who ran what and when")
    past.add_argument("name", nargs="?", help="one job (default: every job)")
    past.add_argument("--status", choices=[status.value for status in RunStatus])
    past.add_argument("--limit", type=int, default=50, help="how many runs (default 50)")
    past.add_argument("--json", action="store_true", help="print JSON")
    past.set_defaults(command=_jobs_history)

    migrate = sub.add_parser("migrate", help="apply the database migrations")
    migrate.set_defaults(command=_migrate)

    schedule = sub.add_parser(
        "schedule", help="the next fire times of a cron expression, on a holiday calendar"
    )
    fire_times.add_arguments(schedule)
    schedule.set_defaults(command=fire_times.show)
    return parser


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return asyncio.run(worker.serve(settings))
    except HealthServerError as exc:
        # Not EX_CONFIG: a port still held by the previous instance frees itself on a restart.
        print(f"financial: {exc}", file=sys.stderr)
        return EX_FAILED


def _report_logging(settings: Settings) -> None:
    """Commands that print a report keep stdout for it: their log lines go to stderr, and only
    from WARNING up unless LOG_LEVEL=DEBUG."""
    level = "DEBUG" if settings.log_level == "DEBUG" else "WARNING"
    configure_logging(level, settings.log_format, stream=sys.stderr)


def _jobs_list(args: argparse.Namespace, settings: Settings) -> int:
    _report_logging(settings)
    registry = worker.registry_for(settings)
    now = datetime.now(UTC)
    summaries, note = asyncio.run(history.summaries(settings, [spec.name for spec in registry]))
    if note is not None:
        print(f"financial: {note}", file=sys.stderr)
    rows = [_job_row(spec, now, (summaries or {}).get(spec.name)) for spec in registry]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EX_OK
    if not rows:
        print("no jobs registered")
        return EX_OK
    headers = ["NAME", "SCHEDULE", "ZONE", "CALENDAR", "OVERLAP", "TIMEOUT", "ENABLED", "PAUSED"]
    headers += ["LAST RUN", "LAST SUCCESS", "NEXT RUNS"]
    table = [
        [
            r["name"],
            r["schedule"],
            r["zone"],
            f"{r['calendar']} ({r['on_holiday']})" if r["calendar"] else "-",
            r["overlap"],
            f"{r['timeout_s']:g}s",
            "yes" if r["enabled"] else "no",
            _paused_cell(r),
            f"{r['last_status']} {r['last_run_at']}" if r["last_status"] else "-",
            r["last_success_at"] or "-",
            ", ".join(r["next"]),
        ]
        for r in rows
    ]
    _print_table(headers, table)
    return EX_OK


class JobRow(TypedDict):
    name: str
    schedule: str
    zone: str
    calendar: str | None
    on_holiday: str
    overlap: str
    timeout_s: float
    enabled: bool
    retries: int
    next: list[str]
    # From the run history; None when it could not be read.
    paused: bool | None
    paused_reason: str | None
    last_status: str | None
    last_run_at: str | None
    last_success_at: str | None


def _paused_cell(row: JobRow) -> str:
    if row["paused"] is None:
        return "-"
    if not row["paused"]:
        return "no"
    return f"yes ({row['paused_reason']})" if row["paused_reason"] else "yes"


def _job_row(spec: JobSpec, now: datetime, summary: JobSummary | None) -> JobRow:
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
        "enabled": spec.options.enabled,
        "retries": spec.options.retry.max_retries,
        "next": [t.astimezone(zone).isoformat() for t in spec.schedule.next_n(now, 3)],
        "paused": summary.paused if summary else None,
        "paused_reason": summary.paused_reason if summary else None,
        "last_status": summary.last_status.value if summary and summary.last_status else None,
        "last_run_at": last_run.astimezone(zone).isoformat() if last_run else None,
        "last_success_at": last_success.astimezone(zone).isoformat() if last_success else None,
    }


def _jobs_run(args: argparse.Namespace, settings: Settings) -> int:
    clients = build_clients(settings)
    spec = _find_job(settings, args.name, clients)
    if spec is None:
        return EX_USAGE
    try:
        return asyncio.run(worker.run_once(settings, spec, clients))
    except STORE_ERRORS as exc:
        print(f"financial: {exc}", file=sys.stderr)
        return EX_FAILED


def _find_job(settings: Settings, name: str, clients: Clients | None = None) -> JobSpec | None:
    """The registered job `name`, or None after printing the known names."""
    try:
        return worker.registry_for(settings, clients).get(name)
    except UnknownJobError as exc:
        print(f"financial: {exc}", file=sys.stderr)
        return None


def _jobs_pause(args: argparse.Namespace, settings: Settings) -> int:
    _report_logging(settings)
    if _find_job(settings, args.name) is None:
        return EX_USAGE
    try:
        asyncio.run(history.pause(settings, args.name, args.reason))
    except STORE_ERRORS as exc:
        print(f"financial: {exc}", file=sys.stderr)
        return EX_FAILED
    print(
        f"{args.name}: paused on every replica; its ticks are recorded skipped until "
        f"`financial jobs resume {args.name}`"
    )
    return EX_OK


def _jobs_resume(args: argparse.Namespace, settings: Settings) -> int:
    _report_logging(settings)
    if _find_job(settings, args.name) is None:
        return EX_USAGE
    try:
        resumed = asyncio.run(history.resume(settings, args.name))
    except STORE_ERRORS as exc:
        print(f"financial: {exc}", file=sys.stderr)
        return EX_FAILED
    print(f"{args.name}: resumed" if resumed else f"{args.name}: was not paused")
    return EX_OK


def _jobs_history(args: argparse.Namespace, settings: Settings) -> int:
    _report_logging(settings)
    if args.limit < 1:
        print(f"financial: --limit {args.limit}: expected a positive number", file=sys.stderr)
        return EX_USAGE
    status = RunStatus(args.status) if args.status else None
    try:
        runs = asyncio.run(history.history(settings, args.name, status, args.limit))
    except STORE_ERRORS as exc:
        print(f"financial: {exc}", file=sys.stderr)
        return EX_FAILED
    if args.json:
        print(history.history_json(runs))
        return EX_OK
    if not runs:
        print("no runs recorded" + (f" for {args.name}" if args.name else ""))
        return EX_OK
    _print_table(*history.history_table(runs))
    return EX_OK


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    try:
        applied = asyncio.run(worker.run_migrations(settings))
    except STORE_ERRORS as exc:
        print(f"financial: {exc}", file=sys.stderr)
        return EX_FAILED
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return EX_OK


def _print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


if __name__ == "__main__":
    main()
