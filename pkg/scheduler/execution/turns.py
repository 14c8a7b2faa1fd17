"""Each job's store calls in flight that decide its overlap: its claims, and its runs' ends.

A job's claim waits for the store to answer the job's claims and ends still in flight (an outage
holds them), so the ticks of an outage are never skipped as overlaps of each other's rows or of a
run whose end is on its way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class JobTurns:
    """The calls in flight per job, as futures that are done when the call is answered."""

    __slots__ = ("_in_flight",)

    def __init__(self) -> None:
        self._in_flight: dict[str, list[asyncio.Future[None]]] = {}

    def busy(self, job: str) -> bool:
        """Whether a call of `job` is in flight."""
        return job in self._in_flight

    def earlier(self, job: str) -> list[asyncio.Future[None]]:
        """The calls of `job` in flight now, to wait for."""
        return list(self._in_flight.get(job, ()))

    def begin(self, job: str) -> asyncio.Future[None]:
        """A call of `job` begins; `end` it once answered."""
        return self.begin_all((job,))

    def begin_all(self, jobs: Iterable[str]) -> asyncio.Future[None]:
        """One call for several jobs begins (a batch of claims); `end_all` it once answered."""
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for job in jobs:
            self._in_flight.setdefault(job, []).append(mine)
        return mine

    def end(self, job: str, mine: asyncio.Future[None]) -> None:
        self.end_all((job,), mine)

    def end_all(self, jobs: Iterable[str], mine: asyncio.Future[None]) -> None:
        mine.set_result(None)
        for job in jobs:
            in_flight = self._in_flight[job]
            in_flight.remove(mine)
            if not in_flight:
                del self._in_flight[job]
