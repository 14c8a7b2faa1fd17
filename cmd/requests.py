"""`jobs trigger` and `jobs backfill`: runs asked of the cluster, run by whichever worker has room.

The command line only records requests (table `run_requests`, `pkg/scheduler/store/requests.py`);
it never runs the job itself. Bad input is refused before anything is stored (exit 2). Like the
other `jobs` commands, this module imports the standard library alone until a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from financial.cmd.errors import EX_FAILED, EX_OK, EX_USAGE, run_command

if TYPE_CHECKING:
    import asyncpg

    from financial.configs import Settings
    from financial.pkg.scheduler.registry import JobSpec
    from financial.pkg.scheduler.store.requests import RunRequest

# Above this many ticks a backfill is refused unless `--max` allows it.
BACKFILL_LIMIT = 100
# A range is never walked past this many ticks (an `@every 1s` job over a year, say).
BACKFILL_SCAN_LIMIT = 100_000
ARGS_LIMIT_BYTES = 16 * 1024
WAIT_POLL_S = 0.5
DEFAULT_WAIT_TIMEOUT_S = 3600.0
INSTANT_EXAMPLE = "2026-03-02T08:00:00+00:00 or 2026-03-02T08:00:00Z"


class BadInput(ValueError):
    """An option with a value the command cannot take; the message names both."""


def parse_instant(option: str, value: str) -> datetime:
    """An ISO 8601 instant with its UTC offset (a local time would be ambiguous)."""
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(
            f"{option} {value!r}: expected an ISO 8601 instant such as {INSTANT_EXAMPLE}"
        ) from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise BadInput(
            f"{option} {value!r}: expected an ISO 8601 instant with its UTC offset, such as "
            f"{INSTANT_EXAMPLE}"
        )
    return at


def parse_past_tick(value: str, now: datetime) -> datetime:
    """`--tick`: an instant not in the future. A future tick would take the attempt its
    scheduled run needs, and that run would then find its tick claimed and not run."""
    tick = parse_instant("--tick", value)
    if tick > now:
        raise BadInput(
            f"--tick {value!r}: expected an instant not in the future (now is "
            f"{now.isoformat(timespec='seconds')}); a run now needs no --tick"
        )
    return tick


def parse_args_json(value: str | None) -> dict[str, Any]:
    """`--args`: a JSON object of at most `ARGS_LIMIT_BYTES`."""
    if value is None:
        return {}
    if len(value.encode()) > ARGS_LIMIT_BYTES:
        raise BadInput(f"--args: {len(value.encode())} bytes, expected at most {ARGS_LIMIT_BYTES}")
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise BadInput(f"--args {value!r}: expected a JSON object ({exc})") from None
    if not isinstance(parsed, dict):
        raise BadInput(
            f'--args {value!r}: expected a JSON object such as \'{{"day": "2026-03-01"}}\', '
            f"not a JSON {type(parsed).__name__}"
        )
    return parsed


def requested_by(by: str | None) -> str:
    """Who asked: `--by`, else the OS user and host of the command line."""
    import getpass
    import socket

    if by is not None and by.strip():
        return by.strip()
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def backfill_ticks(spec: JobSpec, start: datetime, end: datetime) -> list[datetime]:
    """The job's ticks from `start` to `end`, both included (BadInput past the scan limit)."""
    ticks: list[datetime] = []
    at = spec.schedule.next_after(start - timedelta(microseconds=1))
    while at <= end:
        if len(ticks) >= BACKFILL_SCAN_LIMIT:
            raise BadInput(
                f"--from {start.isoformat()} --to {end.isoformat()}: more than "
                f"{BACKFILL_SCAN_LIMIT} ticks of {spec.name}; expected a shorter range"
            )
        ticks.append(at)
        at = spec.schedule.next_after(at)
    return ticks


def jobs_trigger(args: argparse.Namespace, settings: Settings) -> int:
    from financial.cmd.jobs import _find_job, report_logging

    report_logging(settings)
    spec = _find_job(settings, args.name)
    if spec is None:
        return EX_USAGE
    try:
        tick = parse_past_tick(args.tick, datetime.now(UTC)) if args.tick is not None else None
        job_args = parse_args_json(args.args)
        if args.wait_timeout is not None and args.wait_timeout <= 0:
            raise BadInput(f"--wait-timeout {args.wait_timeout:g}: expected a positive number")
    except BadInput as exc:
        print(f"financial: {exc}", file=sys.stderr)
        return EX_USAGE
    return run_command(settings.worker_event_loop, _trigger(settings, args, spec, tick, job_args))


