"""The overview at `/`: one table row per job, late and failing jobs first, a red banner when any
job is late. Each row links to the job's own page (`job_page.py`) for its history and settings.

It renders hundreds of jobs (`benchmarks/status_page.py` measures 500): a row is a handful of
f-strings, and the recent runs come from one batched store query, not one per job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from financial.pkg.health.model import Check, JobStatus
from financial.pkg.health.page_format import UTC_NAMES, e, local, relative, square, utc
from financial.pkg.health.page_shell import badge, document, pills, plural
from financial.pkg.jobs.model import RunStatus

FAILING = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.ABANDONED})
"""A job whose last final run ended in one of these is failing (sorted first, after late ones)."""

STRIP_RUNS = 20
"""Squares on a row of the overview; the job's page shows its longer history."""


@dataclass(frozen=True, slots=True)
class StatusReport:
    """Everything the overview shows, gathered by the server for one request."""

    title: str
    now: datetime
    liveness: Check
    readiness: Sequence[Check]
    jobs: Sequence[JobStatus]
    jobs_error: str | None = None


def job_href(name: str) -> str:
    """The path of a job's page (the name percent-encoded; escape it for an attribute)."""
    return "/jobs/" + quote(name, safe="")


def last_final(job: JobStatus) -> RunStatus | None:
    """The status of the newest run that has ended (running and pending ones are skipped)."""
    return next((run.status for run in job.recent_runs if run.status.is_final), None)


def display_order(jobs: Sequence[JobStatus]) -> list[JobStatus]:
    """Late jobs first, then failing ones, then the rest; paused and disabled ones (unless late)
    last, even when their last run failed; by name within each group."""

    def rank(job: JobStatus) -> tuple[int, str]:
        if job.late:
            group = 0
        elif job.paused or job.disabled:
            group = 3  # an operator's pause, or configuration: known, whatever its last run
        elif last_final(job) in FAILING:
            group = 1
        else:
            group = 2
        return group, job.name

    return sorted(jobs, key=rank)


def render_overview(report: StatusReport) -> str:
    """The whole overview page as one HTML string."""
    jobs = display_order(report.jobs)
    late = [job for job in jobs if job.late]
    banner = ""
    if late:
        names = ", ".join(f'<a href="{e(job_href(j.name))}">{e(j.name)}</a>' for j in late)
        banner = f'<p class="banner" role="alert">{plural(len(late), "job")} late: {names}</p>\n'
    if report.jobs_error is not None:
        body = f'<p class="alert">Jobs unavailable: {e(report.jobs_error)}</p>'
    elif not jobs:
        body = '<p class="empty">No job is registered.</p>'
    else:
        rows = "\n".join(_row(job, report.now) for job in jobs)
        body = (
            '<table class="jobs stack">\n<thead><tr><th>Job</th><th>Last run</th><th>Next run</th>'
            "<th>Last success</th><th>Recent runs</th></tr></thead>\n"
            f"<tbody>\n{rows}\n</tbody>\n</table>"
        )
    title = e(report.title)
    header = f"<h1>{title}</h1>\n{_summary(report, len(late))}"
    return document(f"{report.title} · status", header, banner + body)


def _summary(report: StatusReport, late: int) -> str:
    shown, reasons = pills(report.liveness, report.readiness)
    stuck = sum(job.stuck_threads for job in report.jobs)
    extra = f" · {plural(stuck, 'stuck thread')}" if stuck else ""
    if late:
        extra += f" · {late} late"
    return (
        f'<p class="summary">{shown} <span>{plural(len(report.jobs), "job")}'
        f" · {e(report.liveness.detail)}{extra} · page rendered {e(utc(report.now))}</span></p>"
        f"{reasons}"
    )


def job_badges(job: JobStatus) -> str:
    """The late / paused / disabled / stuck badges of a job, each with a leading space."""
    badges = []
    if job.late:
        since = f"late since {utc(job.late_since)}" if job.late_since else None
        badges.append(badge("late", title=since, kind="late"))
    if job.disabled:
        badges.append(badge("disabled"))
    if job.paused:
        badges.append(badge("paused", title=job.paused_reason))
    if job.stuck_threads:
        badges.append(badge(plural(job.stuck_threads, "stuck thread")))
    return "".join(" " + b for b in badges)


def next_run(job: JobStatus, now: datetime) -> str:
    """The next tick in the job's zone, with UTC and how far away it is (HTML)."""
    if job.next_fire is None:
        return "—"
    # A job in UTC would show the same instant twice.
    in_utc = "" if job.zone in UTC_NAMES else f"{utc(job.next_fire)} · "
    return (
        f"{e(local(job.next_fire, job.zone))}"
        f'<br><span class="sub">{e(in_utc)}{e(relative(job.next_fire, now))}</span>'
    )


def last_success(job: JobStatus, now: datetime) -> str:
    """When the job last succeeded (HTML), from `last_success_at` or its recent runs."""
    at = job.last_success_at
    if at is None:
        success = next((r for r in job.recent_runs if r.status is RunStatus.SUCCEEDED), None)
        if success is not None:
            at = success.finished_at or success.scheduled_at
    if at is not None:
        return f"{e(local(at, job.zone))} · {e(relative(at, now))}"
    if job.recent_runs:
        return f"none in the last {len(job.recent_runs)} runs"
    return "—"


def _row(job: JobStatus, now: datetime) -> str:
    name = e(job.name)
    href = job_href(job.name)
    last = last_final(job)
    if job.runs_error is not None:
        status = '<span class="alert">history unavailable</span>'
    elif last is None:
        status = '<span class="empty">no run yet</span>'
    else:
        status = f'<span class="nowrap"><span class="dot s-{last.value}"></span>{last.value}</span>'
    if job.runs_error is not None:
        strip = f'<span class="alert">{e(job.runs_error)}</span>'
    elif job.recent_runs:
        runs = job.recent_runs[:STRIP_RUNS]
        squares = "".join(
            square(run, job.zone, now, f"{href}#run-{run.run_id}") for run in reversed(runs)
        )
        strip = (
            f'<div class="strip" role="list" aria-label="Recent runs of {name}, oldest first">'
            f"{squares}</div>"
        )
    else:
        strip = ""
    classes = " ".join(
        c for c in ("late" if job.late else "", "quiet" if job.paused or job.disabled else "") if c
    )
    cls = f' class="{classes}"' if classes else ""
    schedule = f'<br><code class="sub">{e(job.schedule)}</code>'
    return (
        f'<tr id="job-{name}"{cls}><td><a href="{e(href)}">{name}</a>{job_badges(job)}{schedule}'
        f'</td><td data-label="Last run">{status}</td>'
        f'<td data-label="Next run">{next_run(job, now)}</td>'
        f'<td data-label="Last success">{last_success(job, now)}</td>'
        f'<td data-label="Runs">{strip}</td></tr>'
    )
