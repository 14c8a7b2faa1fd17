"""Test helpers for several schedulers sharing one run store: replicas on one fake clock."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, cast

from financial.pkg.jobs import JobContext
from financial.pkg.jobs.model import Trigger
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.store import RunStore
from financial.pkg.scheduler.store.memory import MemoryRunStore
from tests.unit.scheduling import T0


class Link:
    """The way from one replica to the shared store; a test cuts it (a partition, or the
    database going away) and mends it."""

    def __init__(self, store: RunStore) -> None:
        self._store = store
        self.cut = False
        self.calls: list[str] = []
        # Cleared: the store is frozen (a SIGSTOPped database): calls hang until it is set.
        self.thawed = asyncio.Event()
        self.thawed.set()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if not inspect.iscoroutinefunction(value):
            return value

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if self.cut:
                raise ConnectionError(f"{name}: connection refused")
            await self.thawed.wait()
            return await value(*args, **kwargs)

        return call

    @property
    def store(self) -> RunStore:
        return cast(RunStore, self)


def shared_store(clock: FakeClock, lease_s: float = 30) -> MemoryRunStore:
    """A store replicas share; batched, as the PostgreSQL store is."""
    return MemoryRunStore(clock, lease=timedelta(seconds=lease_s), shared=True, batched=True)


class Journal:
    """Job bodies that note which replica ran what, and how many ran at once."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.starts: list[tuple[str, float, float, int, Trigger]] = []
        self.cancelled: list[tuple[str, float]] = []
        self.running = 0
        self.most_at_once = 0

    def body(
        self, replica: str, duration: Callable[[JobContext], float] = lambda ctx: 0.0
    ) -> Callable[[JobContext], Awaitable[None]]:
        async def run(ctx: JobContext) -> None:
            now = (self.clock.now() - T0).total_seconds()
            tick = (ctx.scheduled_at - T0).total_seconds()
            self.starts.append((replica, now, tick, ctx.attempt, ctx.trigger))
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            try:
                seconds = duration(ctx)
                if seconds:
                    await self.clock.sleep(timedelta(seconds=seconds))
            except BaseException:
                self.cancelled.append((replica, (self.clock.now() - T0).total_seconds()))
                raise
            finally:
                self.running -= 1

        return run

    def ticks(self) -> list[float]:
        return [tick for _, _, tick, _, _ in self.starts]
