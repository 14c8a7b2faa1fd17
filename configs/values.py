"""Parsers of single setting values that more than one setting uses."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

__all__ = ["check_url", "parse_host_port"]


def parse_host_port(value: str) -> tuple[str, int]:
    """Split `host:port` (`[::1]:8080` for IPv6; an empty host means every interface)."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError("host:port such as 127.0.0.1:8080, or empty to turn it off")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host or any(c.isspace() for c in host):
        raise ValueError("host:port such as 127.0.0.1:8080 ([::1]:8080 for IPv6), or empty")
    return host, int(port)


def check_url(value: str, schemes: Sequence[str]) -> None:
    """ValueError saying what was expected unless `value` is a URL of one of `schemes`
    with a valid port."""
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in schemes:
        raise ValueError(f"a URL starting with {' or '.join(s + '://' for s in schemes)}")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked for it
    except ValueError:
        raise ValueError(f"a {schemes[0]}:// URL whose port is a number from 0 to 65535") from None
