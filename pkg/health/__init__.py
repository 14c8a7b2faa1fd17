"""The health server: `/livez`, `/readyz`, `/metrics` and the status page at `/`.

`start_health_server(host, port, source)` serves what a `HealthSource` reports; `WorkerHealth` is
the source the worker builds from its jobs, scheduler, run store and database.
"""

from __future__ import annotations

from financial.pkg.health.model import (
    AuditRow,
    Check,
    HealthSource,
    JobExtras,
    JobExtrasSource,
    JobStatus,
    MetricsExposition,
    RequestRow,
    SettingRow,
)
from financial.pkg.health.server import HealthServer, HealthServerError, start_health_server
from financial.pkg.health.worker import WorkerHealth, database_ping

__all__ = [
    "AuditRow",
    "Check",
    "HealthServer",
    "HealthServerError",
    "HealthSource",
    "JobExtras",
    "JobExtrasSource",
    "JobStatus",
    "MetricsExposition",
    "RequestRow",
    "SettingRow",
    "WorkerHealth",
    "database_ping",
    "start_health_server",
]
