"""`ProcessExecutor`: a job that must be stoppable runs in a child process of its own.

At the run's timeout and at shutdown (both cancel the await) the child gets SIGTERM, which sets
its `ctx.stopping`, then SIGKILL after `kill_grace_s`; the await ends only once the child is
gone, so a run recorded `timed_out` or `interrupted` has really stopped. When the worker begins
to drain, the child gets SIGTERM at once too, as in-process jobs see `ctx.stopping` set.

Start method: `forkserver`. Forking the worker itself is unsafe (it runs an event loop and
threads: a lock held by another thread at fork time stays held in the child forever), and
`spawn` starts a fresh interpreter that imports the job's modules on every run. The fork server
is a single-threaded process started once (`start`), with the child module and the modules of
the process jobs preloaded, which forks one child per run. What a run costs is measured in the
README.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import structlog

from financial.pkg.jobs.context import JobContext
from financial.pkg.jobs.job import FunctionJob, Job
from financial.pkg.scheduler.executors.child import (
    READY,
    ChildCall,
    ChildResult,
    child_main,
    warm_up,
)

log = structlog.get_logger("financial.executor")

CHILD_MODULE = "financial.pkg.scheduler.executors.child"
# After SIGKILL, how long to wait for the fork server to report the child gone.
KILLED_WAIT_S = 5.0
# How long the fork server may take to start and preload the modules (imports, on a busy host).
WARM_UP_TIMEOUT_S = 120.0
# Names of remote exception types rebuilt as classes; past this, the base class is used.
MAX_REMOTE_TYPES = 256


class JobProcessError(Exception):
    """An exception the job raised in its child process, rebuilt in the worker.

    Its class is named as the child's exception (`ValueError`, `SystemExit`...), so the run's
    record and log line name the job's own error; `__cause__` is a `RemoteTraceback` holding
    the child's formatted traceback, which the `job_failed` log line prints.
    """

    remote_traceback: str = ""


class RemoteTraceback(Exception):
    """The child's traceback, as text (what `concurrent.futures` does for its processes)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


class JobProcessDied(Exception):
    """The job's process ended without a result: killed by a signal, or a non-zero exit."""


_remote_types: dict[str, type[JobProcessError]] = {}


def remote_error(result: ChildResult) -> JobProcessError:
    """The exception to raise in the worker for a child's failed `result`."""
    name = result.error_type or "JobProcessError"
    cls = _remote_types.get(name)
    if cls is None:
        if len(_remote_types) < MAX_REMOTE_TYPES and name.isidentifier():
            cls = _remote_types[name] = type(name, (JobProcessError,), {"__module__": "child"})
        else:
            cls = JobProcessError
    error = cls(result.message)
    error.remote_traceback = result.traceback
    error.__cause__ = RemoteTraceback(result.traceback)
    return error


class ProcessExecutor:
    """Runs each attempt of a job in a child process forked by a fork server.

    `kill_grace_s` (`WORKER_PROCESS_KILL_GRACE_SECONDS`) is how long a child may take to leave
    after SIGTERM. `log_level` and `log_format` configure the child's structlog as the worker's.
    """

    def __init__(
        self,
        *,
        kill_grace_s: float = 5.0,
        log_level: str = "INFO",
        log_format: str = "json",
        start_method: str = "forkserver",
    ) -> None:
        self.kill_grace_s = kill_grace_s
        self._log_level = log_level
        self._log_format = log_format
        self._mp: Any = multiprocessing.get_context(start_method)
        self._children: set[_Child] = set()

    @property
    def running_children(self) -> int:
        """Child processes alive now (running a job, or being stopped)."""
        return len(self._children)

    async def start(self, jobs: Iterable[Job] = ()) -> None:
        """Start the fork server with the child module and `jobs`' modules preloaded, so the
        first run does not pay for it (blocking work: done on a thread, once, at start)."""
        modules = {CHILD_MODULE, *(_module_of(job) for job in jobs), *_main_imports()}
        if hasattr(self._mp, "set_forkserver_preload"):
            self._mp.set_forkserver_preload(sorted(modules))
        # One child that does nothing: `start()` of the first blocks until the fork server has
        # preloaded, which must not happen on the event loop nor in a run's time.
        process: BaseProcess = self._mp.Process(target=warm_up, name="job-warm-up")
        await asyncio.to_thread(process.start)
        child = _Child(process)
        if await child.wait(WARM_UP_TIMEOUT_S):
            child.release()
        else:
            self._children.add(child)

    def caller(self, job: Job) -> Callable[[JobContext], Any]:
        """Run each attempt of `job` in a child process."""

        async def in_process(ctx: JobContext) -> None:
            await self.run(job, ctx)

        return in_process

    async def run(self, job: Job, ctx: JobContext) -> None:
        """Run one attempt of `job` in a child; raise what it raised (as `JobProcessError`),
        or `JobProcessDied`. Cancelled, the child is stopped before the cancellation goes on."""
        call = ChildCall(
            job=pickle.dumps(job),
            job_name=ctx.job_name,
            run_id=ctx.run_id,
            scheduled_at=ctx.scheduled_at,
            attempt=ctx.attempt,
            deadline=ctx.deadline,
            trigger=ctx.trigger,
            log_fields=dict(structlog.contextvars.get_contextvars()),
            log_level=self._log_level,
            log_format=self._log_format,
            stopping=ctx.stopping.is_set(),
        )
        reader, writer = self._mp.Pipe(duplex=False)
        process: BaseProcess = self._mp.Process(
            target=child_main, args=(call, writer), name=f"job-{ctx.job_name}"
        )
        try:
            # A fork from the fork server: a round trip on a Unix socket, about a millisecond.
            process.start()
        except BaseException:
            reader.close()
            raise
        finally:
            writer.close()  # the child holds its own end: EOF here once it is gone
        child = _Child(process)
        self._children.add(child)
        forward = asyncio.ensure_future(_forward_stopping(ctx, child))
        try:
            result = await self._result(child, reader)
        except asyncio.CancelledError:
            stop = asyncio.ensure_future(self._stop(child, ctx))
            while not stop.done():
                try:
                    await asyncio.shield(stop)
                except asyncio.CancelledError:
                    # Cancelled again while its timeout stops it: the shutdown deadline passed,
                    # so no more grace. The stop still ends before the run does.
                    child.signal(signal.SIGKILL)
            raise
        finally:
            forward.cancel()
            reader.close()
            if child.exited.done():
                self._children.discard(child)
                child.release()
        if result is None:
            raise JobProcessDied(_death(child.exitcode))
        if result.error_type is not None:
            raise remote_error(result)

    async def close(self) -> None:
        """Stop every child still running at once (SIGKILL: the drain is over, and each had
        SIGTERM when it began); never left behind, since multiprocessing's exit hook would
        otherwise join them."""
        await asyncio.gather(*(self._kill(child, None) for child in list(self._children)))

    # -- inside -----------------------------------------------------------------------------------

    async def _result(self, child: _Child, reader: Connection) -> ChildResult | None:
        result: ChildResult | None = None
        while result is None:
            if not reader.poll():
                if child.exited.done():
                    break  # gone, and nothing more to read
                await _readable_or(reader.fileno(), child.exited)
                continue
            try:
                message = reader.recv()
            except (EOFError, OSError):
                break  # the child is gone without a result
            if message == READY:
                child.ready.set()
            else:
                result = message
        # The child leaves right after its message; one that lingers is stopped.
        if not await child.wait(self.kill_grace_s):
            await self._stop(child, None)
        return result

    async def _stop(self, child: _Child, ctx: JobContext | None) -> None:
        """SIGTERM, then SIGKILL after the grace; returns once the child is gone (or the fork
        server has not reported it within `KILLED_WAIT_S` of the SIGKILL)."""
        if child.exited.done():
            return
        if ctx is not None and ctx.stopping.is_set() and child.terminated:
            # The drain began with its SIGTERM, and its deadline has passed: that was the grace.
            await self._kill(child, ctx)
            return
        child.signal(signal.SIGTERM)
        if await child.wait(self.kill_grace_s):
            fields = _fields(ctx)
            log.info("job_process_terminated", pid=child.pid, exit_code=child.exitcode, **fields)
            return
        await self._kill(child, ctx)

    async def _kill(self, child: _Child, ctx: JobContext | None) -> None:
        if child.exited.done():
            return
        child.signal(signal.SIGKILL)
        log.warning("job_process_killed", pid=child.pid, grace_s=self.kill_grace_s, **_fields(ctx))
        await child.wait(KILLED_WAIT_S)


