"""The runtime settings commands: `jobs set`, `jobs reset`, `jobs audit`, and what `jobs list`
reads of them.

Writes go through here and PostgreSQL only (never the health server). A value is validated
against the job as the worker would build it (the registry's own parser and messages) before
anything is stored: a refused value exits 2 and leaves neither a setting nor an audit row. The
change, its audit row and the notification every replica LISTENs for are one transaction.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from financial.cmd import event_loop
from financial.cmd.errors import EX_FAILED, EX_OK, EX_USAGE, store_errors

if TYPE_CHECKING:
    from financial.configs import Settings
    from financial.pkg.scheduler.job_settings import (
        JobSettingsStore,
        RuntimeSettings,
        SettingsChange,
    )
    from financial.pkg.scheduler.job_settings.postgres import PostgresJobSettings
    from financial.pkg.scheduler.registry import JobRegistry

ENABLED_CHOICES = ("true", "false")
TIMEOUT_EXPECTED = "a number of seconds > 0"
ALERT_AFTER_EXPECTED = "a number of seconds >= 0 (0 turns the job's alert off)"


def default_by() -> str:
    """Who a change is from when `--by` is not given: the OS user and host of the CLI."""
    import getpass
    import os
    import socket

    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (a bare container)
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def add_arguments(jobs: Any, job_metavar: str) -> None:
    """`jobs set`, `jobs reset` and `jobs audit` on the `jobs` subparsers."""
    change = jobs.add_parser(
        "set",
        help="change a job's schedule, timeout, enabled flag, calendar or dead-man alert "
        "threshold on every replica",
    )
    change.add_argument("name", metavar=job_metavar)
    change.add_argument("--schedule", metavar="EXPR", help="a cron expression or descriptor")
    change.add_argument("--timeout", metavar="SECONDS", help="the run's timeout (> 0)")
    change.add_argument("--enabled", choices=ENABLED_CHOICES)
    change.add_argument("--calendar", metavar="NAME", help="a holiday calendar, or 'none'")
    change.add_argument(
        "--alert-after",
        metavar="SECONDS",
        help="the dead-man alert threshold (> 0), or 0 to turn the job's alert off",
    )
    _who_and_why(change)
    change.set_defaults(command=jobs_set)
    reset = jobs.add_parser(
        "reset", help="forget a job's runtime settings: back to the environment and the code"
    )
    reset.add_argument("name", metavar=job_metavar)
    _who_and_why(reset)
    reset.set_defaults(command=jobs_reset)
    audit = jobs.add_parser("audit", help="the changes of a job's runtime settings, newest first")
    audit.add_argument("name", metavar=job_metavar)
    audit.add_argument("--limit", type=int, default=50, help="how many changes (default 50)")
    audit.add_argument("--json", action="store_true", help="print JSON")
    audit.set_defaults(command=jobs_audit)


def _who_and_why(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", metavar="TEXT", help="why; kept in the audit")
    parser.add_argument("--by", metavar="WHO", help="who (default: OS user@host)")


def _failures() -> tuple[type[Exception], ...]:
    """What reaching the settings can meet besides the run store's faults: a database the
    migrations have not reached (WORKER_AUTO_MIGRATE=false), a statement refused."""
    import asyncpg

    return (*store_errors(), asyncpg.PostgresError)


def _failure(exc: Exception) -> str:
    import asyncpg

    if isinstance(exc, asyncpg.UndefinedTableError):
        return f"{exc}: the database lacks migration 0005; run `financial migrate`"
    if isinstance(exc, asyncpg.UndefinedColumnError):
        return f"{exc}: the database lacks migration 0008; run `financial migrate`"
    return str(exc)


class UsageError(ValueError):
    """A value refused before anything is stored (exit 2)."""


def parse_changes(args: argparse.Namespace) -> RuntimeSettings:
    """The settings `jobs set` was given; UsageError naming the option, value and expectation."""
    from financial.pkg.scheduler.job_settings import RuntimeSettings

    timeout_s = _seconds("--timeout", args.timeout, TIMEOUT_EXPECTED)
    alert_after_s = _seconds("--alert-after", args.alert_after, ALERT_AFTER_EXPECTED)
    schedule = args.schedule
    if schedule is not None and not schedule.strip():
        raise UsageError("--schedule '': expected a cron expression such as '*/5 * * * *'")
    calendar = args.calendar
    if calendar is not None and not calendar.strip():
        raise UsageError("--calendar '': expected a calendar such as BR, BR-SP, NYSE, or 'none'")
    changes = RuntimeSettings(
        schedule=schedule,
        timeout_s=timeout_s,
        enabled=None if args.enabled is None else args.enabled == "true",
        calendar=calendar,
        alert_after_s=alert_after_s,
    )
    if changes.empty:
        raise UsageError(
            f"jobs set {args.name}: nothing to set; expected at least one of --schedule, "
            "--timeout, --enabled, --calendar, --alert-after"
        )
    return changes


def _seconds(flag: str, text: str | None, expected: str) -> float | None:
    """`text` as a number of seconds (None: not given); UsageError when it is not one. Whether
    the number is in range is the registry's check (`validation.py`), made before storing."""
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected {expected}") from None
    if not math.isfinite(seconds):
        raise UsageError(f"{flag} {text!r}: expected {expected}")
    return seconds


