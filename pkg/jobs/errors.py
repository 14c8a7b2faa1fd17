"""Errors a job raises on purpose."""

from __future__ import annotations


class ExpectedFailure(Exception):
    """A failure the job foresaw, such as a dependency that is away: the run is recorded
    `failed` with this message, and its `job_failed` line carries no traceback (which would
    say nothing more, on every run of a long outage)."""
