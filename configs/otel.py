"""The standard `OTEL_*` variables, parsed and checked: which exporters, where, and the resource.

OpenTelemetry's SDK reads some of these itself and ignores what it cannot parse (a malformed
`OTEL_RESOURCE_ATTRIBUTES` entry is dropped with a log line nobody reads). The worker parses them
at start instead, through `settings.py`, so a typo is a clear error naming the variable,
the value and what was expected, and the worker does not start half-observed.

Choices where the specification leaves room, or where this worker keeps its own habits:

- `OTEL_METRICS_EXPORTER` unset means `prometheus` (the `/metrics` endpoint, as before), plus
  `otlp` when an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT` or the metrics one). The
  specification's default is `otlp` alone; dropping the scrape endpoint on upgrade would break
  every existing Prometheus setup.
- `OTEL_TRACES_EXPORTER` unset means `otlp` when an endpoint is set, else no export (the trace
  and span ids are still made for the log lines). `otlp` named without an endpoint sends to the
  specification's default, `http://localhost:4318`.
- Only OTLP over HTTP with protobuf is shipped (`OTEL_EXPORTER_OTLP_PROTOCOL` must be
  `http/protobuf` when set): the gRPC exporter pulls in grpcio, a large native dependency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = [
    "DEFAULT_OTLP_ENDPOINT",
    "METRICS_EXPORTERS",
    "TRACES_EXPORTERS",
    "OtlpTargets",
    "metrics_exporters",
    "otlp_targets",
    "parse_exporters",
    "parse_resource_attributes",
    "signal_url",
]

DEFAULT_OTLP_ENDPOINT = "http://localhost:4318"
TRACES_EXPORTERS = frozenset({"otlp", "none"})
METRICS_EXPORTERS = frozenset({"otlp", "prometheus", "none"})
PROTOCOLS = frozenset({"http/protobuf"})


def parse_exporters(raw: str | None, allowed: frozenset[str]) -> tuple[str, ...]:
    """A comma list of exporter names, lower-cased, without duplicates; () when unset.

    `none` cannot be combined with another name. The ValueError's text is what was expected
    (the settings name the variable and the value before it)."""
    if raw is None or not raw.strip():
        return ()
    names = [part.strip().lower() for part in raw.split(",")]
    expected = f"a comma list of {', '.join(sorted(allowed))}"
    for name in names:
        if name not in allowed:
            raise ValueError(f"{expected} ({name or '(empty)'!r} is not one)")
    unique = tuple(dict.fromkeys(names))
    if "none" in unique and len(unique) > 1:
        raise ValueError(f"{expected}, with 'none' alone")
    return unique


def parse_resource_attributes(raw: str | None) -> dict[str, str]:
    """`key1=value1,key2=value2` (values percent-decoded, W3C Baggage style) as a dict.

    Raises ValueError for an entry without `=` or with an empty key."""
    if raw is None or not raw.strip():
        return {}
    attributes: dict[str, str] = {}
    for entry in raw.split(","):
        if not entry.strip():
            continue
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            raise ValueError(
                f"key1=value1,key2=value2 (the entry {entry.strip()!r} is not key=value)"
            )
        attributes[key.strip()] = unquote(value.strip())
    return attributes


def check_endpoint(raw: str | None) -> str | None:
    """An OTLP/HTTP URL (`http` or `https`, with a host), or None when unset."""
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an http:// or https:// URL with a host, e.g. http://collector:4318")
    return value


def check_protocol(raw: str | None) -> str | None:
    """`OTEL_EXPORTER_OTLP_PROTOCOL`: only `http/protobuf` is shipped."""
    if raw is None or not raw.strip():
        return None
    value = raw.strip().lower()
    if value not in PROTOCOLS:
        raise ValueError("http/protobuf (the only OTLP transport installed; no gRPC)")
    return value


def signal_url(base: str | None, specific: str | None, path: str) -> str:
    """The URL one signal is sent to: its own variable as given (the specification says it is
    used as is), else the base endpoint with `v1/<signal>` appended, else the default's."""
    if specific:
        return specific
    return f"{(base or DEFAULT_OTLP_ENDPOINT).rstrip('/')}/{path}"


@dataclass(frozen=True, slots=True)
class OtlpTargets:
    """Where each signal goes; None means that signal is not exported over OTLP."""

    traces_url: str | None
    metrics_url: str | None


def metrics_exporters(
    chosen: Sequence[str], endpoint: str | None, metrics_endpoint: str | None
) -> frozenset[str]:
    """The metrics exporters in effect: `chosen` as given (`none`: none at all), or, unset,
    `prometheus` plus `otlp` when an endpoint is set."""
    if chosen:
        return frozenset(chosen) - {"none"}
    return frozenset({"prometheus", "otlp"} if endpoint or metrics_endpoint else {"prometheus"})


def otlp_targets(
    *,
    traces: Sequence[str],
    metrics: Sequence[str],
    endpoint: str | None,
    traces_endpoint: str | None,
    metrics_endpoint: str | None,
) -> OtlpTargets:
    """The OTLP URL of each signal, after the exporter choices above."""
    traces_on = "otlp" in traces if traces else bool(endpoint or traces_endpoint)
    metrics_on = "otlp" in metrics_exporters(metrics, endpoint, metrics_endpoint)
    return OtlpTargets(
        traces_url=signal_url(endpoint, traces_endpoint, "v1/traces") if traces_on else None,
        metrics_url=signal_url(endpoint, metrics_endpoint, "v1/metrics") if metrics_on else None,
    )
