"""The status page's view of runtime settings: what `jobs set` changed shows without a restart,
with each value's source on the job's page and the audit newest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from financial.cmd.status_extras import open_request_rows, setting_row, status_extras
from financial.pkg.health import WorkerHealth
from financial.pkg.jobs import JobContext, cron_job
from financial.pkg.jobs.model import Trigger
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.job_settings import RuntimeSettings
from financial.pkg.scheduler.job_settings.memory import MemoryJobSettings
from financial.pkg.scheduler.registry import Defaults, EffectiveSetting, JobRegistry
from financial.pkg.scheduler.store.memory import MemoryRunStore
from financial.pkg.scheduler.store.requests import RunRequest
from financial.pkg.scheduler.store.requests_memory import MemoryRequestStore

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


async def noop(ctx: JobContext) -> None:
    return None


async def test_a_runtime_change_shows_on_the_overview_and_the_job_page() -> None:
    registry = JobRegistry()
    registry.add(cron_job("0 3 * * *", name="nightly", timeout=60)(noop))
    registry.add(cron_job("*/5 * * * *", name="often")(noop))
    health = WorkerHealth(list(registry), clock=FakeClock(NOW))
    store = MemoryJobSettings(lambda: NOW)
    health.watch_extras(status_extras(registry, store))

    await store.set("nightly", RuntimeSettings(schedule="30 4 * * *"), by="ann", reason="later")
    await store.set("nightly", RuntimeSettings(enabled=False), by="bob", reason="INC-1")
    registry.respec("nightly", await store.get("nightly"))

    overview = {status.name: status for status in await health.jobs()}
    assert overview["nightly"].schedule == "30 4 * * *"
    assert overview["nightly"].disabled
    assert overview["nightly"].settings == ()  # the overview reads no audit or sources
    assert not overview["often"].disabled

    page = await health.job("nightly")
    assert page is not None
    assert [(row.field, row.value, row.source) for row in page.settings] == [
        ("schedule", "30 4 * * *", "runtime"),
        ("timeout", "60s", "code"),
        ("enabled", "false", "runtime"),
        ("calendar", "none", "default"),
        ("alert_after", "off", "default"),
    ]
    assert [(row.by, row.reason) for row in page.audit] == [("bob", "INC-1"), ("ann", "later")]
    assert page.audit[0].summary == "set: enabled: unset -> false"


async def test_a_runtime_alert_after_shows_in_seconds_or_off_with_its_source() -> None:
    registry = JobRegistry(Defaults(alert_after=timedelta(hours=1)))
    registry.add(cron_job("0 3 * * *", name="nightly")(noop))
    registry.add(cron_job("*/5 * * * *", name="often", alert_after=600)(noop))
    health = WorkerHealth(list(registry), clock=FakeClock(NOW))
    store = MemoryJobSettings(lambda: NOW)
    health.watch_extras(status_extras(registry, store))

    async def alert_row(job: str) -> tuple[str, str, str]:
        page = await health.job(job)
        assert page is not None
        [row] = [row for row in page.settings if row.field == "alert_after"]
        return row.field, row.value, row.source

    assert await alert_row("nightly") == ("alert_after", "3600s", "default")
    assert await alert_row("often") == ("alert_after", "600s", "code")

    await store.set("nightly", RuntimeSettings(alert_after_s=0), by="ann", reason="noisy")
    registry.respec("nightly", await store.get("nightly"))
    await store.set("often", RuntimeSettings(alert_after_s=90), by="ann", reason=None)
    registry.respec("often", await store.get("often"))

    assert await alert_row("nightly") == ("alert_after", "off", "runtime")
    assert await alert_row("often") == ("alert_after", "90s", "runtime")
    page = await health.job("nightly")
    assert page is not None
    assert page.audit[0].summary == "set: alert_after: unset -> off"


def test_setting_rows_format_durations_and_off() -> None:
    assert setting_row(EffectiveSetting("timeout", 900.0, "runtime")).value == "900s"
    assert setting_row(EffectiveSetting("alert_after", 3600.0, "env")).value == "3600s"
    assert setting_row(EffectiveSetting("alert_after", 0.5, "code")).value == "0.5s"
    assert setting_row(EffectiveSetting("alert_after", None, "default")).value == "off"
    assert setting_row(EffectiveSetting("alert_after", 0.0, "runtime")).value == "off"
    assert setting_row(EffectiveSetting("calendar", None, "default")).value == "none"


async def test_a_store_that_fails_leaves_the_registry_values() -> None:
    registry = JobRegistry()
    registry.add(cron_job("0 3 * * *", name="nightly")(noop))
    health = WorkerHealth(list(registry), clock=FakeClock(NOW))

    class Down(MemoryJobSettings):
        async def audit(self, job: str, limit: int = 50) -> list:  # type: ignore[type-arg]
            raise ConnectionError("database down")

    health.watch_extras(status_extras(registry, Down(lambda: NOW)))
    page = await health.job("nightly")
    assert page is not None
    assert page.schedule == "0 3 * * *"
    assert page.audit == ()


async def test_the_job_page_shows_its_open_requests_and_how_many_more() -> None:
    clock = FakeClock(NOW)
    registry = JobRegistry()
    registry.add(cron_job("0 3 * * *", name="nightly")(noop))
    health = WorkerHealth(list(registry), clock=clock)
    requests = MemoryRequestStore(MemoryRunStore(clock), clock)
    health.watch_extras(status_extras(registry, MemoryJobSettings(lambda: NOW), requests))
    ticks = [NOW - timedelta(days=n) for n in range(1, 4)]
    await requests.add("nightly", ticks, trigger=Trigger.BACKFILL, requested_by="alice@ops")
    await requests.add("other", [None], trigger=Trigger.MANUAL, requested_by="bob")
    await requests.claim(["nightly"], worker_id="w1", limit=1)

    page = await health.job("nightly")
    assert page is not None
    assert [(r.tick, r.trigger, r.requested_by, r.state) for r in page.requests] == [
        (ticks[2], "backfill", "alice@ops", "claimed"),
        (ticks[1], "backfill", "alice@ops", "pending"),
        (ticks[0], "backfill", "alice@ops", "pending"),
    ]
    assert page.requests_open == 3 and page.requests_error is None
    assert {s.name: s.requests for s in await health.jobs()}["nightly"] == ()  # page only

    rows, total, error = await open_request_rows(requests, "nightly", limit=2)
    assert [r.tick for r in rows] == [ticks[2], ticks[1]]
    assert (total, error) == (3, None)


async def test_a_request_store_that_fails_says_why_and_keeps_the_settings() -> None:
    clock = FakeClock(NOW)
    registry = JobRegistry()
    registry.add(cron_job("0 3 * * *", name="nightly")(noop))
    health = WorkerHealth(list(registry), clock=clock)

    class Down(MemoryRequestStore):
        async def open_requests(
            self, job: str | None = None, *, limit: int | None = None
        ) -> list[RunRequest]:
            raise ConnectionError("password=hunter2 database down")

    requests = Down(MemoryRunStore(clock), clock)
    health.watch_extras(status_extras(registry, MemoryJobSettings(lambda: NOW), requests))
    page = await health.job("nightly")
    assert page is not None
    assert page.requests == ()
    assert page.requests_error is not None and "database down" in page.requests_error
    assert "hunter2" not in page.requests_error
    assert [row.field for row in page.settings][:1] == ["schedule"]


async def test_a_runtime_schedule_in_another_zone_shows_its_times_in_that_zone() -> None:
    registry = JobRegistry()
    registry.add(cron_job("0 3 * * *", name="nightly")(noop))
    health = WorkerHealth(list(registry), clock=FakeClock(NOW))
    store = MemoryJobSettings(lambda: NOW)
    health.watch_extras(status_extras(registry, store))
    assert (await health.jobs())[0].zone == "UTC"

    await store.set(
        "nightly",
        RuntimeSettings(schedule="CRON_TZ=America/Sao_Paulo 0 9 * * *"),
        by="ann",
        reason=None,
    )
    registry.respec("nightly", await store.get("nightly"))

    [status] = await health.jobs()
    page = await health.job("nightly")
    assert status.zone == "America/Sao_Paulo"
    assert page is not None and page.zone == "America/Sao_Paulo"
