"""The overview's HTML: one row per job, its order and badges, the run strip, escaping, legend."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from html.parser import HTMLParser

import pytest

from financial.pkg.health.model import Check, JobStatus
from financial.pkg.health.page_format import duration, relative
from financial.pkg.health.status_page import (
    STATUS_COLOURS,
    StatusReport,
    display_order,
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
        if tag == "tr" and "id" in values:
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


def row_of(html: str, job: str) -> str:
    row = html[html.index(f'<tr id="job-{job}"') :]
    return row[: row.index("</tr>")]


def test_each_job_shows_schedule_next_fire_in_its_zone_and_utc() -> None:
    html = render_status_page(report())
    section = row_of(html, "report_generator")
    assert '<a href="/jobs/report_generator">report_generator</a>' in section
    assert '<code class="sub">CRON_TZ=America/Sao_Paulo 0 8 * * 1</code>' in section
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
    # The hostile name and run id stay inside their attributes, percent-encoded in the path.
    path = "/jobs/%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E"
    assert tags.hrefs == [path, path + "#run-" + evil]


def test_paused_jobs_are_badged_with_their_reason() -> None:
    html = render_status_page(report())
    section = row_of(html, "database_cleanup")
    assert '<tr id="job-database_cleanup" class="quiet">' in html
    assert '<span class="badge" title="maintenance window">paused</span>' in section
    assert "no run yet" in section


def test_disabled_jobs_say_so() -> None:
    job = JobStatus("nightly", "0 3 * * *", "UTC", None, paused=False, disabled=True)
    section = row_of(render_status_page(report(jobs=[job])), "nightly")
    assert '<a href="/jobs/nightly">nightly</a> <span class="badge">disabled</span>' in section
    assert '<td data-label="Next run">—</td>' in section


def test_late_failing_then_healthy_then_quiet_jobs() -> None:
    def job(name: str, *statuses: RunStatus, **changes: object) -> JobStatus:
        runs = [run(name, status, minutes_ago=i + 1) for i, status in enumerate(statuses)]
        base = JobStatus(name, "* * * * *", "UTC", None, False, recent_runs=runs)
        return replace(base, **changes)  # type: ignore[arg-type]

    jobs = [
        job("a_ok", RunStatus.SUCCEEDED),
        job("b_paused", RunStatus.FAILED, paused=True),
        job("c_failed", RunStatus.RUNNING, RunStatus.FAILED),  # last final run failed
        job("d_late", RunStatus.SUCCEEDED, late=True),
        job("e_timed_out", RunStatus.TIMED_OUT, RunStatus.SUCCEEDED),
        job("f_recovered", RunStatus.SUCCEEDED, RunStatus.FAILED),
        job("g_new"),
        job("h_disabled", disabled=True),
    ]
    order = ["d_late", "c_failed", "e_timed_out", "a_ok", "f_recovered", "g_new"]
    order += ["b_paused", "h_disabled"]
    assert [j.name for j in display_order(jobs)] == order
    html = render_status_page(report(jobs=jobs))
    assert [html.index(f'id="job-{name}"') for name in order] == sorted(
        html.index(f'id="job-{name}"') for name in order
    )
    last_run = '<td data-label="Last run"><span class="nowrap"><span class="dot s-failed"></span>'
    assert last_run + "failed</span></td>" in row_of(html, "c_failed")


def test_a_late_job_turns_the_page_red_at_the_top() -> None:
    jobs = sample_jobs()
    jobs[2] = replace(jobs[2], late=True, late_since=NOW - timedelta(hours=2))
    html = render_status_page(report(jobs=jobs))
    main = html[html.index("<main>") :]
    assert main.startswith(
        '<main>\n<p class="banner" role="alert">1 job late: '
        '<a href="/jobs/report_generator">report_generator</a></p>'
    )
    assert '<tr id="job-report_generator" class="late">' in html
    assert (
        '<span class="badge late" title="late since 2026-03-02 07:30:00 UTC">late</span>'
        in row_of(html, "report_generator")
    )
    assert "· 1 late ·" in html
    assert 'class="banner"' not in render_status_page(report())


def test_last_success_and_its_absence() -> None:
    html = render_status_page(report())
    report_section = row_of(html, "report_generator")
    assert "Mon 2026-02-16 06:30:42 -03 · 13 d 23 h ago" in report_section
    known = replace(sample_jobs()[0], last_success_at=NOW - timedelta(days=40))
    assert "Wed 2026-01-21 09:30:00 UTC · 40 d ago" in render_status_page(report(jobs=[known]))
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
    assert "history unavailable" in html and "TimeoutError: slow" in html
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
    assert duration(seconds) == text


def test_relative_times() -> None:
    assert relative(NOW + timedelta(seconds=90), NOW) == "in 1 min 30 s"
    assert relative(NOW - timedelta(seconds=5), NOW) == "5 s ago"
    assert relative(NOW, NOW) == "now"


def test_stuck_threads_show_on_their_job_and_in_the_header() -> None:
    jobs = sample_jobs()
    jobs[0] = replace(jobs[0], stuck_threads=2)
    page = render_status_page(report(jobs=jobs))
    assert page.count("2 stuck threads") == 2  # the job's badge, the header's total
    assert "stuck thread" not in render_status_page(report())
