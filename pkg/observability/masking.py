"""Masking credentials in text: the one masker of log lines, run records, pages and events.

`mask_secrets` is what the log processor runs on every string value, and what every other place
that shows or sends text which may hold a third party's words (an exception's message, a
traceback) runs before it stores, shows or sends it. It knows the usual shapes: URLs with
`user:password@`, `password=`, `token=`, `secret=`, `api_key=` (in key=value DSNs, query strings,
JSON and reprs), `Authorization: Bearer ...` / `Basic ...` headers and a bare `Bearer <token>`.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "is_secret_key", "mask_secrets"]

MASK = "***"

# `scheme://user:password@host`. The password runs to the last `@` before whitespace, so a
# password holding an unencoded `@` or `/` is still covered; masking a little too much (a URL
# without credentials but with an `@` further on) is the safe way to be wrong.
_URL_CREDENTIALS = re.compile(r"(?P<prefix>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@?#]*:)[^\s]*@")

# Names whose value is a secret. Unanchored on the left, so `access_token`, `client_secret`,
# `DB_PASSWORD` and `x-api-key` are covered by their last word.
_KEYWORDS = (
    r"pass(?:word|wd|phrase)|pwd|secret(?:[_-]?(?:access[_-]?)?key)?|private[_-]?key"
    r"|token|api[_-]?key|authorization"
)

# `password=xyz` (libpq key=value DSNs, query strings), `password: xyz`, `'password': 'xyz'`,
# `DB_PASSWORD=xyz`, `Authorization: Bearer xyz`. Quoted values keep
# their quotes, so masked JSON or reprs stay well formed; an HTTP auth scheme stays in clear
# (`Authorization: Basic ***`), since it says what kind of credential was there. The pattern
# starts at the keyword (whatever precedes it stays as it is) so that the regex engine can scan
# for a literal: this runs on every string value of every log line.
_KEY_VALUE_SECRET = re.compile(
    rf"""(?P<key>(?:{_KEYWORDS})["']?\s*[=:]\s*)
        (?P<scheme>(?:bearer|basic|digest|negotiate)\s+)?
        (?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s&;,'"]+)""",
    re.IGNORECASE | re.VERBOSE,
)

# A bearer token on its own (`... header Bearer xyz ...`): a second, rarer pattern, searched only
# when the word is there so that the common path pays nothing for it.
_BEARER = re.compile(r"(?P<key>\bbearer\s+)(?P<scheme>)(?P<value>[^\s&;,'\"]+)", re.IGNORECASE)

# Event-dict keys whose whole value is a secret, whatever its type. Kept in step with the
# keywords above so that a rendered `"api_token": 5` never needs masking as text.
_SECRET_KEY = re.compile(rf"(?:{_KEYWORDS}|credentials?)$", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """Return `text` with every credential in it masked.

    `"amqp://user:pw@host/"` becomes `"amqp://user:***@host/"`, `"host=db password=xyz"`
    becomes `"host=db password=***"`, `"Authorization: Bearer abc"` becomes
    `"Authorization: Bearer ***"`. Text without credentials comes back unchanged.
    """
    if "://" in text:
        text = _URL_CREDENTIALS.sub(rf"\g<prefix>{MASK}@", text)
    if "=" in text or ":" in text:
        text = _KEY_VALUE_SECRET.sub(_mask_key_value, text)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(_mask_key_value, text)
    return text


def _mask_key_value(match: re.Match[str]) -> str:
    value = match["value"]
    kept = match["key"] + (match["scheme"] or "")
    if value[0] in "\"'":
        return f"{kept}{value[0]}{MASK}{value[0]}"
    return f"{kept}{MASK}"


def is_secret_key(key: str) -> bool:
    """Whether a field named `key` (`password`, `db_password`, `api_key`, ...) holds a secret."""
    return _SECRET_KEY.search(key) is not None
