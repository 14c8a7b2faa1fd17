"""Retry policy: frozen data that answers "try again, and when?"."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

Backoff = Literal["exponential", "linear", "fixed"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failed or timed-out attempt is tried again.

    `max_retries` attempts follow the first one. The delay before retry `n` (1-based) is
    `initial_delay` (fixed), `initial_delay * n` (linear) or `initial_delay * 2**(n-1)`
    (exponential), capped at `max_delay`, then spread by up to `jitter` (a fraction, 0.1 = ±10%).
    The scheduler also refuses a retry that would start at or after the job's next tick.
    """

    max_retries: int = 0
    backoff: Backoff = "exponential"
    initial_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(minutes=5)
    jitter: float = 0.0

    def __post_init__(self) -> None:
        # Imported here: model imports this module.
        from financial.pkg.jobs.model import JobDefinitionError

        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise JobDefinitionError(f"retry max_retries={self.max_retries!r}: expected an int")
        if self.max_retries < 0:
            raise JobDefinitionError(f"retry max_retries={self.max_retries}: expected >= 0")
        if self.backoff not in ("exponential", "linear", "fixed"):
            raise JobDefinitionError(
                f"retry backoff={self.backoff!r}: expected exponential, linear or fixed"
            )
        if self.initial_delay < timedelta(0) or self.max_delay < self.initial_delay:
            raise JobDefinitionError(
                f"retry delays initial={self.initial_delay} max={self.max_delay}: "
                "expected 0 <= initial_delay <= max_delay"
            )
        if not 0.0 <= self.jitter <= 1.0:
            raise JobDefinitionError(f"retry jitter={self.jitter}: expected a fraction in [0, 1]")

    def delay_before(
        self, retry: int, rand: Callable[[], float] = random.random
    ) -> timedelta | None:
        """The wait before retry number `retry` (1-based), or None when retries are used up."""
        if retry < 1 or retry > self.max_retries:
            return None
        factor = {"fixed": 1.0, "linear": float(retry), "exponential": 2.0 ** (retry - 1)}
        # In float seconds: timedelta * 2**n overflows long before max_delay caps it.
        delay_s = min(
            self.initial_delay.total_seconds() * factor[self.backoff],
            self.max_delay.total_seconds(),
        )
        if self.jitter:
            delay_s *= 1.0 + self.jitter * (2.0 * rand() - 1.0)
        return timedelta(seconds=max(delay_s, 0.0))
