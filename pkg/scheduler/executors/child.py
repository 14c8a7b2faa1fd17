"""The child side of `ProcessExecutor`: what runs in the job's own process.

Kept apart from the parent side and light to import: the fork server preloads this module, so
each run's process starts with it (and structlog) already imported. The job and its context
arrive as data (`ChildCall`); one message goes back on the result pipe (`ChildResult`), then the
process leaves with `os._exit`, so a thread the job left behind cannot hold it.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import pickle
import signal
import sys
import traceback
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

import structlog

from financial.pkg.jobs.context import JobContext
from financial.pkg.jobs.job import job_target
from financial.pkg.jobs.model import Trigger
from financial.pkg.observability.logging import configure_logging


@dataclass(frozen=True, slots=True)
class ChildCall:
    """One attempt, as data: the pickled job, a plain copy of the context's fields, the fields
    the parent's log lines carry (job, run_id, scheduled_at, attempt, trace ids) and how to log."""

    job: bytes
    job_name: str
    run_id: str
    scheduled_at: datetime
    attempt: int
    deadline: datetime
    trigger: Trigger
    log_fields: dict[str, Any]
    log_level: str
    log_format: str
    stopping: bool = False


READY = "ready"
"""The child's first message: its SIGTERM handler is in place, so SIGTERM now means "stop
early" (before it, SIGTERM's default action would end the child at once)."""


@dataclass(frozen=True, slots=True)
class ChildResult:
    """How the attempt ended in the child: `error_type` is None on success."""

    error_type: str | None = None
    message: str = ""
    traceback: str = ""


def child_main(call: ChildCall, results: Connection) -> None:
    """Entry point of the job's process (a `multiprocessing.Process` target)."""
    stopping = asyncio.Event()
    # SIGTERM asks the job to finish early (ctx.stopping), as the worker's own shutdown does;
    # the parent sends SIGKILL after its grace if the job does not return.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
    if call.stopping:
        stopping.set()  # the worker was draining already when the run started
    results.send(READY)
    try:
        configure_logging(call.log_level, call.log_format)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**call.log_fields, child_pid=os.getpid())
        job = pickle.loads(call.job)
        ctx = JobContext(
            job_name=call.job_name,
            run_id=call.run_id,
            scheduled_at=call.scheduled_at,
            attempt=call.attempt,
            deadline=call.deadline,
            trigger=call.trigger,
            log=structlog.get_logger("financial.job").bind(),
            stopping=stopping,
        )
        target = job_target(job)
        if target.is_async:
            asyncio.run(_run_async(target.call, ctx))
        else:
            outcome = target.call(ctx)
            if inspect.isawaitable(outcome):
                asyncio.run(_await(outcome))
        result = ChildResult()
    except BaseException as exc:  # SystemExit too: every exception is the job's
        result = ChildResult(type(exc).__name__, str(exc), traceback.format_exc())
    try:
        results.send(result)
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(0)


def warm_up() -> None:
    """A child that does nothing: the fork server has finished preloading once it ran."""


async def _run_async(call: Any, ctx: JobContext) -> None:
    # In the loop, the signal goes through the loop's own handler: setting an asyncio.Event from
    # a plain signal handler could run in the middle of the loop's bookkeeping.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, ctx.stopping.set)
    await call(ctx)


async def _await(awaitable: Any) -> None:
    await awaitable
