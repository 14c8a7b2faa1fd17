"""Calls to the run store gathered per pass of the event loop and sent as one batch.

The runs due at one instant claim, start and finish within the same few passes of the loop:
each asks its `Batcher` and awaits the answer, the batcher sends everything asked in that pass
as one call (`claim_many`, `start_many`, `finish_many`: one round trip to PostgreSQL for all of
them) and hands each caller its own result, or the batch's exception. A request is sent even
if its caller is cancelled while it waits: what was asked may have been done, as with a single
call whose reply is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")

# Requests past this many in one pass go out in another call (a statement's arrays stay small).
DEFAULT_LIMIT = 1000


class Batcher(Generic[Request, Result]):
    """Gathers the requests of one loop pass into one `send` call, answers in request order."""

    def __init__(
        self,
        send: Callable[[list[Request]], Awaitable[Sequence[Result]]],
        *,
        limit: int = DEFAULT_LIMIT,
    ) -> None:
        if limit < 1:
            raise ValueError(f"batch limit {limit}: expected >= 1")
        self._send = send
        self._limit = limit
        self._requests: list[Request] = []
        self._waiters: list[asyncio.Future[Result]] = []
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        """Batches sent and not answered yet."""
        return len(self._in_flight)

    def submit(self, request: Request) -> asyncio.Future[Result]:
        """Queue `request` for this pass's batch; the future holds its result."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Result] = loop.create_future()
        if not self._requests:
            loop.call_soon(self._flush)
        self._requests.append(request)
        self._waiters.append(waiter)
        if len(self._requests) >= self._limit:
            self._flush()
        return waiter

    def _flush(self) -> None:
        if not self._requests:
            return  # flushed early at the limit
        requests, waiters = self._requests, self._waiters
        self._requests, self._waiters = [], []
        task = asyncio.ensure_future(self._deliver(requests, waiters))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _deliver(
        self, requests: list[Request], waiters: list[asyncio.Future[Result]]
    ) -> None:
        try:
            results = await self._send(requests)
            if len(results) != len(requests):
                raise RuntimeError(
                    f"batch of {len(requests)} requests answered with {len(results)} results"
                )
        except asyncio.CancelledError:
            for waiter in waiters:
                waiter.cancel()
            raise
        except Exception as exc:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        for waiter, result in zip(waiters, results, strict=True):
            if not waiter.done():
                waiter.set_result(result)