async def _trigger(
    settings: Settings,
    args: argparse.Namespace,
    spec: JobSpec,
    tick: datetime | None,
    job_args: dict[str, Any],
) -> int:
    from financial.pkg.jobs.model import Trigger
    from financial.pkg.scheduler.store.requests_postgres import PostgresRequestStore

    async with AsyncExitStack() as stack:
        pool = await _open_pool(settings, stack)
        spec = await _as_the_cluster_runs_it(settings, spec, pool)
        store = PostgresRequestStore(pool)
        [request] = await store.add(
            spec.name,
            [tick],
            trigger=Trigger.MANUAL,
            requested_by=requested_by(args.by),
            args=job_args,
        )
        print(
            f"{spec.name}: run requested for tick {request.tick.isoformat()} "
            f"(request {request.request_id})"
        )
        await _say_if_no_worker(pool)
        _say_if_disabled(spec)
        if not args.wait:
            return EX_OK
        timeout_s = args.wait_timeout or DEFAULT_WAIT_TIMEOUT_S
        done = await _follow(store, request.request_id, timeout_s)
        if done is None:
            print(f"{spec.name}: not finished after {timeout_s:g}s; the request stays queued")
            return EX_FAILED
        line, code = followed_outcome(spec.name, done, await _run_error(pool, done.run_id))
        print(line)
        return code


def followed_outcome(name: str, request: RunRequest, detail: str = "") -> tuple[str, int]:
    """What `trigger --wait` prints for a request it followed to its end, and the exit code: 0
    for a run that succeeded, 1 for any other status and for a request cancelled before it ran."""
    from financial.pkg.jobs.model import RunStatus
    from financial.pkg.scheduler.store.requests import RequestState

    if request.state is RequestState.CANCELLED:
        return (
            f"{name}: cancelled by {request.cancelled_by} (request {request.request_id})",
            EX_FAILED,
        )
    status = request.status.value if request.status is not None else "unknown"
    line = f"{name}: {status} (run {request.run_id or '-'}){detail}"
    return line, EX_OK if request.status is RunStatus.SUCCEEDED else EX_FAILED


def jobs_backfill(args: argparse.Namespace, settings: Settings) -> int:
    from financial.cmd.jobs import _find_job, report_logging

    report_logging(settings)
    spec = _find_job(settings, args.name)
    if spec is None:
        return EX_USAGE
    try:
        start = parse_instant("--from", args.start)
        end = parse_instant("--to", args.end)
        now = datetime.now(UTC)
        if end > now:
            raise BadInput(
                f"--to {args.end!r}: expected an instant not in the future (now is "
                f"{now.isoformat(timespec='seconds')}): a future tick is the scheduler's to run"
            )
        if end < start:
            raise BadInput(
                f"--to {args.end!r}: expected an instant at or after --from {args.start!r}"
            )
        if args.max is not None and args.max < 1:
            raise BadInput(f"--max {args.max}: expected a positive number")
    except BadInput as exc:
        print(f"financial: {exc}", file=sys.stderr)
        return EX_USAGE
    return run_command(settings.worker_event_loop, _backfill(settings, args, spec, start, end))


