"""Text shared by the status page's views: escaping, times in a job's zone, durations, run facts.

Times are shown in the job's own zone and in UTC: the server cannot know the reader's zone
without a script.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

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

UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"})
ERROR_TITLE_CHARS = 160
ERROR_LIST_CHARS = 500


def e(text: str) -> str:
    """`text` escaped for HTML text and double-quoted attributes."""
    return html.escape(text, quote=True)


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The zone named, or UTC for a name this host does not know (the page still renders)."""
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return ZoneInfo("UTC")


def local(at: datetime, zone_name: str) -> str:
    """`at` in the job's zone, e.g. `Mon 2026-03-09 08:00:00 -03`."""
    return at.astimezone(zone(zone_name)).strftime("%a %Y-%m-%d %H:%M:%S %Z")


def utc(at: datetime) -> str:
    """`at` in UTC, e.g. `2026-03-09 11:00:00 UTC`."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def relative(at: datetime, now: datetime) -> str:
    """`in 1 min 30 s`, `5 s ago`, `now`."""
    seconds = (at - now).total_seconds()
    if abs(seconds) < 1:
        return "now"
    span = duration(abs(seconds), coarse=True)
    return f"in {span}" if seconds > 0 else f"{span} ago"


def duration(seconds: float, *, coarse: bool = False) -> str:
    """`12 ms`, `1.2 s`, `2 min 5 s`, `3 d 4 h`: the largest unit and the one below it."""
    if seconds < 1 and not coarse:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.0f} s" if coarse else f"{seconds:.1f} s"
    counts = []
    rest = int(seconds)
    for unit, size in _UNITS:
        count, rest = divmod(rest, size)
        counts.append((count, unit))
    first = next(i for i, (count, _) in enumerate(counts) if count)
    shown = [f"{count} {unit}" for count, unit in counts[first : first + 2] if count]
    return " ".join(shown)


_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def run_facts(
    run: RunRecord, zone_name: str, now: datetime, error_chars: int, *, started: bool = True
) -> list[str]:
    """A run in lines: status (and attempt), tick, start (unless `started` is False: the
    overview's squares leave it out, it is the tick give or take a moment, and formatting it
    for every square of 500 jobs costs a tenth of the page), duration, error (masked, cut)."""
    attempt = f" (attempt {run.attempt})" if run.attempt > 1 else ""
    facts = [f"{run.status.value}{attempt}", f"tick {local(run.scheduled_at, zone_name)}"]
    if started and run.started_at is not None:
        facts.append(f"started {local(run.started_at, zone_name)}")
    if run.duration_ms is not None:
        facts.append(f"took {duration(run.duration_ms / 1000.0)}")
    elif run.status is RunStatus.RUNNING and run.started_at is not None:
        facts.append(f"running for {duration((now - run.started_at).total_seconds())}")
    if run.error is not None:
        # Masked again here: a row written before errors were masked at the source.
        message = mask_secrets(run.error.message)
        if len(message) > error_chars:
            message = message[: error_chars - 1] + "…"
        facts.append(f"error {run.error.type}: {message}")
    return facts


def square(run: RunRecord, zone_name: str, now: datetime, href: str) -> str:
    """One run of a strip: a coloured square whose tooltip (its accessible name too: the link
    has no other text) holds its facts, and which links to the run on its job's page."""
    facts = run_facts(run, zone_name, now, ERROR_TITLE_CHARS, started=False)
    return (
        f'<a class="run s-{run.status.value}" role="listitem" href="{e(href)}" '
        f'title="{e(chr(10).join(facts))}"></a>'
    )
