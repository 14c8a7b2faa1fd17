"""The company's own closed dates: `WORKER_CLOSED_DATES` and the file of
`WORKER_CLOSED_DATES_FILE`, read when the settings load so a bad line stops every command."""

from __future__ import annotations

from datetime import date
from pathlib import Path


def parse_date(text: str) -> date | None:
    """`YYYY-MM-DD` as a date, or None."""
    try:
        return date.fromisoformat(text.strip()) if len(text.strip()) == 10 else None
    except ValueError:
        return None


def read_closed_dates(path: Path) -> dict[date, str]:
    """A closed-dates file: one `YYYY-MM-DD` per line, optionally followed by a label
    (`2026-12-24 office closed`); blank lines and `#` comments are ignored. ValueError naming
    the line that is not."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"a readable file of dates ({exc.strerror or exc})") from None
    found: dict[date, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        day_text, _, label = content.partition(" ")
        day = parse_date(day_text)
        if day is None:
            raise ValueError(
                f"one date per line as YYYY-MM-DD, then an optional label "
                f"(line {number}: {day_text!r})"
            )
        found[day] = label.strip() or f"closed ({path.name})"
    return found