class _Child:
    """A job's process and one watch on its sentinel: `exited` is set once it is gone, for every
    waiter at once (the loop keeps one reader per file descriptor)."""

    def __init__(self, process: BaseProcess) -> None:
        self.process = process
        self.pid = process.pid
        self.exitcode: int | None = None
        self._loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[None] = self._loop.create_future()
        self.ready = asyncio.Event()  # its SIGTERM handler is in place
        self.terminated = False  # it was sent SIGTERM
        self._sentinel = process.sentinel
        self._loop.add_reader(self._sentinel, self._check)

    def _check(self) -> None:
        exitcode = self.process.exitcode  # reads the status the fork server wrote
        if exitcode is None:
            return
        self.exitcode = exitcode
        self._loop.remove_reader(self._sentinel)
        if not self.exited.done():
            self.exited.set_result(None)

    async def wait(self, timeout_s: float) -> bool:
        """Whether the child is gone within `timeout_s`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.exited), timeout_s)
        return self.exited.done()

    def signal(self, signum: int) -> None:
        if self.exited.done() or self.pid is None:
            return
        self.terminated = self.terminated or signum == signal.SIGTERM
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def release(self) -> None:
        """Free the process object once the child is gone."""
        self.process.close()


def _fields(ctx: JobContext | None) -> dict[str, str]:
    return {} if ctx is None else {"job": ctx.job_name, "run_id": ctx.run_id}


async def _forward_stopping(ctx: JobContext, child: _Child) -> None:
    # Before the child is ready, SIGTERM would end it: it learns of the drain from its call.
    await child.ready.wait()
    await ctx.stopping.wait()
    child.signal(signal.SIGTERM)


async def _readable_or(fd: int, done: asyncio.Future[None]) -> None:
    """Wait until `fd` is readable (the result pipe) or `done` (the child is gone)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake(*_: object) -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    done.add_done_callback(wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
        done.remove_done_callback(wake)


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the job's process was killed by {name} (exit code {exitcode})"
    return f"the job's process exited with code {exitcode} without a result"


def _main_imports() -> set[str]:
    """The modules the parent's `__main__` takes its functions from.

    Every child runs the parent's main script again as `__mp_main__` (its `if __name__ ==
    "__main__"` guard keeps it from doing anything), and the fork server of Python 3.11 does
    not preload the script itself. The `financial` script is three lines that import
    `financial.cmd.cli`, a second of imports on a small host: with that module preloaded,
    running the script again costs nothing.
    """
    main = sys.modules.get("__main__")
    found = set()
    for value in vars(main).values() if main is not None else ():
        module = getattr(value, "__module__", None)
        if callable(value) and isinstance(module, str) and module not in ("__main__", "builtins"):
            found.add(module)
    return found


def _module_of(job: Job) -> str:
    target: object = job.func if isinstance(job, FunctionJob) else type(job)
    return str(getattr(target, "__module__", CHILD_MODULE))
