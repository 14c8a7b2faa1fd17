"""The status page at `/`: every job, its schedule, next tick, paused state and recent runs.

Plain server-rendered HTML with its CSS inline and no script, font or image from anywhere: it
works from a laptop through `kubectl port-forward` or on a phone over an SSH tunnel, and the
server's Content-Security-Policy forbids anything else. Every value from a job, a run or an
error is escaped. Times are shown in the job's own zone and in UTC: the server cannot know the
reader's zone without a script.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from financial.pkg.health.model import Check, JobStatus
from financial.pkg.jobs.model import RunStatus
from financial.pkg.observability.masking import mask_secrets
from financial.pkg.scheduler.store import RunRecord

# Status colours, chosen so each stands apart from its neighbours on the strip; the status word is
# always in the square's tooltip, its accessible name and the run list, never the colour alone.
STATUS_COLOURS: dict[RunStatus, tuple[str, str]] = {
    RunStatus.SUCCEEDED: ("#2e7d32", "green"),
    RunStatus.FAILED: ("#d32f2f", "red"),
    RunStatus.TIMED_OUT: ("#ef6c00", "orange"),
    RunStatus.SKIPPED: ("#9e9e9e", "grey"),
    RunStatus.MISSED: ("#fbc02d", "yellow"),
    RunStatus.INTERRUPTED: ("#7b1fa2", "purple"),
    RunStatus.ABANDONED: ("#6d0000", "dark red"),
    RunStatus.RUNNING: ("#1565c0", "blue"),
    RunStatus.PENDING: ("#90caf9", "light blue"),
}

_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"})
ERROR_TITLE_CHARS = 300
ERROR_LIST_CHARS = 500


@dataclass(frozen=True, slots=True)
class StatusReport:
    """Everything the page shows, gathered by the server for one request."""

    title: str
    now: datetime
    liveness: Check
    readiness: Sequence[Check]
    jobs: Sequence[JobStatus]
    jobs_error: str | None = None


def render_status_page(report: StatusReport) -> str:
    """The whole page as one HTML string."""
    title = _e(report.title)
    jobs = "\n".join(_job(job, report.now) for job in report.jobs)
    if report.jobs_error is not None:
        jobs = f'<p class="alert">Jobs unavailable: {_e(report.jobs_error)}</p>\n' + jobs
    elif not report.jobs:
        jobs = '<p class="empty">No job is registered.</p>'
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · status</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{title}</h1>
{_summary(report)}
</header>
<main>
{jobs}
</main>
<footer>
<h2>Legend</h2>
<ul class="legend">
{_legend()}
</ul>
<p class="note">Each square is one run, oldest on the left. Hover a square, or open
"Recent runs", for its tick, start, duration and error.</p>
</footer>
</body>
</html>
"""


def _summary(report: StatusReport) -> str:
    ready = all(check.ok for check in report.readiness)
    live = report.liveness
    pills = [
        _pill("live" if live.ok else "stalled", live.ok, live.detail),
        _pill("ready" if ready else "not ready", ready, ""),
    ]
    failing = [c for c in report.readiness if not c.ok]
    reasons = ""
    if failing:
        items = "".join(f"<li>{_e(c.name)}: {_e(c.detail)}</li>" for c in failing)
        reasons = f'\n<ul class="reasons">{items}</ul>'
    count = len(report.jobs)
    stuck = sum(job.stuck_threads for job in report.jobs)
    stuck_text = f" · {_stuck(stuck)}" if stuck else ""
    return (
        f'<p class="summary">{" ".join(pills)} <span>{count} job{"" if count == 1 else "s"}'
        f" · {_e(live.detail)}{stuck_text} · page rendered {_e(_utc(report.now))}</span></p>"
        f"{reasons}"
    )


def _stuck(count: int) -> str:
    return f"{count} stuck thread{'' if count == 1 else 's'}"


def _pill(label: str, ok: bool, detail: str) -> str:
    cls = "ok" if ok else "bad"
    title = f' title="{_e(detail)}"' if detail else ""
    return f'<span class="pill {cls}"{title}>{_e(label)}</span>'


