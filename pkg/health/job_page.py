"""A job's own page at `/jobs/<name>`: its state, its runtime settings and where each value
comes from, their audit, its durations over time, the runs asked for and not done yet, and its
history run by run.

Read-only like every page: the settings are changed with `financial jobs set`, never here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from financial.pkg.health.duration_chart import duration_chart
from financial.pkg.health.model import AuditRow, Check, JobStatus, RequestRow, SettingRow
from financial.pkg.health.overview import job_badges, last_success, next_run
from financial.pkg.health.page_format import ERROR_LIST_CHARS, e, run_facts, utc
from financial.pkg.health.page_shell import document, pills
from financial.pkg.scheduler.store import RunRecord

SOURCE_WORDS = {
    "runtime": "runtime (financial jobs set)",
    "env": "environment",
    "code": "code",
    "default": "worker default",
}


@dataclass(frozen=True, slots=True)
class JobReport:
    """What a job's page shows, gathered by the server for one request."""

    title: str
    now: datetime
    liveness: Check
    readiness: Sequence[Check]
    job: JobStatus


def render_job_page(report: JobReport) -> str:
    """The job's page as one HTML string."""
    job = report.job
    name = e(job.name)
    shown, reasons = pills(report.liveness, report.readiness)
    header = (
        f'<p class="sub"><a href="/">← all jobs</a> · {e(report.title)}</p>\n'
        f"<h1>{name}{job_badges(job)}</h1>\n"
        f'<p class="summary">{shown} <span>page rendered {e(utc(report.now))}</span></p>{reasons}'
    )
    banner = ""
    if job.late:
        since = f" since {e(utc(job.late_since))}" if job.late_since else ""
        banner = (
            f'<p class="banner" role="alert">Late{since}: no success within its alert window, '
            "or a tick that did not start in time.</p>\n"
        )
    runs = job.recent_runs
    if job.runs_error is not None:
        chart = history = f'<p class="alert">Run history unavailable: {e(job.runs_error)}</p>'
    else:
        chart = duration_chart(runs, job.zone, label=f"Durations of {job.name}, oldest first")
        history = _history(runs, job.zone, report.now)
    main = (
        f'{banner}<section class="card">\n{_facts(job, report.now)}\n</section>\n'
        f'<section class="card">\n<h2>Settings</h2>\n{_settings(job.settings)}\n'
        f"<h3>Changes</h3>\n{_audit(job.audit)}\n</section>\n"
        f'<section class="card">\n<h2>Durations</h2>\n{chart}\n</section>\n'
        # After the chart: the chart stays on a phone's first screen.
        f'<section class="card">\n<h2>Requested runs</h2>\n{_requests(job)}\n</section>\n'
        f'<section class="card">\n<h2>History ({len(runs)} runs, newest first)</h2>\n'
        f"{history}\n</section>"
    )
    return document(f"{job.name} · {report.title}", header, main)


def _facts(job: JobStatus, now: datetime) -> str:
    rows = [
        ("Schedule", f"<code>{e(job.schedule)}</code>"),
        ("Zone", e(job.zone)),
    ]
    if job.calendar:
        rows.append(("Calendar", f"{e(job.calendar)} (on holiday: {e(job.on_holiday)})"))
    rows += [("Next run", next_run(job, now)), ("Last success", last_success(job, now))]
    if job.paused:
        rows.append(("Paused", e(job.paused_reason or "yes")))
    if job.disabled:
        rows.append(("Disabled", "no ticks"))
    if job.stuck_threads:
        rows.append(
            (
                "Stuck threads",
                f"{job.stuck_threads}: timed-out runs whose thread still runs the job",
            )
        )
    items = "\n".join(f"<dt>{term}</dt><dd>{value}</dd>" for term, value in rows)
    return f"<dl>\n{items}\n</dl>"