async def _backfill(
    settings: Settings,
    args: argparse.Namespace,
    spec: JobSpec,
    start: datetime,
    end: datetime,
) -> int:
    from financial.pkg.jobs.model import Trigger
    from financial.pkg.scheduler.store.requests_postgres import PostgresRequestStore

    async with AsyncExitStack() as stack:
        pool = await _open_pool(settings, stack)
        # The ticks of the schedule the cluster runs, not the code's alone.
        spec = await _as_the_cluster_runs_it(settings, spec, pool)
        try:
            ticks = backfill_ticks(spec, start, end)
        except BadInput as exc:
            print(f"financial: {exc}", file=sys.stderr)
            return EX_USAGE
        zone = spec.schedule.zone
        store = PostgresRequestStore(pool)
        succeeded = await store.succeeded_ticks(spec.name, start, end)
        queued = {
            r.tick for r in await store.open_requests(spec.name) if r.trigger is Trigger.BACKFILL
        }
        todo = [t for t in ticks if t not in succeeded and t not in queued]
        done_n = sum(1 for t in ticks if t in succeeded)
        skipped = f"{len(ticks)} tick(s) in range, {done_n} succeeded already, "
        skipped += f"{len(ticks) - len(todo) - done_n} queued already"
        bound = args.max if args.max is not None else BACKFILL_LIMIT
        if args.dry_run:
            for tick in todo:
                print(tick.astimezone(zone).isoformat())
            print(
                f"{spec.name}: {len(todo)} tick(s) would be requested ({skipped}); dry run, "
                "nothing stored",
                file=sys.stderr,
            )
            if len(todo) > bound:
                print(
                    f"financial: above the bound of {bound}: pass --max {len(todo)} to record them",
                    file=sys.stderr,
                )
            return EX_OK
        if len(todo) > bound:
            print(
                f"financial: backfill of {spec.name} from {start.isoformat()} to "
                f"{end.isoformat()}: {len(todo)} ticks to run, above the bound of {bound}; "
                f"expected at most {bound} (pass --max {len(todo)} to record them all)",
                file=sys.stderr,
            )
            return EX_USAGE
        added: list[RunRequest] = []
        if todo:
            added = await store.add(
                spec.name, todo, trigger=Trigger.BACKFILL, requested_by=requested_by(args.by)
            )
        print(f"{spec.name}: {len(added)} backfill run(s) requested ({skipped})")
        if added:
            await _say_if_no_worker(pool)
            _say_if_disabled(spec)
        return EX_OK


async def _as_the_cluster_runs_it(settings: Settings, spec: JobSpec, pool: asyncpg.Pool) -> JobSpec:
    """The job with its runtime settings (`jobs set`, read from the database) over its env and
    code values: the schedule a backfill follows, the enabled flag the workers go by."""
    from financial.cmd.wiring import registry_for
    from financial.pkg.scheduler.job_settings.postgres import PostgresJobSettings
    from financial.pkg.scheduler.loop.job_settings import runtime_spec

    return await runtime_spec(registry_for(settings), spec.name, PostgresJobSettings(pool))


async def _open_pool(settings: Settings, stack: AsyncExitStack) -> asyncpg.Pool:
    # Imported here: runtime brings the health server (aiohttp), which no other command needs.
    from financial.cmd.runtime import open_command_pool

    return await open_command_pool(settings, stack)


async def _run_error(pool: asyncpg.Pool, run_id: str | None) -> str:
    """`: Type: message` of the run's error (masked), or nothing."""
    from financial.pkg.observability.masking import mask_secrets

    if run_id is None:
        return ""
    row = await pool.fetchrow(
        "SELECT error_type, error_message FROM job_runs WHERE run_id = $1::uuid", run_id
    )
    if row is None or row["error_type"] is None:
        return ""
    return f": {row['error_type']}: {mask_secrets(row['error_message'] or '')}"


def _say_if_disabled(spec: JobSpec) -> None:
    if not spec.options.enabled:
        print(
            f"{spec.name} is disabled: workers run its requests only once it is enabled again",
            file=sys.stderr,
        )


async def _say_if_no_worker(pool: asyncpg.Pool) -> None:
    from financial.pkg.database.notifications import LISTENER_PREFIX
    from financial.pkg.scheduler.store.requests_postgres import listeners

    if not await listeners(pool, LISTENER_PREFIX):
        print(
            "no worker is running on this database: the run waits for one "
            "(start `financial worker`)"
        )


async def _follow(store: Any, request_id: str, timeout_s: float) -> RunRequest | None:
    """The request once done or cancelled, polled every `WAIT_POLL_S`; None after `timeout_s`."""
    import asyncio

    deadline = time.monotonic() + timeout_s
    while True:
        request: RunRequest | None = await store.get(request_id)
        if request is not None and not request.state.is_open:
            return request
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(min(WAIT_POLL_S, max(0.0, deadline - time.monotonic())))