def _job(job: JobStatus, now: datetime) -> str:
    name = _e(job.name)
    badges = []
    if job.disabled:
        badges.append('<span class="badge">disabled</span>')
    if job.paused:
        why = f' title="{_e(job.paused_reason)}"' if job.paused_reason else ""
        badges.append(f'<span class="badge"{why}>paused</span>')
    badge = (" " + " ".join(badges)) if badges else ""
    runs = list(reversed(job.recent_runs))  # oldest first, so the strip reads left to right
    if job.next_fire is None:
        next_fire = "—"
    else:
        # A job in UTC would show the same instant twice.
        utc = "" if job.zone in _UTC_NAMES else f"{_utc(job.next_fire)} · "
        next_fire = (
            f"{_e(_local(job.next_fire, job.zone))}"
            f'<br><span class="sub">{_e(utc)}{_e(_relative(job.next_fire, now))}</span>'
        )
    success = next((r for r in job.recent_runs if r.status is RunStatus.SUCCEEDED), None)
    if success is not None:
        at = success.finished_at or success.scheduled_at
        last_success = f"{_e(_local(at, job.zone))} · {_e(_relative(at, now))}"
    elif job.recent_runs:
        last_success = f"none in the last {len(job.recent_runs)} runs"
    else:
        last_success = "—"
    paused = ""
    if job.paused:
        paused = f"\n<dt>Paused</dt><dd>{_e(job.paused_reason or 'yes')}</dd>"
    if job.disabled:
        paused += "\n<dt>Disabled</dt><dd>in configuration: no ticks</dd>"
    if job.stuck_threads:
        # A blocking run abandoned at its timeout whose thread has not returned yet.
        badges.append(f'<span class="badge">{_stuck(job.stuck_threads)}</span>')
        badge = " " + " ".join(badges)
        paused += (
            f"\n<dt>Stuck threads</dt><dd>{job.stuck_threads}: timed-out runs whose thread "
            "still runs the job</dd>"
        )
    if job.runs_error is not None:
        strip = f'<p class="alert">Run history unavailable: {_e(job.runs_error)}</p>'
    elif not runs:
        strip = '<p class="empty">No run recorded yet.</p>'
    else:
        squares = "".join(_square(run, job.zone, now) for run in runs)
        items = "\n".join(_run_item(run, job.zone, now) for run in job.recent_runs)
        strip = (
            f'<div class="strip" role="list" aria-label="Recent runs of {name}, oldest first">'
            f"{squares}</div>\n"
            f"<details><summary>Recent runs ({len(runs)}, newest first)</summary>\n"
            f'<ol class="runs">\n{items}\n</ol></details>'
        )
    quiet = " paused" if job.paused or job.disabled else ""
    calendar = (
        f"\n<dt>Calendar</dt><dd>{_e(job.calendar)} (on holiday: {_e(job.on_holiday)})</dd>"
        if job.calendar
        else ""
    )
    return f"""<section class="job{quiet}" id="job-{name}">
<h2>{name}{badge}</h2>
<dl>
<dt>Schedule</dt><dd><code>{_e(job.schedule)}</code></dd>
<dt>Zone</dt><dd>{_e(job.zone)}</dd>{calendar}
<dt>Next run</dt><dd>{next_fire}</dd>
<dt>Last success</dt><dd>{last_success}</dd>{paused}
</dl>
{strip}
</section>"""


def _square(run: RunRecord, zone: str, now: datetime) -> str:
    label = _e("\n".join(_run_facts(run, zone, now, ERROR_TITLE_CHARS)))
    return (
        f'<a class="run s-{_e(run.status.value)}" role="listitem" href="#run-{_e(run.run_id)}" '
        f'title="{label}" aria-label="{label}"></a>'
    )


def _run_item(run: RunRecord, zone: str, now: datetime) -> str:
    facts = _run_facts(run, zone, now, ERROR_LIST_CHARS)
    head, rest = facts[0], facts[1:]
    details = "".join(f"<br>{_e(line)}" for line in rest)
    return (
        f'<li id="run-{_e(run.run_id)}"><span class="dot s-{_e(run.status.value)}"></span>'
        f"<strong>{_e(head)}</strong>{details}</li>"
    )