def _requests(job: JobStatus) -> str:
    if job.requests_error is not None:
        return f'<p class="alert">Run requests unavailable: {e(job.requests_error)}</p>'
    if not job.requests:
        return '<p class="empty">No run requested (financial jobs trigger / backfill).</p>'
    rows = "\n".join(_request_row(row) for row in job.requests)
    more = job.requests_open - len(job.requests)
    note = f'\n<p class="note">and {more} more, run after these.</p>' if more > 0 else ""
    return (
        '<table class="stack"><thead><tr><th>Tick</th><th>Trigger</th><th>Requested by</th>'
        "<th>Requested at</th><th>State</th></tr></thead>\n"
        f"<tbody>\n{rows}\n</tbody></table>{note}"
    )


def _request_row(row: RequestRow) -> str:
    return (
        f"<tr><td>{e(utc(row.tick))}</td>"
        f'<td data-label="Trigger">{e(row.trigger)}</td>'
        f'<td data-label="Requested by">{e(row.requested_by)}</td>'
        f'<td data-label="Requested at">{e(utc(row.requested_at))}</td>'
        f'<td data-label="State">{e(row.state)}</td></tr>'
    )


def _settings(settings: Sequence[SettingRow]) -> str:
    if not settings:
        return '<p class="empty">No settings reported.</p>'
    rows = "\n".join(
        f'<tr class="src-{e(row.source)}"><td>{e(row.field)}</td>'
        f'<td data-label="Value"><code>{e(row.value)}</code></td>'
        f'<td data-label="From">{e(SOURCE_WORDS.get(row.source, row.source))}</td></tr>'
        for row in settings
    )
    return (
        '<table class="stack"><thead><tr><th>Setting</th><th>Value</th><th>From</th></tr>'
        "</thead>\n"
        f"<tbody>\n{rows}\n</tbody></table>\n"
        '<p class="note">Precedence: runtime setting, then environment, then code, then the '
        "worker-wide default.</p>"
    )


def _audit(audit: Sequence[AuditRow]) -> str:
    if not audit:
        return '<p class="empty">No runtime change recorded.</p>'
    rows = "\n".join(
        f'<tr><td>{e(utc(row.at))}</td><td data-label="By">{e(row.by)}</td>'
        f'<td data-label="Change">{_change(row)}</td>'
        f'<td data-label="Reason">{e(row.reason or "—")}</td></tr>'
        for row in audit
    )
    return (
        '<table class="stack"><thead><tr><th>When</th><th>By</th><th>Change</th><th>Reason</th>'
        f"</tr></thead>\n<tbody>\n{rows}\n</tbody></table>"
    )


def _change(row: AuditRow) -> str:
    if row.field is None:
        return e(row.summary or "")
    old = "—" if row.old is None else f"<code>{e(row.old)}</code>"
    new = "—" if row.new is None else f"<code>{e(row.new)}</code>"
    return f"{e(row.field)}: {old} → {new}"


def _history(runs: Sequence[RunRecord], zone_name: str, now: datetime) -> str:
    if not runs:
        return '<p class="empty">No run recorded yet.</p>'
    items = "\n".join(_run_item(run, zone_name, now) for run in runs)
    return f'<ol class="runs">\n{items}\n</ol>'


def _run_item(run: RunRecord, zone_name: str, now: datetime) -> str:
    facts = run_facts(run, zone_name, now, ERROR_LIST_CHARS)
    head, rest = facts[0], facts[1:]
    details = "".join(f"<br>{e(line)}" for line in rest)
    trigger = f" · {e(run.trigger.value)}" if run.trigger.value != "schedule" else ""
    # Which replica ran it: every replica's page shows every replica's runs (from the database).
    worker = f'<br><span class="sub">on {e(run.worker_id)}</span>' if run.worker_id else ""
    return (
        f'<li id="run-{e(run.run_id)}"><span class="dot s-{run.status.value}"></span>'
        f"<strong>{e(head)}</strong>{trigger}{details}{worker}</li>"
    )
