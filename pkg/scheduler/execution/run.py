"""One run of one job for one tick, and everything about it on one object.

A `Run` is made when its tick is dispatched and lives until its final status is recorded. The runs
due at one instant are claimed together, before any of them has a task (`TickRunner.run_batch`);
each claimed one is then carried by a task of its own, `attach`ed to it.

It holds what the run machinery knows of it: the row the store answered (`record`, which changes
from attempt to attempt), its lease, whether it holds a slot under the concurrency cap, its start
ticket (`starts_first.py`), the `running` mark and the end on their way to the store, and why it
was cancelled. It moves through `RunState`s in order; nothing is kept about it in tables keyed by
its task, and nothing refers to it once it is final.

The chain (`chain.py`) sees only the job's context: it never reaches back for its run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from financial.pkg.jobs.context import NO_ARGS
from financial.pkg.scheduler.execution.starts_first import StartTicket
from financial.pkg.scheduler.registry import JobSpec
from financial.pkg.scheduler.store import RunRecord


class RunState(StrEnum):
    """Where a run is, in the order it goes through them; any may go straight to `final`."""

    CLAIMING = "claiming"  # its claim is on its way to the store
    CLAIMED = "claimed"  # the store made the tick this worker's
    ADMITTED = "admitted"  # the overlap policy let it go on
    WAITING_FOR_SLOT = "waiting_for_slot"  # under the concurrency cap
    RUNNING = "running"  # its job is running (an attempt)
    ENDING = "ending"  # its job returned; its end is on its way to the store
    FINAL = "final"  # its final status is recorded (or left to the sweep: lease lost)


@dataclass(slots=True)
class Lease:
    """The lease of the run's current row, as this worker knows it."""

    run_id: str
    fence: int
    # Local instant (the keeper's clock) until which the lease is certainly ours: the store set
    # its expiry from an instant after the request that got it was sent.
    valid_until: datetime
    # False once the run is being recorded: it is then never cancelled for its lease.
    cancellable: bool = True


@dataclass(slots=True, eq=False)
class Run:
    """One run of `job` for one tick, through its attempts; see the module's docstring."""

    job: str
    task: asyncio.Task[object] | None = None
    ticket: StartTicket | None = None
    state: RunState = RunState.CLAIMING
    record: RunRecord | None = None
    lease: Lease | None = None
    holds_slot: bool = False
    # The `running` mark on its way (a batched store: the job starts without waiting for it).
    starting: asyncio.Future[RunRecord | None] | None = None
    # Its end in flight, from the moment its job returned: the job's next claim waits for it.
    ending: asyncio.Future[None] | None = None
    cancel_reason: str | None = None
    lost_reason: str | None = None
    # What an operator handed the run (`jobs trigger --args`), read-only; empty for ticks.
    args: Mapping[str, Any] = field(default_factory=lambda: NO_ARGS)

    def cancel(self, reason: str) -> None:
        """Cancel its task (at once, or as soon as it has one); the first reason given is the
        one recorded."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
        if self.task is not None:
            self.task.cancel()

    def attach(self, task: asyncio.Task[object]) -> None:
        """`task` carries the run from now on (a run cancelled before it had one is cancelled)."""
        self.task = task
        if self.cancel_reason is not None:
            task.cancel()

    def settle_ticket(self) -> None:
        """Its job starts, or will not start soon: the runs dispatched with it may end."""
        if self.ticket is not None:
            self.ticket.settle()


@dataclass(frozen=True, slots=True)
class Due:
    """A tick of `spec` due now, for `TickRunner.run_batch`: the tick, the one after it, its start
    deadline, and its start ticket."""

    spec: JobSpec
    at: datetime
    next_tick: datetime
    start_by: datetime
    ticket: StartTicket
