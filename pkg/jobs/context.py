"""The context a job's run receives."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from structlog.typing import FilteringBoundLogger

from financial.pkg.jobs.model import Trigger


@dataclass(slots=True)
class JobContext:
    """What a run knows about itself.

    `scheduled_at` is the tick (timezone-aware), `deadline` the instant the run's timeout fires,
    `stopping` is set when the worker starts shutting down so a job can finish its current batch
    and return early. `log` is a structlog logger bound to job, run_id, scheduled_at and attempt.
    """

    job_name: str
    run_id: str
    scheduled_at: datetime
    attempt: int
    deadline: datetime
    trigger: Trigger
    log: FilteringBoundLogger
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def is_stopping(self) -> bool:
        return self.stopping.is_set()
