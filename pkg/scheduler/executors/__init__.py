"""Where a job's attempts run: the event loop, the worker's thread pool, or a child process.

An `Executor` answers one question, once per job: how to run one attempt of it, as an async
callable `call(ctx)`. Awaiting it returns when the job returns and raises what the job raised;
cancelling the await (the run's timeout, shutdown, a `replace` tick) stops the waiting at once,
and stops the work itself where that is possible: a coroutine is cancelled, a child process is
terminated; a thread cannot be stopped, so the pool counts it stuck and carries on without it.

`Executors` holds the worker's three and picks one per job from its `executor` option
(`resolve_executor`): the loop for async jobs, `WORKER_DEFAULT_EXECUTOR` for blocking ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from financial.pkg.jobs.context import JobContext
from financial.pkg.jobs.job import Job, job_target, resolve_executor
from financial.pkg.jobs.model import ExecutorKind
from financial.pkg.scheduler.executors.process import (
    JobProcessDied,
    JobProcessError,
    ProcessExecutor,
    RemoteTraceback,
)
from financial.pkg.scheduler.executors.threads import ThreadExecutor

__all__ = [
    "Executor",
    "Executors",
    "JobCall",
    "JobProcessDied",
    "JobProcessError",
    "LoopExecutor",
    "ProcessExecutor",
    "RemoteTraceback",
    "ThreadExecutor",
]

JobCall = Callable[[JobContext], Awaitable[None]]

# Threads of the pool `Executors()` builds when given none (unit tests, tools).
DEFAULT_POOL_SIZE = 10


class Executor(Protocol):
    """Runs a job's attempts somewhere."""

    def caller(self, job: Job) -> Callable[[JobContext], Any]:
        """How to run one attempt of `job` here, decided once per job: `await call(ctx)`
        returns its result or raises its exception; cancelling the await stops waiting (and
        stops the work where that is possible)."""
        ...


class LoopExecutor:
    """Async jobs, awaited on the event loop: the job's coroutine function itself, so a run
    costs nothing more than it did without executors."""

    def caller(self, job: Job) -> Callable[[JobContext], Any]:
        target = job_target(job)
        if not target.is_async:
            raise TypeError(f"job {job.name!r} is blocking: it cannot run on the event loop")
        return target.call


class Executors:
    """The worker's executors, one per `ExecutorKind`, and the choice among them per job.

    Built by `cmd/worker.py` from settings and closed on its exit stack (`close()`: stuck
    threads are not joined, children are terminated). `Executors()` gives a default set for
    unit tests and tools.
    """

    def __init__(
        self,
        *,
        threads: ThreadExecutor | None = None,
        processes: ProcessExecutor | None = None,
        blocking_default: ExecutorKind = ExecutorKind.THREAD,
    ) -> None:
        self.loop = LoopExecutor()
        self.threads = threads if threads is not None else ThreadExecutor(DEFAULT_POOL_SIZE)
        self.processes = processes if processes is not None else ProcessExecutor()
        self.blocking_default = blocking_default

    def kind_of(self, job: Job, declared: ExecutorKind | None) -> ExecutorKind:
        """The executor `job` runs on (its own `executor` option, else the defaults)."""
        return resolve_executor(job, declared, self.blocking_default)

    def get(self, kind: ExecutorKind) -> Executor:
        """The executor of one kind."""
        if kind is ExecutorKind.LOOP:
            return self.loop
        if kind is ExecutorKind.THREAD:
            return self.threads
        return self.processes

    def for_job(self, job: Job, declared: ExecutorKind | None) -> Executor:
        """The executor `job` runs on, given the `executor` option it declares."""
        return self.get(self.kind_of(job, declared))

    @property
    def stuck_threads(self) -> int:
        """Threads of the pool still running an abandoned run (the metric, the status page)."""
        return self.threads.stuck_threads

    async def start(self, jobs: Iterable[tuple[Job, ExecutorKind | None]]) -> None:
        """Start the fork server when some job runs in a process (preloading their modules)."""
        process_jobs = [
            job for job, declared in jobs if self.kind_of(job, declared) is ExecutorKind.PROCESS
        ]
        if process_jobs:
            await self.processes.start(process_jobs)

    async def close(self) -> None:
        """Terminate child processes; let the pool's idle threads go, join none."""
        self.threads.close()
        await asyncio.shield(self.processes.close())
