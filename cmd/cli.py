"""The `financial` command line: worker, jobs (list, run), schedule, migrate."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypedDict
from zoneinfo import ZoneInfo

from financial.cmd import worker
from financial.cmd.wiring import ConfigError, build_clients
from financial.configs import Settings, SettingsError, load_settings
from financial.pkg.database.embedded import EmbeddedPostgresError
from financial.pkg.database.migrator import MigrationError
from financial.pkg.database.pool import DatabaseUnavailable
from financial.pkg.observability.logging import configure_logging
from financial.pkg.scheduler.registry import JobSpec, UnknownJobError
from financial.pkg.scheduler.schedule import ScheduleError, parse_schedule

EX_OK, EX_FAILED, EX_USAGE, EX_CONFIG = 0, 1, 2, 78

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

    jobs = sub.add_parser("jobs", help="list the jobs or run one now").add_subparsers(
        required=True, metavar="ACTION"
    )
    listing = jobs.add_parser("list", help="every job with its schedule and next fire times")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(command=_jobs_list)
    run = jobs.add_parser("run", help="run one job once now, with retries and timeout")
    run.add_argument("name")
    run.set_defaults(command=_jobs_run)

    migrate = sub.add_parser("migrate", help="apply the database migrations")
    migrate.set_defaults(command=_migrate)

    schedule = sub.add_parser("schedule", help="the next fire times of a cron expression")
    schedule.add_argument("expression", help="e.g. '0 2 * * *', '@every 5s', 'CRON_TZ=... ...'")
    schedule.add_argument("--tz", help="time zone (default WORKER_TIMEZONE)")
    schedule.add_argument("--after", help="ISO 8601 instant to count from (default now)")
    schedule.add_argument("--count", type=int, default=5, help="how many (default 5)")
    schedule.add_argument("--json", action="store_true", help="print JSON")
    schedule.set_defaults(command=_schedule)
    return parser


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(worker.serve(settings))


def _jobs_list(args: argparse.Namespace, settings: Settings) -> int:
    registry = worker.registry_for(settings)
    now = datetime.now(UTC)
    rows = [_job_row(spec, now) for spec in registry]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EX_OK
    if not rows:
        print("no jobs registered")
        return EX_OK
    headers = ["NAME", "SCHEDULE", "ZONE", "OVERLAP", "TIMEOUT", "ENABLED", "NEXT RUNS"]
    table = [
        [
            r["name"],
            r["schedule"],
            r["zone"],
            r["overlap"],
            f"{r['timeout_s']:g}s",
            "yes" if r["enabled"] else "no",
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
    overlap: str
    timeout_s: float
    enabled: bool
    retries: int
    next: list[str]


def _job_row(spec: JobSpec, now: datetime) -> JobRow:
    zone = spec.schedule.zone
    return {
        "name": spec.name,
        "schedule": spec.schedule.expression,
        "zone": str(zone),
        "overlap": spec.options.overlap.value,
        "timeout_s": spec.timeout.total_seconds(),
        "enabled": spec.options.enabled,
        "retries": spec.options.retry.max_retries,
        "next": [t.astimezone(zone).isoformat() for t in spec.schedule.next_n(now, 3)],
    }


def _jobs_run(args: argparse.Namespace, settings: Settings) -> int:
    clients = build_clients(settings)
    registry = worker.registry_for(settings, clients)
    try:
        spec = registry.get(args.name)
    except UnknownJobError as exc:
        print(f"financial: {exc}", file=sys.stderr)
        return EX_USAGE
    try:
        return asyncio.run(worker.run_once(settings, spec, clients))
    except (DatabaseUnavailable, EmbeddedPostgresError) as exc:
        print(f"financial: {exc}", file=sys.stderr)
        return EX_FAILED


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    try:
        applied = asyncio.run(worker.run_migrations(settings))
    except (DatabaseUnavailable, EmbeddedPostgresError, MigrationError) as exc:
        print(f"financial: {exc}", file=sys.stderr)
        return EX_FAILED
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return EX_OK


def _schedule(args: argparse.Namespace, settings: Settings) -> int:
    zone_name = args.tz or settings.worker_timezone
    try:
        schedule = parse_schedule(args.expression, zone_name)
    except ScheduleError as exc:
        print(f"financial: schedule {args.expression!r}: {exc}", file=sys.stderr)
        return EX_USAGE
    if args.count < 1:
        print(f"financial: --count {args.count}: expected a positive number", file=sys.stderr)
        return EX_USAGE
    try:
        after = _parse_instant(args.after, schedule.zone) if args.after else datetime.now(UTC)
    except ValueError as exc:
        print(f"financial: --after {args.after!r}: {exc}", file=sys.stderr)
        return EX_USAGE
    zone = schedule.zone
    times = schedule.next_n(after, args.count)
    if args.json:
        print(
            json.dumps(
                {
                    "expression": schedule.expression,
                    "zone": str(zone),
                    "after": after.isoformat(),
                    "next": [
                        {"local": t.astimezone(zone).isoformat(), "utc": _utc(t)} for t in times
                    ],
                },
                indent=2,
            )
        )
        return EX_OK
    print(f"  Expression: {schedule.expression}")
    print(f"        Zone: {zone}")
    for n, t in enumerate(times, 1):
        label = "Next elapse" if n == 1 else f"Iteration #{n}"
        local = t.astimezone(zone)
        print(f"{label:>12}: {local:%a %Y-%m-%d %H:%M:%S %z} ({local.tzname()})  {_utc(t)}")
    return EX_OK


def _parse_instant(text: str, zone: ZoneInfo) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)  # a wall time in the schedule's zone
    return value


def _utc(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


if __name__ == "__main__":
    main()
