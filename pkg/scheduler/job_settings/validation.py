"""The checks of runtime values that the code and the environment do not already make.

`JobRegistry.build` runs them when it lays runtime settings over a job, so `financial jobs set`
refuses a value before anything is stored, and a replica refuses a value written past the CLI
(keeping the job's env and code values), both with the registry's messages: the job, the field,
the value and what was expected.
"""

from __future__ import annotations

import math
from datetime import timedelta

from financial.pkg.jobs.model import JobDefinitionError

# A runtime timeout above a week is a typo, not a job (and timedelta overflows far above it).
MAX_TIMEOUT_S = 7 * 24 * 3600.0
# A dead-man threshold above a year and a day is a typo: a yearly job's margin fits below it.
MAX_ALERT_AFTER_S = 366 * 24 * 3600.0


def _finite_number(seconds: object) -> bool:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return False
    return math.isfinite(seconds)


def runtime_timeout(name: str, seconds: float) -> timedelta:
    """The run timeout `seconds` as a duration: JobDefinitionError unless 0 < seconds <= a week."""
    if not _finite_number(seconds) or seconds <= 0 or seconds > MAX_TIMEOUT_S:
        raise JobDefinitionError(
            f"job {name!r}: timeout {seconds!r}: expected a number of seconds > 0 "
            f"(at most {MAX_TIMEOUT_S:g})"
        )
    return timedelta(seconds=seconds)


def runtime_alert_after(name: str, seconds: float) -> timedelta:
    """The dead-man threshold `seconds` as a duration (0: the job's alert is off):
    JobDefinitionError unless 0 <= seconds <= a year and a day."""
    if not _finite_number(seconds) or seconds < 0 or seconds > MAX_ALERT_AFTER_S:
        raise JobDefinitionError(
            f"job {name!r}: alert_after {seconds!r}: expected a number of seconds >= 0 "
            f"(0 turns the job's alert off; at most {MAX_ALERT_AFTER_S:.0f}, 366 days)"
        )
    return timedelta(seconds=seconds)
