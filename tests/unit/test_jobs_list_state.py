"""`jobs list` rows: the late state and queued requests read from the database, or unknown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from financial.cmd.history import Listing
from financial.cmd.jobs import _job_row, _late_cell, _with_state
from financial.pkg.jobs import JobContext, cron_job
from financial.pkg.scheduler.registry import JobRegistry
from financial.pkg.scheduler.store.requests import RequestCounts

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


async def noop(ctx: JobContext) -> None:
    return None


def rows(found: Listing) -> dict[str, tuple[object, object, object, str]]:
    registry = JobRegistry()
    registry.add(cron_job("0 3 * * *", name="nightly")(noop))
    registry.add(cron_job("*/5 * * * *", name="often")(noop))
    out: dict[str, tuple[object, object, object, str]] = {}
    for spec in registry:
        row = _with_state(_job_row(spec, NOW, None), found)
        out[spec.name] = (row["late"], row["late_since"], row["pending_requests"], _late_cell(row))
    return out


def test_a_late_job_and_its_queued_requests_show_the_others_not_late_and_none_queued() -> None:
    since = datetime(2026, 3, 2, 7, 0, tzinfo=timezone(timedelta(hours=-3)))
    found = Listing(late={"nightly": since}, requests={"nightly": RequestCounts(3, 1)})
    assert rows(found) == {
        "nightly": (True, "2026-03-02T10:00:00+00:00", 3, "LATE since 2026-03-02T10:00:00+00:00"),
        "often": (False, None, 0, "no"),
    }


def test_without_the_database_both_are_unknown() -> None:
    assert rows(Listing(note="run history unavailable (...)")) == {
        "nightly": (None, None, None, "-"),
        "often": (None, None, None, "-"),
    }
