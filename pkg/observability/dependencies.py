"""Whether the worker's dependencies (PostgreSQL, RabbitMQ) are there: one line per change.

Whatever sees a dependency fail or answer says so (`went_away(name, error)`, `came_back(name)`);
this module turns that stream into two log lines per outage: `dependency_unavailable` (WARNING,
with the first error, masked) when it goes away, and `dependency_restored` (WARNING, with
`down_for_s`) when it comes back. Every call in between costs a dict lookup and logs nothing, so
a store call or a publish can report on every attempt without flooding the log during an
outage that lasts hours.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from financial.pkg.observability.masking import mask_secrets

__all__ = [
    "BROKER",
    "DATABASE",
    "Dependencies",
    "came_back",
    "dependencies",
    "went_away",
]

DATABASE = "postgresql"
BROKER = "rabbitmq"

log = structlog.get_logger("financial.dependencies")


@dataclass(frozen=True, slots=True)
class Outage:
    """A dependency that is away: since when (on the monotonic clock) and why, first seen."""

    since_s: float
    error: str


class Dependencies:
    """The state of each named dependency: up (never seen failing, or back) or away.

    `now` is a monotonic clock in seconds; it only measures how long an outage lasted (for the
    log line), never anything the scheduler decides on, so the process's monotonic clock is the
    default and tests pass their own.
    """

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._away: dict[str, Outage] = {}

    def went_away(self, name: str, error: BaseException | str) -> bool:
        """`name` failed; logs `dependency_unavailable` if it was up. True when it was."""
        if name in self._away:
            return False
        text = error if isinstance(error, str) else _describe(error)
        outage = self._away[name] = Outage(self._now(), mask_secrets(text))
        log.warning("dependency_unavailable", dependency=name, error=outage.error)
        return True

    def came_back(self, name: str) -> float | None:
        """`name` answered; logs `dependency_restored` if it was away. How long it was away
        (seconds), or None when it was up."""
        outage = self._away.pop(name, None)
        if outage is None:
            return None
        down_for_s = max(self._now() - outage.since_s, 0.0)
        log.warning(
            "dependency_restored",
            dependency=name,
            down_for_s=round(down_for_s, 1),
            error=outage.error,
        )
        return down_for_s

    def is_away(self, name: str) -> bool:
        """Whether `name` is in an outage now (as far as its callers have seen)."""
        return name in self._away

    def away(self) -> dict[str, Outage]:
        """The dependencies away now, with since when and why."""
        return dict(self._away)


def _describe(exc: BaseException) -> str:
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


dependencies = Dependencies()
"""The process's one view of its dependencies, fed by the database and broker adapters."""


def went_away(name: str, error: BaseException | str) -> bool:
    """`dependencies.went_away`: report that `name` failed (one log line per outage)."""
    return dependencies.went_away(name, error)


def came_back(name: str) -> float | None:
    """`dependencies.came_back`: report that `name` answered (one log line per outage)."""
    return dependencies.came_back(name)
