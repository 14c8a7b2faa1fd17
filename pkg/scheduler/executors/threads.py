"""`ThreadExecutor`: the worker's own pool of daemon threads for blocking jobs.

Why not asyncio's default executor (`asyncio.to_thread`): a blocking job that never returns keeps
its thread there for good, a handful of them starve every other blocking job, and the interpreter
joins those threads at exit (`concurrent.futures` registers an atexit hook that joins its
workers, and `asyncio.run` joins the default executor), so a stop takes as long as the slowest
thread. Here every thread is a daemon thread that nothing joins, and a thread whose run was
abandoned (its timeout, or shutdown, cancelled the await) is counted *stuck*: it no longer
counts against the pool, which starts another thread in its place when work needs one, up to
`max_threads` alive in all. The stuck thread rejoins the pool when its call returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import structlog

from financial.pkg.jobs.context import JobContext
from financial.pkg.jobs.job import Job, job_target

log = structlog.get_logger("financial.executor")

# An idle thread beyond what the pool needs leaves after this long, so that the replacements of
# stuck threads that came back do not stay forever.
IDLE_TIMEOUT_S = 60.0


class _State(Enum):
    QUEUED = "queued"
    RUNNING = "running"
    ABANDONED = "abandoned"  # its await was cancelled before a thread took it: never runs
    DONE = "done"


@dataclass(eq=False, slots=True)
class _Work:
    call: Callable[[JobContext], Any]
    ctx: JobContext
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    context: contextvars.Context
    state: _State = _State.QUEUED
    stuck_since: float | None = None
    job: str = field(init=False)

    def __post_init__(self) -> None:
        self.job = self.ctx.job_name


class ThreadExecutor:
    """Blocking jobs on daemon threads: `size` threads for work, plus replacements for stuck ones.

    `size` is the number of threads doing live work at once (`WORKER_THREAD_POOL_SIZE`, by
    default the concurrency cap, so a run that has a slot always finds a thread); at most
    `max_threads` (default twice `size`) are alive in all, stuck ones included. Past that bound
    new work waits in the queue for a thread, and a run whose thread never comes times out.
    `stuck_threads` (and `stuck_by_job()`) is what the metric and the status page show.
    """

    def __init__(
        self,
        size: int,
        *,
        max_threads: int | None = None,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        name: str = "job",
    ) -> None:
        if size < 1:
            raise ValueError(f"thread pool size {size}: expected at least 1")
        self.size = size
        self.max_threads = max(size, max_threads if max_threads is not None else 2 * size)
        self._idle_timeout_s = idle_timeout_s
        self._name = name
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._alive = 0
        self._idle = 0  # threads waiting for work that no queued item has claimed yet
        self._stuck: Counter[str] = Counter()
        self._serial = 0
        self._closed = False
        self._saturated_logged = False

    # -- what the metric and the status page read -----------------------------------------------

    @property
    def stuck_threads(self) -> int:
        """Threads still running a call whose run was abandoned (timed out, or shutdown)."""
        with self._lock:
            return sum(self._stuck.values())

    def stuck_by_job(self) -> dict[str, int]:
        """Stuck threads by job name (jobs with none left out)."""
        with self._lock:
            return {job: n for job, n in self._stuck.items() if n > 0}

    @property
    def alive_threads(self) -> int:
        """Threads alive now, idle, working and stuck."""
        with self._lock:
            return self._alive

    # -- Executor ---------------------------------------------------------------------------------

    def caller(self, job: Job) -> Callable[[JobContext], Any]:
        """Run `job`'s blocking callable on a pool thread; cancelling the await abandons it."""
        call = job_target(job).call

        async def in_thread(ctx: JobContext) -> None:
            result = await self.submit(call, ctx)
            if inspect.isawaitable(result):
                await result  # a plain `def` that returned a coroutine

        return in_thread

    async def submit(self, call: Callable[[JobContext], Any], ctx: JobContext) -> Any:
        """Run `call(ctx)` on a pool thread and return its result (or raise its exception).

        The run's contextvars (structlog's bound fields) go with it, as `asyncio.to_thread`
        does. Cancelled while queued, the call never runs; cancelled while running, its thread
        is counted stuck until the call returns.
        """
        loop = asyncio.get_running_loop()
        work = _Work(call, ctx, loop.create_future(), loop, contextvars.copy_context())
        self._put(work)
        try:
            return await work.future
        except asyncio.CancelledError:
            self._abandon(work)
            raise

    def close(self) -> None:
        """Stop taking work and let idle threads leave. Nothing is joined: a stuck thread is a
        daemon thread and ends with the process."""
        with self._lock:
            self._closed = True
            idle = self._idle
        for _ in range(idle):
            self._queue.put(None)

    # -- inside -----------------------------------------------------------------------------------

    def _put(self, work: _Work) -> None:
        start = False
        with self._lock:
            if self._closed:
                raise RuntimeError("the thread pool is closed")
            self._queue.put(work)
            if self._idle > 0:
                self._idle -= 1  # an idle thread will take it
            elif self._alive - sum(self._stuck.values()) < self.size:
                if self._alive < self.max_threads:
                    self._alive += 1
                    self._serial += 1
                    start = True
                elif not self._saturated_logged:
                    self._saturated_logged = True
                    log.error(
                        "executor_threads_exhausted",
                        alive=self._alive,
                        stuck=sum(self._stuck.values()),
                        max_threads=self.max_threads,
                    )
            serial = self._serial
        if start:
            thread = threading.Thread(
                target=self._worker, name=f"{self._name}-{serial}", daemon=True
            )
            thread.start()

    def _abandon(self, work: _Work) -> None:
        with self._lock:
            if work.state is _State.QUEUED:
                work.state = _State.ABANDONED
                return
            if work.state is not _State.RUNNING:
                return
            work.stuck_since = time.perf_counter()
            self._stuck[work.job] += 1
            stuck = sum(self._stuck.values())
        log.warning(
            "executor_thread_stuck",
            job=work.job,
            run_id=work.ctx.run_id,
            stuck_threads=stuck,
            reason="the run was abandoned while its thread still runs the job",
        )

    def _worker(self) -> None:
        while True:
            try:
                work = self._queue.get(timeout=self._idle_timeout_s)
            except queue.Empty:
                with self._lock:
                    # Leave only when no queued item counts on this thread.
                    if self._idle > 0 and self._queue.empty():
                        self._idle -= 1
                        self._alive -= 1
                        return
                continue
            if work is None:
                with self._lock:
                    self._alive -= 1
                return
            self._run(work)
            with self._lock:
                if self._closed:
                    self._alive -= 1
                    return
                self._idle += 1

    def _run(self, work: _Work) -> None:
        with self._lock:
            if work.state is _State.ABANDONED:
                return
            work.state = _State.RUNNING
        try:
            result = work.context.run(work.call, work.ctx)
        except BaseException as exc:  # handed to the awaiting side, as it is
            _settle(work, None, exc)
        else:
            _settle(work, result, None)
        with self._lock:
            work.state = _State.DONE
            stuck_since = work.stuck_since
            if stuck_since is not None:
                self._stuck[work.job] -= 1
                if self._stuck[work.job] <= 0:
                    del self._stuck[work.job]
                stuck = sum(self._stuck.values())
                self._saturated_logged = False  # a thread came back: say so again next time
        if stuck_since is not None:
            log.info(
                "executor_thread_released",
                job=work.job,
                run_id=work.ctx.run_id,
                stuck_for_ms=round((time.perf_counter() - stuck_since) * 1000.0, 3),
                stuck_threads=stuck,
            )


def _settle(work: _Work, result: Any, error: BaseException | None) -> None:
    def settle() -> None:
        if work.future.done():  # the await was cancelled
            return
        if error is not None:
            work.future.set_exception(error)
        else:
            work.future.set_result(result)

    # The loop may be closed by now (the worker exited while this thread was stuck).
    with contextlib.suppress(RuntimeError):
        work.loop.call_soon_threadsafe(settle)
