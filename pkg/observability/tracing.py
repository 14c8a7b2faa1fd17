"""Traces: one OpenTelemetry span per attempt of a job, child spans for database and broker calls.

`setup_tracing` builds the SDK tracer provider once, in the composition root; nothing here
touches OpenTelemetry's globals at import time. `with_tracing(tracer)` is a chain wrapper
(`financial.pkg.scheduler.execution.chain`) and takes its tracer explicitly, so tests and the
daemon can hold different providers side by side.

While a run's span is current, its `trace_id` and `span_id` (lowercase hex, 32 and 16
characters) are bound in structlog's contextvars, so every log line of the run carries them, and
standard-library records too (the logging setup merges contextvars into both).

Span text leaves the process as log lines do, so exception messages and tracebacks recorded on
spans are masked with the same `mask_secrets` as the logs.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import threading
import traceback
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from os import environ

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import Attributes, AttributeValue

from financial.pkg.jobs.context import JobContext
from financial.pkg.jobs.model import RunStatus
from financial.pkg.observability.logging import mask_secrets
from financial.pkg.observability.trace_ids import current_span_id, current_trace_id
from financial.pkg.scheduler.execution.chain import Outcome, Step, Wrapper

__all__ = [
    "DEFAULT_SHUTDOWN_TIMEOUT_S",
    "SPAN_NAME_PREFIX",
    "Telemetry",
    "child_span",
    "current_span_id",
    "current_trace_id",
    "setup_tracing",
    "with_tracing",
]

log = structlog.get_logger("financial.tracing")

INSTRUMENTATION_NAME = "financial.scheduler"

SPAN_NAME_PREFIX = "job.run "
"""A run's span is named `job.run <job name>`: low cardinality, and grouped by job in a UI."""

DEFAULT_SHUTDOWN_TIMEOUT_S = 5.0
"""How long `Telemetry.shutdown` waits for the last spans to leave before it gives up on them."""

# Attribute keys, spelled once: they are used on every run.
ATTR_JOB_NAME = "job.name"
ATTR_RUN_ID = "job.run_id"
ATTR_SCHEDULED_AT = "job.scheduled_at"
ATTR_ATTEMPT = "job.attempt"
ATTR_TRIGGER = "job.trigger"
ATTR_STATUS = "job.status"

_EXCEPTION_MESSAGE = "exception.message"
_EXCEPTION_STACKTRACE = "exception.stacktrace"
_TRACES_ENDPOINT_VAR = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
_TRACES_PATH = "v1/traces"
_EXPORTER_STOP_GRACE_S = 0.5


@dataclass(slots=True)
class Telemetry:
    """The tracer the daemon hands out, and the provider behind it to flush at exit.

    Register `shutdown` on the worker's `AsyncExitStack` right after `setup_tracing`, so it runs
    last, after the scheduler has drained and every run's span has ended.
    """

    tracer: Tracer
    provider: TracerProvider | None = None
    exporter: SpanExporter | None = None
    shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S
    _closed: bool = field(default=False, init=False, repr=False)

    async def shutdown(self) -> None:
        """Export the spans still queued, then shut the provider down, in bounded time.

        Runs in a worker thread (the exporter blocks on HTTP); returns after at most about
        `shutdown_timeout_s` even when the collector is missing, dropping what was not sent.
        Calling it again does nothing.
        """
        provider = self._claim_shutdown()
        if provider is not None:
            # `_shutdown_bounded` is bounded itself, so this thread cannot outlive it and hold
            # up the loop's executor at exit.
            await asyncio.to_thread(self._shutdown_bounded, provider)

    def shutdown_blocking(self) -> None:
        """`shutdown` for callers without an event loop; blocks for at most about the timeout."""
        provider = self._claim_shutdown()
        if provider is not None:
            self._shutdown_bounded(provider)

    def _claim_shutdown(self) -> TracerProvider | None:
        if self._closed:
            return None
        self._closed = True
        return self.provider

    def _shutdown_bounded(self, provider: TracerProvider) -> None:
        # The SDK's own shutdown waits up to 30 s for the batch thread, and the exporter retries
        # for its whole timeout, so it runs on a daemon thread that we wait on with our bound.
        worker = threading.Thread(target=provider.shutdown, name="otel-shutdown", daemon=True)
        worker.start()
        worker.join(self.shutdown_timeout_s)
        if not worker.is_alive():
            return
        if self.exporter is not None:
            # Wakes the exporter from its retry backoff, so the batch thread ends soon too.
            self.exporter.shutdown()
            worker.join(_EXPORTER_STOP_GRACE_S)
        log.warning("tracing_shutdown_timed_out", timeout_s=self.shutdown_timeout_s)


