"""The context a job's run receives."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from structlog.typing import FilteringBoundLogger

from financial.pkg.jobs.model import Trigger

NO_ARGS: Mapping[str, Any] = MappingProxyType({})


def frozen_args(args: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only copy of a run's arguments (the empty mapping for none)."""
    return MappingProxyType(dict(args)) if args else NO_ARGS


@dataclass(slots=True)
class JobContext:
    """What a run knows about itself.

    `scheduled_at` is the tick (timezone-aware), `deadline` the instant the run's timeout fires,
    `stopping` is set when the worker starts shutting down so a job can finish its current batch
    and return early. `log` is a structlog logger bound to job, run_id, scheduled_at and attempt.
    `args` is the read-only JSON object an operator handed to a run with `financial jobs trigger
    --args` (empty for scheduled runs).
    """

    job_name: str
    run_id: str
    scheduled_at: datetime
    attempt: int
    deadline: datetime
    trigger: Trigger
    log: FilteringBoundLogger
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    args: Mapping[str, Any] = field(default_factory=lambda: NO_ARGS)

    @property
    def is_stopping(self) -> bool:
        return self.stopping.is_set()
