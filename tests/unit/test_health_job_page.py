"""A job's own page: its facts, runtime settings with their source, audit, chart and history."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from html import escape as html_escape
from html.parser import HTMLParser

from financial.pkg.health.duration_chart import duration_chart
from financial.pkg.health.model import AuditRow, Check, JobStatus, RequestRow, SettingRow
from financial.pkg.health.status_page import JobReport, render_job_page
from financial.pkg.jobs.model import RunStatus
from financial.pkg.scheduler.store import RunError
from tests.unit.health_fakes import NOW, run, sample_jobs

EVIL = '"><script>alert(1)</script>'


def page(job: JobStatus) -> str:
    return render_job_page(
        JobReport(
            title="financial-worker · worker-1",
            now=NOW,
            liveness=Check("scheduler_loop", True, "heartbeat 0.4 s ago"),
            readiness=[Check("database", True)],
            job=job,
        )
    )


def relay() -> JobStatus:
    return sample_jobs()[1]


class Circles(HTMLParser):
    """The chart's dots: (class, cx, cy, title text)."""

    def __init__(self) -> None:
        super().__init__()
        self.dots: list[tuple[str, float, float, str]] = []
        self._open: tuple[str, float, float] | None = None
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        values = {k: v or "" for k, v in attrs}
        if tag == "circle":
            self._open = (values["class"], float(values["cx"]), float(values["cy"]))

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.dots.append((*self._open, data))
            self._open = None


def test_the_page_shows_the_jobs_facts_and_links_back() -> None:
    html = page(sample_jobs()[2])
    assert '<a href="/">← all jobs</a>' in html
    assert "<h1>report_generator</h1>" in html
    assert "<dt>Schedule</dt><dd><code>CRON_TZ=America/Sao_Paulo 0 8 * * 1</code></dd>" in html
    assert "<dt>Zone</dt><dd>America/Sao_Paulo</dd>" in html
    assert "Mon 2026-03-09 08:00:00 -03" in html and "2026-03-09 11:00:00 UTC" in html
    assert not re.search(r"<(script|link|img|iframe)\b", html)


def test_settings_show_their_value_and_where_it_comes_from() -> None:
    job = replace(
        relay(),
        settings=[
            SettingRow("schedule", "*/10 * * * *", "runtime"),
            SettingRow("timeout", "30 s", "env"),
            SettingRow("enabled", "true"),
        ],
    )
    html = page(job)
    assert (
        '<tr class="src-runtime"><td>schedule</td><td data-label="Value"><code>*/10 * * * *</code>'
        '</td><td data-label="From">runtime (financial jobs set)</td></tr>' in html
    )
    assert '<td>timeout</td><td data-label="Value"><code>30 s</code></td>' in html
    assert '<td data-label="From">environment</td>' in html
    assert '<td>enabled</td><td data-label="Value"><code>true</code></td>' in html
    assert '<td data-label="From">code</td>' in html
    assert "Precedence: runtime setting, then environment, then code, then the" in html
    assert "No settings reported." in page(relay())


def test_the_audit_says_who_when_what_and_why() -> None:
    at = NOW - timedelta(hours=1)
    job = replace(
        relay(),
        audit=[
            AuditRow(at, "ana@ops-1", "schedule", "*/5 * * * *", "*/10 * * * *", reason="load"),
            AuditRow(at, "bob@ops-2", "calendar", None, "BR-SP"),
            AuditRow(at, "ci", summary="reset to code and environment values"),
        ],
    )
    html = page(job)
    assert (
        '<tr><td>2026-03-02 08:30:00 UTC</td><td data-label="By">ana@ops-1</td>'
        '<td data-label="Change">schedule: <code>*/5 * * * *</code> → <code>*/10 * * * *</code>'
        '</td><td data-label="Reason">load</td></tr>'
    ) in html
    assert '<td data-label="Change">calendar: — → <code>BR-SP</code></td>' in html
    assert '<td data-label="Reason">—</td>' in html
    assert '<td data-label="By">ci</td><td data-label="Change">reset to code and' in html
    assert "No runtime change recorded." in page(relay())


def test_a_late_job_says_so_at_the_top() -> None:
    html = page(replace(relay(), late=True, late_since=NOW - timedelta(minutes=30)))
    main = html[html.index("<main>") :]
    assert main.startswith('<main>\n<p class="banner" role="alert">Late since 2026-03-02 09:00')
    assert 'class="badge late"' in html
    assert 'class="banner"' not in page(relay())


def test_the_history_lists_every_run_newest_first_with_its_error() -> None:
    html = page(relay())
    items = re.findall(r'<li id="run-([^"]+)"><span class="dot s-(\w+)">', html)
    assert [status for _, status in items] == [
        "running",
        "succeeded",
        "abandoned",
        "interrupted",
        "missed",
        "skipped",
        "timed_out",
        "failed",
        "succeeded",
    ]
    assert "error ConnectionError: broker down" in html
    assert "History (9 runs, newest first)" in html


