"""`jobs requests` and `jobs cancel`: a job's queue of run requests, and withdrawing from it.

`jobs requests` lists the job's open requests (pending and claimed) in the order they run.
`jobs cancel` withdraws pending ones; a request a worker has claimed already is left to run (the
database decides a cancel racing a claim: `RequestStore.cancel`). Bad input (no `--request` nor
`--all`, a malformed id, an id that is not one of the job's requests) is refused before anything
changes, with exit 2. Like the other `jobs` commands, this module imports the standard library
alone until a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from financial.cmd.errors import EX_FAILED, EX_OK, EX_USAGE, run_command

if TYPE_CHECKING:
    from financial.configs import Settings
    from financial.pkg.scheduler.registry import JobSpec
    from financial.pkg.scheduler.store.requests import Cancellation, RunRequest

DEFAULT_LIST_LIMIT = 50
ARGS_SHORT_CHARS = 40
TRIGGER_CHOICES = ("manual", "backfill")


class BadInput(ValueError):
    """An option with a value the command cannot take; the message names both."""


def add_arguments(jobs: Any, job_metavar: str) -> None:
    """`jobs requests` and `jobs cancel` on the `jobs` subparsers."""
    listing = jobs.add_parser(
        "requests", help="a job's queued run requests (pending and claimed), in the order they run"
    )
    listing.add_argument("name", metavar=job_metavar)
    listing.add_argument(
        "--limit", type=int, default=DEFAULT_LIST_LIMIT, help="how many (default 50)"
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(command=jobs_requests)
    cancel = jobs.add_parser(
        "cancel", help="withdraw a job's pending run requests (a claimed one runs on)"
    )
    cancel.add_argument("name", metavar=job_metavar)
    which = cancel.add_mutually_exclusive_group()
    which.add_argument(
        "--request",
        action="append",
        metavar="ID",
        dest="request_ids",
        help="a request id (from `jobs requests`); repeat for several",
    )
    which.add_argument("--all", action="store_true", help="every pending request of the job")
    cancel.add_argument("--trigger", choices=TRIGGER_CHOICES, help="only requests of this trigger")
    cancel.add_argument("--by", help="who cancels (default: OS user@host)")
    cancel.add_argument("--reason", help="why; kept on each request cancelled")
    cancel.set_defaults(command=jobs_cancel)


def parse_request_ids(values: Sequence[str] | None, all_pending: bool) -> list[str] | None:
    """The ids given with `--request` (None with `--all`), each a UUID, in order, once each."""
    if not values and not all_pending:
        raise BadInput(
            "jobs cancel: expected --request ID (repeat it for several) or --all; "
            "`financial jobs requests NAME` lists the ids"
        )
    if all_pending:
        return None
    parsed: list[str] = []
    for value in values or ():
        try:
            parsed.append(str(uuid.UUID(value.strip())))
        except ValueError:
            raise BadInput(
                f"--request {value!r}: expected a request id (a UUID such as "
                "3f2b8c1e-6d4a-4b7e-9c2d-1a5e8f0b7c63, from `financial jobs requests NAME`)"
            ) from None
    return list(dict.fromkeys(parsed))


def check_ids_are_the_job_s(
    job: str, request_ids: Sequence[str], found: Sequence[RunRequest | None]
) -> list[str]:
    """A message per id that names no request of `job` (unknown, or another job's)."""
    errors: list[str] = []
    for request_id, request in zip(request_ids, found, strict=True):
        if request is None:
            errors.append(f"--request {request_id}: no such request; expected one of {job}'s")
        elif request.job != job:
            errors.append(
                f"--request {request_id}: a request of {request.job}, not of {job}; "
                f"expected one of {job}'s (`financial jobs requests {job}`)"
            )
    return errors


def request_dict(request: RunRequest) -> dict[str, Any]:
    """One open request as `jobs requests --json` prints it."""
    return {
        "request_id": request.request_id,
        "job": request.job,
        "tick": request.tick.isoformat(),
        "trigger": request.trigger.value,
        "state": request.state.value,
        "requested_by": request.requested_by,
        "requested_at": request.requested_at.isoformat(),
        "claimed_by": request.claimed_by,
        "args": dict(request.args),
    }


def short_args(args: Any) -> str:
    """The args as compact JSON, cut to `ARGS_SHORT_CHARS`; `-` when there are none."""
    if not args:
        return "-"
    text = json.dumps(dict(args), separators=(",", ":"), sort_keys=True)
    if len(text) <= ARGS_SHORT_CHARS:
        return text
    return text[: ARGS_SHORT_CHARS - 3] + "..."


def requests_table(found: Sequence[RunRequest]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of `jobs requests`."""
    from financial.cmd.history import instant

    headers = ["REQUEST", "TICK", "TRIGGER", "STATE", "REQUESTED BY", "REQUESTED AT"]
    headers += ["CLAIMED BY", "ARGS"]
    rows = [
        [
            r.request_id,
            instant(r.tick),
            r.trigger.value,
            r.state.value,
            r.requested_by,
            instant(r.requested_at),
            r.claimed_by or "-",
            short_args(r.args),
        ]
        for r in found
    ]
    return headers, rows


@dataclass(slots=True)
class CancelReport:
    """What `jobs cancel` prints, and its exit code."""

    lines: list[str] = field(default_factory=list)
    code: int = EX_OK


def cancel_report(
    job: str,
    asked: Sequence[str] | None,
    trigger: str | None,
    result: Cancellation,
    timeout_s: float,
) -> CancelReport:
    """The report of a cancel of `asked` (None: `--all`): how many were cancelled, and a line
    for each request left (claimed, done, cancelled already, of the other trigger). Exit 1
    when nothing could be cancelled because every request asked for was left."""
    from financial.cmd.history import instant
    from financial.pkg.scheduler.store.requests import RequestState

    kind = f"{trigger} " if trigger else ""
    report = CancelReport()
    n = len(result.cancelled)
    report.lines.append(f"{job}: {n} pending {kind}request(s) cancelled")
    report.lines += [
        f"  cancelled request {r.request_id} (tick {instant(r.tick)})"
        for r in (result.cancelled if asked is not None else ())
    ]
    claimed = [r for r in result.left if r.state is RequestState.CLAIMED]
    if claimed:
        report.lines.append(
            f"{job}: {len(claimed)} request(s) claimed by a worker already, not cancelled: "
            f"each run goes on until it ends, at the latest at the job's timeout ({timeout_s:g}s) "
            "or when its worker's shutdown drain interrupts it; `financial jobs history "
            f"{job}` shows how it ended"
        )
        report.lines += [
            f"  request {r.request_id} (tick {instant(r.tick)}) claimed by {r.claimed_by}"
            for r in claimed
        ]
    for r in result.left:
        if r.state is RequestState.CLAIMED:
            continue
        if r.state is RequestState.DONE:
            status = r.status.value if r.status is not None else "unknown"
            note = f"done already ({status}, run {r.run_id or '-'}): nothing to cancel"
        elif r.state is RequestState.CANCELLED:
            note = f"cancelled already by {r.cancelled_by} at {instant(r.finished_at)}"
        elif r.job != job:
            note = f"a request of {r.job}, not of {job}: left alone"
        else:
            note = f"a {r.trigger.value} request, not {trigger}: left pending"
        report.lines.append(f"{job}: request {r.request_id}: {note}")
    report.lines += [
        f"{job}: request {request_id}: no such request (pruned?): nothing to cancel"
        for request_id in result.unknown
    ]
    if n == 0 and (result.left or result.unknown):
        report.code = EX_FAILED
    return report


def jobs_requests(args: argparse.Namespace, settings: Settings) -> int:
    from financial.cmd.jobs import _find_job, report_logging

    report_logging(settings)
    spec = _find_job(settings, args.name)
    if spec is None:
        return EX_USAGE
    if args.limit < 1:
        print(f"financial: --limit {args.limit}: expected a positive number", file=sys.stderr)
        return EX_USAGE
    return run_command(settings.worker_event_loop, _list(settings, args, spec))


async def _list(settings: Settings, args: argparse.Namespace, spec: JobSpec) -> int:
    from financial.cmd.jobs import print_table
    from financial.cmd.requests import _open_pool
    from financial.pkg.scheduler.store.requests import first_open
    from financial.pkg.scheduler.store.requests_postgres import PostgresRequestStore

    async with AsyncExitStack() as stack:
        store = PostgresRequestStore(await _open_pool(settings, stack))
        found, total = await first_open(store, spec.name, args.limit)
    if args.json:
        print(json.dumps([request_dict(r) for r in found], indent=2))
        return EX_OK
    if not found:
        print(f"{spec.name}: no open requests (none pending or claimed)")
        return EX_OK
    print_table(*requests_table(found))
    if total > len(found):
        print(f"{spec.name}: {len(found)} of {total} open requests shown (--limit {total} for all)")
    return EX_OK


def jobs_cancel(args: argparse.Namespace, settings: Settings) -> int:
    from financial.cmd.jobs import _find_job, report_logging

    report_logging(settings)
    spec = _find_job(settings, args.name)
    if spec is None:
        return EX_USAGE
    try:
        request_ids = parse_request_ids(args.request_ids, args.all)
    except BadInput as exc:
        print(f"financial: {exc}", file=sys.stderr)
        return EX_USAGE
    return run_command(settings.worker_event_loop, _cancel(settings, args, spec, request_ids))


async def _cancel(
    settings: Settings, args: argparse.Namespace, spec: JobSpec, request_ids: list[str] | None
) -> int:
    from financial.cmd.requests import _as_the_cluster_runs_it, _open_pool, requested_by
    from financial.pkg.jobs.model import Trigger
    from financial.pkg.scheduler.store.requests_postgres import PostgresRequestStore

    async with AsyncExitStack() as stack:
        pool = await _open_pool(settings, stack)
        store = PostgresRequestStore(pool)
        if request_ids is not None:
            found = [await store.get(request_id) for request_id in request_ids]
            errors = check_ids_are_the_job_s(spec.name, request_ids, found)
            if errors:
                for error in errors:
                    print(f"financial: {error}", file=sys.stderr)
                print("financial: nothing cancelled", file=sys.stderr)
                return EX_USAGE
        reason = args.reason.strip() if args.reason and args.reason.strip() else None
        result = await store.cancel(
            spec.name,
            request_ids,
            trigger=Trigger(args.trigger) if args.trigger else None,
            cancelled_by=requested_by(args.by),
            reason=reason,
        )
        timeout_s = (await _as_the_cluster_runs_it(settings, spec, pool)).timeout.total_seconds()
    report = cancel_report(spec.name, request_ids, args.trigger, result, timeout_s)
    for line in report.lines:
        print(line)
    return report.code
