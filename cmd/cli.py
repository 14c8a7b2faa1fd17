"""The `financial` command line: worker, jobs (list, names, run, pause, resume, trigger,
backfill, requests, cancel, history, set, reset, audit), schedule, migrate, completion.

Each command imports what it uses, when it runs: this module imports the standard library and
the light modules of `financial.cmd` alone, so `--help`, `schedule` and `completion` answer in
a few tens of milliseconds (measured in benchmarks/README.md; `tests/integration/test_cli.py`
checks which modules each command leaves imported). A command that needs the settings names its
handler `command`; one that does not (it must be quick) names it `light_command`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from financial.cmd import event_loop, fire_times, job_settings, request_queue
from financial.cmd.completion import JOB, SHELLS, script
from financial.cmd.errors import EX_CONFIG, EX_FAILED, EX_OK, EX_USAGE, ConfigError, store_errors
from financial.cmd.jobs import (
    jobs_history,
    jobs_list,
    jobs_names,
    jobs_pause,
    jobs_resume,
    jobs_run,
)
from financial.cmd.requests import BACKFILL_LIMIT, jobs_backfill, jobs_trigger

if TYPE_CHECKING:
    from financial.configs import Settings

__all__ = ["EX_CONFIG", "EX_FAILED", "EX_OK", "EX_USAGE", "main"]

# The run statuses `jobs history --status` takes (RunStatus's values; a unit test keeps them
# equal), written out so that building the parser imports nothing of the scheduler.
RUN_STATUSES = (
    "pending",
    "running",
    "succeeded",
    "failed",
    "timed_out",
    "skipped",
    "missed",
    "interrupted",
    "abandoned",
)

Command = Callable[[argparse.Namespace, "Settings"], int]
LightCommand = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `financial` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        light: LightCommand | None = getattr(args, "light_command", None)
        code = light(args) if light is not None else _with_settings(args)
    except ConfigError as exc:
        print(f"financial: configuration error: {exc}", file=sys.stderr)
        code = EX_CONFIG
    raise SystemExit(code)


def _with_settings(args: argparse.Namespace) -> int:
    from financial.configs import SettingsError, load_settings
    from financial.pkg.observability.logging import configure_logging

    try:
        settings = load_settings()
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
    configure_logging(settings.log_level, settings.log_format)
    command: Command = args.command
    return command(args, settings)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="financial", description="financial worker: runs the service's periodic jobs"
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    run_worker = sub.add_parser("worker", help="run the scheduler until SIGTERM or SIGINT")
    run_worker.set_defaults(command=_worker)

    jobs = sub.add_parser(
        "jobs",
        help="list the jobs, run one now, pause or resume one, ask the cluster for runs (and "
        "withdraw them), show the run history, change a job's settings at runtime",
    ).add_subparsers(required=True, metavar="ACTION")
    listing = jobs.add_parser("list", help="every job with its schedule and next fire times")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(command=jobs_list)
    names = jobs.add_parser("names", help="the job names, one a line (for shell completion)")
    names.set_defaults(command=jobs_names)
    run = jobs.add_parser("run", help="run one job once now, with retries and timeout")
    run.add_argument("name", metavar=JOB)
    run.set_defaults(command=jobs_run)
    pause = jobs.add_parser(
        "pause", help="pause a job on every replica: its ticks are recorded skipped"
    )
    pause.add_argument("name", metavar=JOB)
    pause.add_argument("--reason", help="why; shown with each tick it skips")
    pause.set_defaults(command=jobs_pause)
    resume = jobs.add_parser("resume", help="resume a paused job on every replica")
    resume.add_argument("name", metavar=JOB)
    resume.set_defaults(command=jobs_resume)
    trigger = jobs.add_parser(
        "trigger", help="ask the cluster for a run now (or of a past tick); a worker runs it"
    )
    trigger.add_argument("name", metavar=JOB)
    trigger.add_argument("--tick", help="the tick to run again, ISO 8601 with offset")
    trigger.add_argument("--args", help="a JSON object handed to the job as ctx.args")
    trigger.add_argument("--wait", action="store_true", help="follow the run to its end")
    trigger.add_argument(
        "--wait-timeout", type=float, help="with --wait, give up after SECONDS (default 3600)"
    )
    trigger.add_argument("--by", help="who asks (default: OS user@host)")
    trigger.set_defaults(command=jobs_trigger)
    backfill = jobs.add_parser(
        "backfill", help="ask the cluster to run every tick in a range not yet succeeded"
    )
    backfill.add_argument("name", metavar=JOB)
    backfill.add_argument("--from", dest="start", required=True, help="ISO 8601 with offset")
    backfill.add_argument("--to", dest="end", required=True, help="ISO 8601 with offset")
    backfill.add_argument("--dry-run", action="store_true", help="list the ticks, store nothing")
    backfill.add_argument("--max", type=int, help=f"allow up to N ticks (default {BACKFILL_LIMIT})")
    backfill.add_argument("--by", help="who asks (default: OS user@host)")
    backfill.set_defaults(command=jobs_backfill)
    request_queue.add_arguments(jobs, JOB)
    past = jobs.add_parser("history", help="recent runs, newest first: who ran what and when")
    past.add_argument("name", metavar=JOB, nargs="?", help="one job (default: every job)")
    past.add_argument("--status", choices=RUN_STATUSES)
    past.add_argument("--limit", type=int, default=50, help="how many runs (default 50)")
    past.add_argument("--json", action="store_true", help="print JSON")
    past.set_defaults(command=jobs_history)
    job_settings.add_arguments(jobs, JOB)

    migrate = sub.add_parser("migrate", help="apply the database migrations")
    migrate.set_defaults(command=_migrate)

    schedule = sub.add_parser(
        "schedule", help="the next fire times of a cron expression, on a holiday calendar"
    )
    fire_times.add_arguments(schedule)
    schedule.set_defaults(light_command=fire_times.show)

    completion = sub.add_parser(
        "completion", help='print the shell completion script: eval "$(financial completion bash)"'
    )
    completion.add_argument("shell", choices=SHELLS)
    completion.set_defaults(light_command=_completion)
    return parser


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from financial.cmd import worker
    from financial.pkg.database.embedded import EmbeddedPostgresMissing
    from financial.pkg.health import HealthServerError

    try:
        return event_loop.run(settings.worker_event_loop, worker.serve(settings))
    except EmbeddedPostgresMissing as exc:
        # No database configured and none embedded here (pgserver has no build for 3.13).
        raise ConfigError(str(exc)) from None
    except HealthServerError as exc:
        # Not EX_CONFIG: a port still held by the previous instance frees itself on a restart.
        print(f"financial: {exc}", file=sys.stderr)
        return EX_FAILED


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from financial.cmd import worker

    try:
        applied = event_loop.run(settings.worker_event_loop, worker.run_migrations(settings))
    except store_errors() as exc:
        print(f"financial: {exc}", file=sys.stderr)
        return EX_FAILED
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return EX_OK


def _completion(args: argparse.Namespace) -> int:
    print(script(args.shell, _parser()), end="")
    return EX_OK


if __name__ == "__main__":
    main()