def test_the_chart_puts_one_dot_per_finished_run_in_tick_order() -> None:
    runs = [
        run("j", RunStatus.SUCCEEDED, minutes_ago=30, duration_s=1.0),
        run("j", RunStatus.FAILED, minutes_ago=20, duration_s=4.0, error=RunError("E", "x")),
        run("j", RunStatus.RUNNING, minutes_ago=1),  # no duration yet: no dot
        run("j", RunStatus.SUCCEEDED, minutes_ago=10, duration_s=2.0),
    ]
    svg = duration_chart(runs, "UTC", label="Durations of j")
    assert svg.startswith('<svg class="chart" viewBox="0 0 600 160"')
    parser = Circles()
    parser.feed(svg)
    assert [cls for cls, *_ in parser.dots] == ["s-succeeded", "s-failed", "s-succeeded"]
    xs = [cx for _, cx, _, _ in parser.dots]
    ys = [cy for _, _, cy, _ in parser.dots]
    assert xs == sorted(xs) and xs[0] < xs[1] < xs[2]
    assert xs[1] - xs[0] == xs[2] - xs[1]  # ticks 10 minutes apart: equal steps
    assert ys[1] == min(ys)  # the slowest run is highest
    assert ys[0] > ys[2] > ys[1]
    assert parser.dots[1][3] == "failed · tick Mon 2026-03-02 09:10:00 UTC · took 4.0 s"
    assert ">4.0 s</text>" in svg  # the y axis' top is the slowest run
    assert "script" not in parser.tags


def test_the_chart_handles_one_run_none_and_hostile_labels() -> None:
    one = duration_chart([run("j", RunStatus.SUCCEEDED, 5)], "UTC", label=EVIL)
    parser = Circles()
    parser.feed(one)
    assert len(parser.dots) == 1 and parser.dots[0][1] == 56 + (600 - 56 - 10) / 2
    assert "<script" not in one and "&lt;script&gt;" in one
    skipped = [run("j", RunStatus.SKIPPED, 5)]
    assert duration_chart(skipped, "UTC", label="x") == (
        '<p class="empty">No finished run to chart yet.</p>'
    )


def test_hostile_text_is_escaped_on_the_job_page() -> None:
    job = JobStatus(
        name=EVIL,
        schedule=EVIL,
        zone=EVIL,
        next_fire=NOW,
        paused=True,
        paused_reason=EVIL,
        recent_runs=[run("x", RunStatus.FAILED, 1, run_id=EVIL, error=RunError(EVIL, EVIL))],
        settings=[SettingRow(EVIL, EVIL, "runtime")],
        audit=[AuditRow(NOW, EVIL, EVIL, EVIL, EVIL, reason=EVIL)],
        requests=[RequestRow(NOW, EVIL, EVIL, NOW, EVIL)],
        requests_open=1,
    )
    html = page(job)
    assert "<script" not in html.lower()
    assert html.count("&lt;script&gt;") >= 11
    errored = page(replace(relay(), requests_error=EVIL))
    assert "<script" not in errored.lower()
    assert f"Run requests unavailable: {html_escape(EVIL)}" in errored


def test_history_errors_show_instead_of_the_chart_and_list() -> None:
    html = page(replace(relay(), recent_runs=(), runs_error="TimeoutError: slow"))
    assert html.count("Run history unavailable: TimeoutError: slow") == 2
    assert "No run recorded yet." in page(replace(relay(), recent_runs=()))


def test_the_open_requests_show_in_the_order_they_run_with_who_asked() -> None:
    rows = [
        RequestRow(NOW - timedelta(days=2), "backfill", "alice@ops", NOW, "claimed"),
        RequestRow(NOW - timedelta(days=1), "backfill", "alice@ops", NOW, "pending"),
        RequestRow(NOW, "manual", "bob", NOW + timedelta(seconds=5), "pending"),
    ]
    html = page(replace(relay(), requests=rows, requests_open=3))
    section = html.split("<h2>Requested runs</h2>", 1)[1].split("</section>", 1)[0]
    cells = re.findall(
        r"<tr><td>(.*?)</td>.*?Trigger\">(.*?)<.*?by\">(.*?)<.*?State\">(.*?)<", section
    )
    assert cells == [
        ("2026-02-28 09:30:00 UTC", "backfill", "alice@ops", "claimed"),
        ("2026-03-01 09:30:00 UTC", "backfill", "alice@ops", "pending"),
        ("2026-03-02 09:30:00 UTC", "manual", "bob", "pending"),
    ]
    assert "more" not in section
    assert "2026-03-02 09:30:05 UTC" in section  # when bob asked
    more = page(replace(relay(), requests=rows[:1], requests_open=120))
    assert "and 119 more, run after these." in more


def test_a_job_without_requests_says_so() -> None:
    html = page(relay())
    assert "No run requested (financial jobs trigger / backfill)." in html