def setup_tracing(
    service_name: str,
    *,
    endpoint: str | None,
    disabled: bool = False,
    exporter: SpanExporter | None = None,
    instance_id: str | None = None,
    shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S,
    set_global: bool = True,
) -> Telemetry:
    """Build the tracer provider: OTLP/HTTP export when `endpoint` is set.

    `endpoint` is the OTLP base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`, e.g.
    `http://collector:4318`); spans go to its `/v1/traces`, unless
    `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` names the full traces URL, which wins as the OTLP
    specification says. Headers, timeout, compression and TLS come from the other `OTEL_*`
    variables, read by the exporter. `exporter` replaces the OTLP exporter (tests pass an
    `InMemorySpanExporter`); either goes behind a `BatchSpanProcessor` (`OTEL_BSP_*`).

    With neither, nothing would read a span, so there is no provider and the tracer only
    makes ids (no SDK span, no attributes): log lines keep their `trace_id` and `span_id` at a
    few microseconds a run, and child spans share their run's trace id. `disabled` gives a
    no-op tracer (no spans, no ids; `with_tracing` adds nothing to a run). `instance_id`
    becomes `service.instance.id` (default: a random UUID); pass the worker id so traces and
    run records name the same
    worker. `set_global` also installs the provider as OpenTelemetry's global one, which the
    asyncpg and aio-pika instrumentations use; it can only be set once per process.
    """
    if disabled:
        return Telemetry(tracer=trace.NoOpTracer())
    if exporter is None:
        if not endpoint:
            return Telemetry(tracer=_IdsOnlyTracer())
        exporter = OTLPSpanExporter(endpoint=_traces_endpoint(endpoint))
    resource = Resource.create(
        {SERVICE_NAME: service_name, SERVICE_INSTANCE_ID: instance_id or str(uuid.uuid4())}
    )
    # No atexit hook: the exit stack owns shutdown, and the SDK's hook has no time bound.
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    if set_global:
        trace.set_tracer_provider(provider)
    return Telemetry(
        tracer=provider.get_tracer(INSTRUMENTATION_NAME),
        provider=provider,
        exporter=exporter,
        shutdown_timeout_s=shutdown_timeout_s,
    )


class _IdsOnlyTracer(trace.NoOpTracer):
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
        trace_id = _trace_id_under(trace.get_current_span(context))
        return trace.NonRecordingSpan(_span_context(trace_id, _new_id(_SPAN_ID_BITS)))


# Ids drawn as the SDK's `RandomIdGenerator` draws them, without its method calls.
_TRACE_ID_BITS = 128
_SPAN_ID_BITS = 64
_TRACE_FLAGS = trace.DEFAULT_TRACE_OPTIONS  # immutable, shared by the SDK's span contexts too
_TRACE_STATE = trace.DEFAULT_TRACE_STATE


def _new_id(bits: int) -> int:
    new_id = random.getrandbits(bits)
    while not new_id:  # zero is the invalid id
        new_id = random.getrandbits(bits)
    return new_id


def _trace_id_under(parent: object) -> int:
    """The trace id of a span started under `parent`: its own if it is a valid span."""
    ids = parent.get_span_context() if isinstance(parent, Span) else trace.INVALID_SPAN_CONTEXT
    return ids.trace_id if ids.is_valid else _new_id(_TRACE_ID_BITS)