async def _open(settings: Settings, stack: AsyncExitStack) -> PostgresJobSettings:
    from financial.cmd.runtime import open_command_pool
    from financial.pkg.scheduler.job_settings.postgres import PostgresJobSettings

    return PostgresJobSettings(await open_command_pool(settings, stack))


@dataclass(frozen=True, slots=True)
class Refused:
    """A value the job cannot take: the registry's message."""

    message: str


async def _set(
    settings: Settings,
    registry: JobRegistry,
    name: str,
    changes: RuntimeSettings,
    by: str,
    reason: str | None,
) -> SettingsChange | Refused:
    async with AsyncExitStack() as stack:
        store = await _open(settings, stack)
        return await set_checked(store, registry, name, changes, by, reason)


async def set_checked(
    store: JobSettingsStore,
    registry: JobRegistry,
    name: str,
    changes: RuntimeSettings,
    by: str,
    reason: str | None,
) -> SettingsChange | Refused:
    """Store `changes` unless the job, built with them merged over what is stored, is refused
    by the registry (with its messages: `Refused`, nothing stored)."""
    from financial.pkg.jobs.model import JobDefinitionError

    def check(merged: RuntimeSettings) -> None:
        registry.build(name, merged)

    try:
        return await store.set(name, changes, by=by, reason=reason, check=check)
    except JobDefinitionError as exc:
        return Refused(str(exc))


def _registry_and_job(settings: Settings, name: str) -> JobRegistry | None:
    from financial.cmd.wiring import registry_for

    registry = registry_for(settings)
    if name not in registry:
        from financial.pkg.scheduler.registry import UnknownJobError

        print(f"financial: {UnknownJobError(name, [s.name for s in registry])}", file=sys.stderr)
        return None
    return registry


def jobs_set(args: argparse.Namespace, settings: Settings) -> int:
    from financial.cmd.jobs import report_logging

    report_logging(settings)
    try:
        changes = parse_changes(args)
    except UsageError as exc:
        print(f"financial: {exc}", file=sys.stderr)
        return EX_USAGE
    registry = _registry_and_job(settings, args.name)
    if registry is None:
        return EX_USAGE
    by = args.by or default_by()
    try:
        result = event_loop.run(
            settings.worker_event_loop,
            _set(settings, registry, args.name, changes, by, args.reason),
        )
    except _failures() as exc:
        print(f"financial: {_failure(exc)}", file=sys.stderr)
        return EX_FAILED
    if isinstance(result, Refused):
        print(f"financial: {result.message}; nothing stored", file=sys.stderr)
        return EX_USAGE
    from financial.pkg.scheduler.job_settings.view import describe

    print(f"{args.name}: {describe(result.new)} (runtime); every replica applies it within 2 s")
    return EX_OK


async def _reset(
    settings: Settings, name: str, by: str, reason: str | None
) -> SettingsChange | None:
    async with AsyncExitStack() as stack:
        return await (await _open(settings, stack)).reset(name, by=by, reason=reason)


def jobs_reset(args: argparse.Namespace, settings: Settings) -> int:
    from financial.cmd.jobs import report_logging

    report_logging(settings)
    if _registry_and_job(settings, args.name) is None:
        return EX_USAGE
    by = args.by or default_by()
    try:
        change = event_loop.run(
            settings.worker_event_loop, _reset(settings, args.name, by, args.reason)
        )
    except _failures() as exc:
        print(f"financial: {_failure(exc)}", file=sys.stderr)
        return EX_FAILED
    from financial.pkg.scheduler.job_settings.view import describe

    if change is None:
        print(f"{args.name}: had no runtime settings")
    else:
        print(f"{args.name}: runtime settings cleared ({describe(change.old)}); back to env/code")
    return EX_OK


async def _audit(settings: Settings, name: str, limit: int) -> list[SettingsChange]:
    async with AsyncExitStack() as stack:
        return await (await _open(settings, stack)).audit(name, limit)


def jobs_audit(args: argparse.Namespace, settings: Settings) -> int:
    from financial.cmd.history import instant
    from financial.cmd.jobs import print_table, report_logging
    from financial.pkg.scheduler.job_settings.view import change_dict, describe_change

    report_logging(settings)
    if args.limit < 1:
        print(f"financial: --limit {args.limit}: expected a positive number", file=sys.stderr)
        return EX_USAGE
    if _registry_and_job(settings, args.name) is None:
        return EX_USAGE
    try:
        changes = event_loop.run(
            settings.worker_event_loop, _audit(settings, args.name, args.limit)
        )
    except _failures() as exc:
        print(f"financial: {_failure(exc)}", file=sys.stderr)
        return EX_FAILED
    if args.json:
        print(json.dumps([change_dict(c) for c in changes], indent=2))
        return EX_OK
    if not changes:
        print(f"no runtime settings changes recorded for {args.name}")
        return EX_OK
    rows = [
        [instant(c.at), c.by, c.action.value, describe_change(c), c.reason or ""] for c in changes
    ]
    print_table(["AT", "BY", "ACTION", "CHANGE", "REASON"], rows)
    return EX_OK