def _run_facts(run: RunRecord, zone: str, now: datetime, error_chars: int) -> list[str]:
    attempt = f" (attempt {run.attempt})" if run.attempt > 1 else ""
    facts = [f"{run.status.value}{attempt}", f"tick {_local(run.scheduled_at, zone)}"]
    if run.started_at is not None:
        facts.append(f"started {_local(run.started_at, zone)}")
    if run.duration_ms is not None:
        facts.append(f"took {_duration(run.duration_ms / 1000.0)}")
    elif run.status is RunStatus.RUNNING and run.started_at is not None:
        facts.append(f"running for {_duration((now - run.started_at).total_seconds())}")
    if run.error is not None:
        # Masked again here: a row written before errors were masked at the source.
        message = mask_secrets(run.error.message)
        if len(message) > error_chars:
            message = message[: error_chars - 1] + "…"
        facts.append(f"error {run.error.type}: {message}")
    return facts


def _legend() -> str:
    return "\n".join(
        f'<li><span class="dot s-{status.value}"></span>{status.value} ({name})</li>'
        for status, (_, name) in STATUS_COLOURS.items()
    )


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return ZoneInfo("UTC")


def _local(at: datetime, zone: str) -> str:
    return at.astimezone(_zone(zone)).strftime("%a %Y-%m-%d %H:%M:%S %Z")


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _relative(at: datetime, now: datetime) -> str:
    seconds = (at - now).total_seconds()
    if abs(seconds) < 1:
        return "now"
    span = _duration(abs(seconds), coarse=True)
    return f"in {span}" if seconds > 0 else f"{span} ago"


def _duration(seconds: float, *, coarse: bool = False) -> str:
    if seconds < 1 and not coarse:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.0f} s" if coarse else f"{seconds:.1f} s"
    counts = []
    rest = int(seconds)
    for unit, size in _UNITS:
        count, rest = divmod(rest, size)
        counts.append((count, unit))
    # The largest unit and the one below it: "2 d 3 h", "5 min 7 s", "1 h".
    first = next(i for i, (count, _) in enumerate(counts) if count)
    shown = [f"{count} {unit}" for count, unit in counts[first : first + 2] if count]
    return " ".join(shown)


_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def _status_css() -> str:
    return "".join(
        f".s-{status.value}{{background:{colour}}}"
        for status, (colour, _) in STATUS_COLOURS.items()
    )


_CSS = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:#1b1b1b;background:#f4f5f7}
header,main,footer{max-width:60rem;margin:0 auto;padding:0 1rem}
h1{font-size:1.4rem;margin:1rem 0 .25rem;overflow-wrap:anywhere}
h2{font-size:1.1rem;margin:0 0 .5rem;overflow-wrap:anywhere}
.summary{margin:.25rem 0 1rem;color:#444}
.pill{display:inline-block;padding:.05rem .55rem;border-radius:1rem;color:#fff;font-weight:600}
.pill.ok{background:#2e7d32}.pill.bad{background:#d32f2f}
.reasons{margin:-.5rem 0 1rem;color:#b71c1c}
.job{background:#fff;border:1px solid #dfe1e5;border-radius:.5rem;padding:.85rem;margin:0 0 .85rem}
.job.paused{background:#fafafa;border-style:dashed}
.badge{font-size:.8rem;font-weight:600;vertical-align:middle;background:#5f6368;color:#fff;
padding:.05rem .45rem;border-radius:.25rem;margin-left:.35rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem .75rem;margin:0 0 .6rem}
dt{color:#5f6368}dd{margin:0;overflow-wrap:anywhere}
code{font-size:.95em;background:#f1f3f4;padding:0 .25rem;border-radius:.2rem}
.sub{color:#5f6368;font-size:.9em}
.strip{display:flex;flex-wrap:wrap;gap:3px;margin:.25rem 0 .4rem}
.run{display:block;width:14px;height:14px;border-radius:2px}
.run:hover,.run:focus{outline:2px solid #1b1b1b;outline-offset:1px}
.dot{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.4em;
vertical-align:baseline}
details summary{cursor:pointer;color:#1a5fb4}
.runs{margin:.4rem 0 0;padding-left:1.3rem;font-size:.92em}
.runs li{margin:0 0 .4rem;overflow-wrap:anywhere}
.runs li:target{background:#fff8c5}
.alert{color:#b71c1c}.empty{color:#5f6368}
footer{padding-bottom:1.5rem}
.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.3rem 1rem;margin:0}
.note{color:#5f6368;font-size:.9em}
""" + _status_css()