def _span_context(trace_id: int, span_id: int) -> SpanContext:
    """`SpanContext(trace_id, span_id, is_remote=False)` for ids known to be valid.

    The constructor re-checks the ranges and fills in defaults, half the cost of an ids-only
    span; the tuple layout built here is pinned by a test against the constructor.
    """
    return tuple.__new__(SpanContext, (trace_id, span_id, False, _TRACE_FLAGS, _TRACE_STATE, True))


def _traces_endpoint(base: str) -> str | None:
    """The traces URL for an OTLP base URL; None lets the exporter read the signal's variable."""
    if environ.get(_TRACES_ENDPOINT_VAR):
        return None
    return f"{base.rstrip('/')}/{_TRACES_PATH}"


def with_tracing(tracer: Tracer) -> Wrapper:
    """One span per attempt, `job.run <job name>`, kind INTERNAL.

    The span is a child of the current span when there is one (a manual run started inside a
    traced call), else the root of a new trace: each attempt, retries included, has its own.

    Attributes: `job.name`, `job.run_id`, `job.scheduled_at` (ISO 8601), `job.attempt`,
    `job.trigger`, and at the end `job.status` (the outcome's status). A `failed` or
    `timed_out` outcome sets the span's status to ERROR and records its exception; a success
    leaves the status UNSET, as OpenTelemetry advises. A cancelled attempt ends the span with
    ERROR and `job.status=interrupted`, and the cancellation propagates. An exception that
    escapes the step (none does inside the default chain, where recovery is inner) is
    recorded and re-raised, without a `job.status`.

    The span's ids are bound in structlog's contextvars for the attempt and the previous values
    restored afterwards. Put this wrapper outside logging, as `default_chain(..., extra)` does
    with `extra`, so `job_started` and `job_failed` carry the ids. With the ids-only tracer (no
    exporter) a leaner wrapper binds the same ids; with a no-op tracer it returns the step
    unchanged.
    """
    if isinstance(tracer, _IdsOnlyTracer):
        fast = _ids_only_tracing()
        if fast is not None:
            return fast
    elif isinstance(tracer, trace.NoOpTracer):
        return _unchanged
    span_names: dict[str, str] = {}

    def wrap(step: Step) -> Step:
        async def traced(ctx: JobContext) -> Outcome:
            name = span_names.get(ctx.job_name)
            if name is None:
                name = span_names[ctx.job_name] = SPAN_NAME_PREFIX + ctx.job_name
            span = tracer.start_span(name, kind=SpanKind.INTERNAL)
            recording = span.is_recording()
            if recording:  # else nothing would ever read the attributes
                span.set_attributes(
                    {
                        ATTR_JOB_NAME: ctx.job_name,
                        ATTR_RUN_ID: ctx.run_id,
                        ATTR_SCHEDULED_AT: ctx.scheduled_at.isoformat(),
                        ATTR_ATTEMPT: ctx.attempt,
                        ATTR_TRIGGER: ctx.trigger.value,
                    }
                )
            ids = span.get_span_context()
            context_token = otel_context.attach(trace.set_span_in_context(span))
            log_tokens = structlog.contextvars.bind_contextvars(
                trace_id=trace.format_trace_id(ids.trace_id),
                span_id=trace.format_span_id(ids.span_id),
            )
            try:
                outcome = await step(ctx)
            except asyncio.CancelledError:
                if recording:
                    span.set_attribute(ATTR_STATUS, RunStatus.INTERRUPTED.value)
                    span.set_status(Status(StatusCode.ERROR, "cancelled"))
                raise
            except BaseException as exc:
                _record_error(span, exc)
                raise
            else:
                if not recording:
                    return outcome
                span.set_attribute(ATTR_STATUS, outcome.status.value)
                if outcome.error is not None:
                    _record_error(span, outcome.error)
                elif outcome.status in (RunStatus.FAILED, RunStatus.TIMED_OUT):
                    span.set_status(Status(StatusCode.ERROR, outcome.status.value))
                return outcome
            finally:
                structlog.contextvars.reset_contextvars(**log_tokens)
                otel_context.detach(context_token)
                span.end()

        return traced

    return wrap


