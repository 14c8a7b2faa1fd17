"""Reading PostgreSQL DSNs for messages: where a DSN points, and the DSN with its password masked.

Both URI DSNs (`postgresql://user:secret@host:5432/db?sslmode=require`, including the
`?host=/run/postgresql` form of a Unix socket) and libpq keyword strings
(`host=db port=5432 password=secret`) are understood, so no error message or log line built from a
DSN ever shows its password.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"

_URI_SCHEMES = ("postgresql://", "postgres://")
_SECRET_KEYS = frozenset({"password", "sslpassword"})
# key = value pairs of a libpq keyword string; a value is a single-quoted string or a bare word.
_KEYWORD_PAIR = re.compile(r"(?P<key>\w+)\s*=\s*(?P<value>'(?:[^'\\]|\\.)*'|\S*)")


def _is_uri(dsn: str) -> bool:
    return dsn.strip().lower().startswith(_URI_SCHEMES)


def mask_dsn(dsn: str) -> str:
    """The DSN with any password (in the userinfo, a query parameter or a keyword) replaced by ***.

    A DSN that cannot be parsed at all is replaced by a placeholder rather than risk showing it.
    """
    if _is_uri(dsn):
        try:
            parts = urlsplit(dsn.strip())
            netloc = parts.netloc
            if "@" in netloc:
                userinfo, hosts = netloc.rsplit("@", 1)
                if ":" in userinfo:
                    user = userinfo.split(":", 1)[0]
                    userinfo = f"{user}:{MASK}"
                netloc = f"{userinfo}@{hosts}"
            query = parts.query
            if query:
                pairs = parse_qsl(query, keep_blank_values=True)
                query = urlencode(
                    [(k, MASK if k.lower() in _SECRET_KEYS else v) for k, v in pairs], safe="/:*"
                )
            return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
        except ValueError:
            return "<unparseable postgresql URI>"

    def _mask(match: re.Match[str]) -> str:
        if match.group("key").lower() in _SECRET_KEYS:
            return f"{match.group('key')}={MASK}"
        return match.group(0)

    return _KEYWORD_PAIR.sub(_mask, dsn)


def dsn_password(dsn: str) -> str | None:
    """The password a DSN carries, if any: used only to scrub it from third-party messages."""
    if _is_uri(dsn):
        try:
            parts = urlsplit(dsn.strip())
        except ValueError:
            return None
        if parts.password:
            return unquote(parts.password)
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key.lower() in _SECRET_KEYS and value:
                return value
        return None
    for match in _KEYWORD_PAIR.finditer(dsn):
        if match.group("key").lower() in _SECRET_KEYS:
            value = match.group("value").strip("'")
            return value or None
    return None


def describe_dsn(dsn: str) -> str:
    """Where a DSN points, as `host:port/database` (or `socket/database`), no user or secret.

    Defaults are filled in as libpq would: port 5432, host `localhost`, database named as the user.
    """
    host: str | None = None
    port: str | None = None
    database: str | None = None
    user: str | None = None
    if _is_uri(dsn):
        try:
            parts = urlsplit(dsn.strip())
            hosts = parts.netloc.rsplit("@", 1)[-1]
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
        except ValueError:
            return "<unparseable postgresql URI>"
        user = unquote(parts.username) if parts.username else None
        if hosts:
            # `host:port`, `[::1]:port` or a comma list; keep it as written, minus credentials.
            host_part, _, port_part = hosts.rpartition(":")
            if "," in hosts:
                host = unquote(hosts)
            elif host_part and port_part.isdigit() and not hosts.endswith("]"):
                host, port = unquote(host_part), port_part
            else:
                host = unquote(hosts)
        database = unquote(parts.path.lstrip("/")) or None
        host = query.get("host", host)
        port = query.get("port", port)
        database = query.get("dbname", database)
        user = query.get("user", user)
    else:
        pairs = {
            m.group("key").lower(): m.group("value").strip("'") for m in _KEYWORD_PAIR.finditer(dsn)
        }
        host, port = pairs.get("host"), pairs.get("port")
        database, user = pairs.get("dbname"), pairs.get("user")
    host = host or "localhost"
    database = database or user or "postgres"
    if host.startswith("/"):
        return f"{host} (unix socket, port {port or 5432})/{database}"
    if "," in host:
        return f"{host}/{database}"
    return f"{host}:{port or 5432}/{database}"


def scrub(text: str, dsn: str) -> str:
    """`text` with the DSN's password (if it appears verbatim) replaced by ***."""
    password = dsn_password(dsn)
    if password:
        text = text.replace(password, MASK)
    return text
