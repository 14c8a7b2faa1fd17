"""The probes' logic, apart from HTTP: liveness from the heartbeat, readiness from checks.

Liveness fails only when the scheduler loop has stalled: its heartbeat is older than
`stall_after`. Nothing about PostgreSQL or RabbitMQ enters it, so an outage of either never turns
into a restart storm. Before the loop's first pass (the worker is still connecting to its
database) and during the drain (the loop has stopped on purpose) the worker counts as alive.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from financial.pkg.health.model import Check

LIVENESS_CHECK = "scheduler_loop"


def liveness(
    *, last_heartbeat: datetime | None, now: datetime, stall_after: timedelta, draining: bool
) -> Check:
    """Whether the scheduler loop is alive, with the heartbeat's age in the detail."""
    if draining:
        return Check(LIVENESS_CHECK, True, "draining: the loop stopped taking ticks on purpose")
    if last_heartbeat is None:
        return Check(LIVENESS_CHECK, True, "starting: the scheduler loop has not started yet")
    age_s = (now - last_heartbeat).total_seconds()
    limit_s = stall_after.total_seconds()
    if age_s > limit_s:
        return Check(
            LIVENESS_CHECK,
            False,
            f"stalled: last heartbeat {age_s:.1f} s ago, limit {limit_s:g} s",
        )
    # A heartbeat "in the future" is a wall-clock step back; the loop beats again soon.
    return Check(LIVENESS_CHECK, True, f"heartbeat {max(age_s, 0.0):.1f} s ago")


def probe_body(checks: Sequence[Check]) -> tuple[bool, str]:
    """Whether every check passed, and a body in the Kubernetes API server's verbose style.

    ```
    ok
    [+]database ok
    [-]migrations failed: not applied yet
    ```
    """
    ok = all(check.ok for check in checks)
    lines = ["ok" if ok else "not ok"]
    for check in checks:
        if check.ok:
            lines.append(f"[+]{check.name} ok" + (f": {check.detail}" if check.detail else ""))
        else:
            lines.append(f"[-]{check.name} failed: {check.detail or 'no reason given'}")
    return ok, "\n".join(lines) + "\n"
