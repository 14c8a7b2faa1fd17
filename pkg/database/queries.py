"""Named SQL queries kept in `.sql` files next to the code that runs them.

A file holds several queries, each introduced by a `-- name: <identifier>` line:

    -- name: backlog
    SELECT count(*) FROM outbox WHERE sent_at IS NULL;

Files are read once with importlib.resources, so they travel as package data.
"""

from __future__ import annotations

import re
from importlib import resources

_NAME_LINE = re.compile(r"^--\s*name:\s*(?P<name>[a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


class QueryFileError(ValueError):
    """A query file that does not follow the `-- name:` layout."""


def load_queries(package: str, resource: str) -> dict[str, str]:
    """The queries of `package`/`resource` by name, without their trailing semicolons."""
    text = resources.files(package).joinpath(resource).read_text(encoding="utf-8")
    return parse_queries(text, source=f"{package}/{resource}")


def parse_queries(text: str, *, source: str = "<string>") -> dict[str, str]:
    """Split a query file's text into `{name: sql}`."""
    matches = list(_NAME_LINE.finditer(text))
    if not matches:
        raise QueryFileError(f"{source}: no '-- name: <identifier>' line; expected one per query")
    queries: dict[str, str] = {}
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following is not None else len(text)
        sql = text[match.end() : end].strip().rstrip(";").strip()
        name = match["name"]
        if not sql:
            raise QueryFileError(f"{source}: query {name!r} is empty")
        if name in queries:
            raise QueryFileError(f"{source}: query {name!r} is defined twice")
        queries[name] = sql
    return queries