def _unchanged(step: Step) -> Step:
    return step


def _ids_only_tracing() -> Wrapper | None:
    """`with_tracing` for the ids-only tracer: the same ids and context at a third of the cost.

    Sets the context variables behind OpenTelemetry's current context and structlog's bound
    `trace_id` and `span_id` directly, and skips the span's name, attributes and status, which
    nothing would read. None when OpenTelemetry's runtime context is not the default one, backed
    by a context variable (`OTEL_PYTHON_CONTEXT`).
    """
    # The variables are found through the public API, which sets them: in a scratch context.
    probe = trace.set_span_in_context(trace.INVALID_SPAN, otel_context.Context())
    scratch = contextvars.copy_context()
    otel_token = scratch.run(otel_context.attach, probe)
    log_tokens = scratch.run(structlog.contextvars.bind_contextvars, trace_id=None, span_id=None)
    found = scratch.get(otel_token.var) if isinstance(otel_token, contextvars.Token) else None
    if found is not probe or scratch.run(otel_context.get_current) is not probe or len(probe) != 1:
        return None
    (span_key,) = probe
    otel_var = otel_token.var
    trace_id_var, span_id_var = log_tokens["trace_id"].var, log_tokens["span_id"].var

    def wrap(step: Step) -> Step:
        async def traced(ctx: JobContext) -> Outcome:
            current = otel_var.get()
            parent = current.get(span_key)
            # Skipping `_trace_id_under` for a run outside any span saves its isinstance check.
            trace_id = _new_id(_TRACE_ID_BITS) if parent is None else _trace_id_under(parent)
            span_id = _new_id(_SPAN_ID_BITS)
            span = trace.NonRecordingSpan(_span_context(trace_id, span_id))
            context_token = otel_var.set(otel_context.Context({**current, span_key: span}))
            # Lowercase and zero-padded like format_trace_id, at half the cost of a format().
            trace_token = trace_id_var.set(trace_id.to_bytes(16).hex())
            span_token = span_id_var.set(span_id.to_bytes(8).hex())
            try:
                return await step(ctx)
            finally:
                span_id_var.reset(span_token)
                trace_id_var.reset(trace_token)
                otel_var.reset(context_token)

        return traced

    return wrap


@contextmanager
def child_span(
    tracer: Tracer, name: str, kind: SpanKind = SpanKind.CLIENT, /, **attributes: AttributeValue
) -> Iterator[Span]:
    """A span for one database or broker call, child of the current span (the run's).

    `with child_span(tracer, "db.query", **{"db.system": "postgresql"}): ...`. Kind CLIENT by
    default; pass `SpanKind.PRODUCER` (third, positional) for a publish. The first three
    parameters are positional-only so that no attribute name can collide with them, which
    also lets mypy accept a `**{...}` of attributes. An exception, cancellation included,
    sets the status to ERROR and propagates; other than a cancellation it is also recorded,
    masked. The official asyncpg and aio-pika instrumentations will replace most uses.
    """
    with tracer.start_as_current_span(
        name,
        kind=kind,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except asyncio.CancelledError:
            span.set_status(Status(StatusCode.ERROR, "cancelled"))
            raise
        except BaseException as exc:
            _record_error(span, exc)
            raise


def _record_error(span: Span, exc: BaseException) -> None:
    """Status ERROR and an `exception` event, with credentials masked as in the logs."""
    if not span.is_recording():
        return  # masking and formatting a traceback nobody will see is wasted work
    message = mask_secrets(str(exc))
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {message}"))
    stacktrace = mask_secrets("".join(traceback.format_exception(exc)))
    span.record_exception(
        exc, attributes={_EXCEPTION_MESSAGE: message, _EXCEPTION_STACKTRACE: stacktrace}
    )
