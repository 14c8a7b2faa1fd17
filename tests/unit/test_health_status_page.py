"""The status page's HTML: what each job shows, the run strip, escaping, the legend."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from html.parser import HTMLParser

import pytest

from financial.pkg.health.model import Check, JobStatus
from financial.pkg.health.status_page import (
    STATUS_COLOURS,
    StatusReport,
    _duration,
    _relative,
    render_status_page,
)
from financial.pkg.jobs.model import RunStatus
from tests.unit.health_fakes import NOW, run, sample_jobs


def report(**changes: object) -> StatusReport:
    base: dict[str, object] = {
        "title": "financial-worker · worker-1",
        "now": NOW,
        "liveness": Check("scheduler_loop", True, "heartbeat 0.4 s ago"),
        "readiness": [Check("database", True), Check("migrations", True)],
        "jobs": sample_jobs(),
    }
    base.update(changes)
    return StatusReport(**base)  # type: ignore[arg-type]


class Squares(HTMLParser):
    """The run squares of each job's strip, in document order: (job, class, title)."""

    def __init__(self) -> None:
        super().__init__()
        self.job = ""
        self.squares: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "section":
            self.job = values["id"].removeprefix("job-")
        if tag == "a" and "run" in values.get("class", "").split():
            self.squares.append((self.job, values["class"], values["title"]))


