"""The ids of the current span, for run records and log lines.

Apart from the tracing setup so the scheduler's chain can read them without importing it.
"""

from __future__ import annotations

from opentelemetry import trace


def current_trace_id() -> str | None:
    """The current span's trace id (32 hex characters), or None outside any valid span."""
    ids = trace.get_current_span().get_span_context()
    return trace.format_trace_id(ids.trace_id) if ids.is_valid else None


def current_span_id() -> str | None:
    """The current span's id (16 hex characters), or None outside any valid span."""
    ids = trace.get_current_span().get_span_context()
    return trace.format_span_id(ids.span_id) if ids.is_valid else None
