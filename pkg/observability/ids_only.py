"""The ids-only tracer: trace and span ids for log lines when no span would be exported.

A shortcut of its own (STYLE 13). Without an OTLP endpoint nothing reads a span, yet every log
line of a run should carry `trace_id` and `span_id`, and database and broker spans started during
the run should share its trace id. `IdsOnlyTracer` makes non-recording spans with fresh ids, and
`ids_only_hook` is the run's tracing hook for it: it sets the context variables behind
OpenTelemetry's current context and structlog's bound ids directly, skipping the span's name,
attributes and status. `tests/unit/test_ids_only.py` checks that it leaves a run in the same
state as the plain tracing hook with this tracer; what it saves is in
`benchmarks/README.md#what-the-shortcuts-save`.
"""

from __future__ import annotations

import contextvars
import random
from collections.abc import Sequence
from contextvars import Token
from typing import cast

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanContext, SpanKind
from opentelemetry.util.types import Attributes

from financial.pkg.jobs.context import JobContext
from financial.pkg.scheduler.execution.chain import Around, Outcome

# Ids drawn as the SDK's `RandomIdGenerator` draws them, without its method calls.
TRACE_ID_BITS = 128
SPAN_ID_BITS = 64
_TRACE_FLAGS = trace.DEFAULT_TRACE_OPTIONS  # immutable, shared by the SDK's span contexts too
_TRACE_STATE = trace.DEFAULT_TRACE_STATE


class IdsOnlyTracer(trace.NoOpTracer):
    """Non-recording spans with fresh ids: what log correlation needs when nothing exports.

    A run gets a new trace id, a span inside it keeps its parent's trace id; the no-op
    tracer's `start_as_current_span` goes through `start_span`, so child spans work too.
    """

    def start_span(
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        trace_id = trace_id_under(trace.get_current_span(context))
        return trace.NonRecordingSpan(span_context(trace_id, new_id(SPAN_ID_BITS)))


def new_id(bits: int) -> int:
    new = random.getrandbits(bits)
    while not new:  # zero is the invalid id
        new = random.getrandbits(bits)
    return new


def trace_id_under(parent: object) -> int:
    """The trace id of a span started under `parent`: its own if it is a valid span."""
    ids = parent.get_span_context() if isinstance(parent, Span) else trace.INVALID_SPAN_CONTEXT
    return ids.trace_id if ids.is_valid else new_id(TRACE_ID_BITS)


def span_context(trace_id: int, span_id: int) -> SpanContext:
    """`SpanContext(trace_id, span_id, is_remote=False)` for ids known to be valid.

    The constructor re-checks the ranges and fills in defaults, which ids drawn here need not:
    the tuple is built directly, and its layout is pinned by a test against the constructor.
    """
    return tuple.__new__(SpanContext, (trace_id, span_id, False, _TRACE_FLAGS, _TRACE_STATE, True))


class _IdsOnlyHook(Around):
    """Binds a fresh span's ids for the attempt and restores the previous values at its exit."""

    __slots__ = ("_otel_var", "_span_id_var", "_span_key", "_trace_id_var")

    def __init__(
        self,
        otel_var: contextvars.ContextVar[otel_context.Context],
        span_key: str,
        trace_id_var: contextvars.ContextVar[object],
        span_id_var: contextvars.ContextVar[object],
    ) -> None:
        self._otel_var = otel_var
        self._span_key = span_key
        self._trace_id_var = trace_id_var
        self._span_id_var = span_id_var

    def enter(self, ctx: JobContext) -> object:
        current = self._otel_var.get()
        parent = current.get(self._span_key)
        # Skipping `trace_id_under` for a run outside any span saves its isinstance check.
        trace_id = new_id(TRACE_ID_BITS) if parent is None else trace_id_under(parent)
        span_id = new_id(SPAN_ID_BITS)
        span = trace.NonRecordingSpan(span_context(trace_id, span_id))
        context_token = self._otel_var.set(otel_context.Context({**current, self._span_key: span}))
        # Lowercase and zero-padded like format_trace_id, without the format() call.
        trace_token = self._trace_id_var.set(trace_id.to_bytes(16).hex())
        span_token = self._span_id_var.set(span_id.to_bytes(8).hex())
        return context_token, trace_token, span_token

    def exit(
        self,
        ctx: JobContext,
        token: object,
        outcome: Outcome | None,
        error: BaseException | None,
    ) -> None:
        context_token, trace_token, span_token = cast(
            "tuple[Token[otel_context.Context], Token[object], Token[object]]", token
        )
        self._span_id_var.reset(span_token)
        self._trace_id_var.reset(trace_token)
        self._otel_var.reset(context_token)


def ids_only_hook() -> Around | None:
    """The tracing hook for `IdsOnlyTracer`; None when OpenTelemetry's runtime context is not
    the default one, backed by a context variable (`OTEL_PYTHON_CONTEXT`), and the plain hook
    must do."""
    # The variables are found through the public API, which sets them: in a scratch context.
    probe = trace.set_span_in_context(trace.INVALID_SPAN, otel_context.Context())
    scratch = contextvars.copy_context()
    otel_token = scratch.run(otel_context.attach, probe)
    log_tokens = scratch.run(structlog.contextvars.bind_contextvars, trace_id=None, span_id=None)
    found = scratch.get(otel_token.var) if isinstance(otel_token, contextvars.Token) else None
    if found is not probe or scratch.run(otel_context.get_current) is not probe or len(probe) != 1:
        return None
    (span_key,) = probe
    return _IdsOnlyHook(
        otel_token.var, span_key, log_tokens["trace_id"].var, log_tokens["span_id"].var
    )