class Tags(HTMLParser):
    """Every start tag name, and the href of every link."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.add(tag)
        self.hrefs.extend(v or "" for k, v in attrs if k == "href")


def squares(html: str) -> list[tuple[str, str, str]]:
    parser = Squares()
    parser.feed(html)
    return parser.squares


def test_page_is_self_contained_and_fits_a_phone() -> None:
    html = render_status_page(report())
    assert html.startswith("<!doctype html>")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert not re.search(r"<(script|link|img|iframe)\b", html)
    assert "http://" not in html and "https://" not in html
    assert "@import" not in html and "url(" not in html


def test_each_job_shows_schedule_zone_next_fire_in_its_zone_and_utc() -> None:
    html = render_status_page(report())
    section = html[html.index('id="job-report_generator"') :]
    section = section[: section.index("</section>")]
    assert "<code>CRON_TZ=America/Sao_Paulo 0 8 * * 1</code>" in section
    assert "<dd>America/Sao_Paulo</dd>" in section
    assert "Mon 2026-03-09 08:00:00 -03" in section  # local to the job's zone
    assert "2026-03-09 11:00:00 UTC" in section
    assert "in 7 d 1 h" in section


def test_strip_is_oldest_first_with_a_tooltip_per_run() -> None:
    strip = [s for s in squares(render_status_page(report())) if s[0] == "outbox_relay"]
    assert [cls.split()[1] for _, cls, _ in strip] == [
        "s-succeeded",
        "s-failed",
        "s-timed_out",
        "s-skipped",
        "s-missed",
        "s-interrupted",
        "s-abandoned",
        "s-succeeded",
        "s-running",
    ]
    failed = strip[1][2]
    assert failed.splitlines() == [
        "failed",
        "tick Mon 2026-03-02 09:22:00 UTC",
        "started Mon 2026-03-02 09:22:00 UTC",
        "took 1.5 s",
        "error ConnectionError: broker down",
    ]
    assert strip[-1][2].splitlines()[-1] == "running for 1 min"
    assert strip[3][2].splitlines() == ["skipped", "tick Mon 2026-03-02 09:24:00 UTC"]


def test_every_status_has_its_own_colour_and_a_legend_entry() -> None:
    html = render_status_page(report())
    colours = [colour for colour, _ in STATUS_COLOURS.values()]
    assert len(set(colours)) == len(colours)
    for status in RunStatus:
        assert f".s-{status.value}{{background:" in html
        assert f'<span class="dot s-{status.value}"></span>{status.value} (' in html


def test_hostile_text_is_escaped_everywhere() -> None:
    evil = '"><script>alert(1)</script>'
    job = JobStatus(
        name=evil,
        schedule=evil,
        zone=evil,
        next_fire=NOW,
        paused=True,
        paused_reason=evil,
        recent_runs=[run("x", RunStatus.FAILED, 1, run_id=evil)],
    )
    html = render_status_page(report(jobs=[job], title=evil))
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html
    tags = Tags()
    tags.feed(html)
    assert "script" not in tags.seen
    # The hostile run id stays inside its attribute: the square's href is the whole id.
    assert tags.hrefs == ["#run-" + evil]


def test_paused_jobs_are_badged_with_their_reason() -> None:
    html = render_status_page(report())
    section = html[html.index('id="job-database_cleanup"') :]
    section = section[: section.index("</section>")]
    assert 'class="job paused"' in html
    assert '<span class="badge" title="maintenance window">paused</span>' in section
    assert "<dt>Paused</dt><dd>maintenance window</dd>" in section
    assert "No run recorded yet." in section


def test_disabled_jobs_say_so() -> None:
    job = JobStatus("nightly", "0 3 * * *", "UTC", None, paused=False, disabled=True)
    html = render_status_page(report(jobs=[job]))
    assert '<h2>nightly <span class="badge">disabled</span></h2>' in html
    assert "<dt>Disabled</dt><dd>in configuration: no ticks</dd>" in html
    assert "<dt>Next run</dt><dd>—</dd>" in html


def test_a_job_on_a_holiday_calendar_shows_it_and_its_policy() -> None:
    closing = JobStatus("close", "0 18 LB * *", "America/Sao_Paulo", None, False)
    on_calendar = replace(closing, calendar="BR-SP", on_holiday="next")
    assert "<dt>Calendar</dt>" not in render_status_page(report(jobs=[closing]))
    html = render_status_page(report(jobs=[on_calendar]))
    assert "<dt>Calendar</dt><dd>BR-SP (on holiday: next)</dd>" in html


def test_last_success_and_its_absence() -> None:
    html = render_status_page(report())
    report_section = html[html.index('id="job-report_generator"') :]
    assert "Last success</dt><dd>Mon 2026-02-16 06:30:42 -03 · 13 d 23 h ago" in report_section
    failing = JobStatus(
        name="flaky",
        schedule="* * * * *",
        zone="UTC",
        next_fire=None,
        paused=False,
        recent_runs=[run("flaky", RunStatus.FAILED, 1), run("flaky", RunStatus.FAILED, 2)],
    )
    assert "none in the last 2 runs" in render_status_page(report(jobs=[failing]))


def test_summary_shows_liveness_and_failing_readiness() -> None:
    html = render_status_page(
        report(
            liveness=Check("scheduler_loop", False, "stalled: last heartbeat 40.0 s ago"),
            readiness=[Check("database", False, "ConnectionRefusedError")],
        )
    )
    assert '<span class="pill bad" title="stalled: last heartbeat 40.0 s ago">stalled</span>' in (
        html
    )
    assert '<span class="pill bad">not ready</span>' in html
    assert "<li>database: ConnectionRefusedError</li>" in html
    assert "3 jobs" in html


def test_history_errors_and_no_jobs() -> None:
    job = JobStatus("a", "* * * * *", "UTC", None, False, runs_error="TimeoutError: slow")
    html = render_status_page(report(jobs=[job]))
    assert "Run history unavailable: TimeoutError: slow" in html
    assert "No job is registered." in render_status_page(report(jobs=[]))
    assert "Jobs unavailable: boom" in render_status_page(report(jobs=[], jobs_error="boom"))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0123, "12 ms"),
        (1.25, "1.2 s"),
        (59.9, "59.9 s"),
        (60, "1 min"),
        (125, "2 min 5 s"),
        (3600 * 2 + 5, "2 h"),
        (86400 * 3 + 3600 * 4 + 60, "3 d 4 h"),
    ],
)
def test_durations(seconds: float, text: str) -> None:
    assert _duration(seconds) == text


def test_relative_times() -> None:
    assert _relative(NOW + timedelta(seconds=90), NOW) == "in 1 min 30 s"
    assert _relative(NOW - timedelta(seconds=5), NOW) == "5 s ago"
    assert _relative(NOW, NOW) == "now"


def test_stuck_threads_show_on_their_job_and_in_the_header() -> None:
    jobs = sample_jobs()
    jobs[0] = replace(jobs[0], stuck_threads=2)
    page = render_status_page(report(jobs=jobs))
    assert page.count("2 stuck threads") == 2  # the job's badge, the header's total
    assert "<dt>Stuck threads</dt><dd>2:" in page
    assert "stuck thread" not in render_status_page(report())
