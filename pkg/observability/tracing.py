"""Traces: one OpenTelemetry span per attempt of a job, child spans for database and broker calls.

`setup_tracing` builds the SDK tracer provider once, in the composition root; nothing here
touches OpenTelemetry's globals at import time. `with_tracing(tracer)` is a hook of the run's
chain (`financial.pkg.scheduler.execution.chain`) and takes its tracer explicitly, so tests and the
daemon can hold different providers side by side.

While a run's span is current, its `trace_id` and `span_id` (lowercase hex, 32 and 16
characters) are bound in structlog's contextvars, so every log line of the run carries them, and
standard-library records too (the logging setup merges contextvars into both).

Span text leaves the process as log lines do, so exception messages and tracebacks recorded on
spans are masked with the same `mask_secrets` as the logs.
"""

from __future__ import annotations

import asyncio
import threading
import traceback
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import Token
from dataclasses import dataclass, field
from os import environ
from typing import Any, cast

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from financial.pkg.jobs.context import JobContext
from financial.pkg.jobs.model import RunStatus
from financial.pkg.observability.ids_only import IdsOnlyTracer, ids_only_hook
from financial.pkg.observability.logging import mask_secrets
from financial.pkg.observability.trace_ids import current_span_id, current_trace_id
from financial.pkg.scheduler.execution.chain import NOTHING, Around, Outcome

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
    traces_url: str | None = None,
    resource_attributes: Mapping[str, str] | None = None,
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
    `traces_url`, when given, is the full traces URL and wins over `endpoint` (the daemon
    passes what `otel_config.otlp_targets` decided from the `OTEL_*` variables).
    `resource_attributes` (`OTEL_RESOURCE_ATTRIBUTES`, parsed) go on the resource; the service
    name and instance id win over theirs.

    With neither, nothing would read a span, so there is no provider and the tracer only
    makes ids (no SDK span, no attributes): log lines keep their `trace_id` and `span_id`, the
    run's hook sets them directly (`ids_only.py`), and child spans share their run's trace id.
    `disabled` gives a no-op tracer (no spans, no ids; `with_tracing` adds nothing to a run).
    `instance_id` becomes `service.instance.id` (default: a random UUID); pass the worker id so
    traces and run records name the same worker. `set_global` also installs the provider as
    OpenTelemetry's global one, which the asyncpg and aio-pika instrumentations use; it can only
    be set once per process.
    """
    if disabled:
        return Telemetry(tracer=trace.NoOpTracer())
    if exporter is None:
        if traces_url:
            exporter = OTLPSpanExporter(endpoint=traces_url)
        elif endpoint:
            exporter = OTLPSpanExporter(endpoint=_traces_endpoint(endpoint))
        else:
            return Telemetry(tracer=IdsOnlyTracer())
    resource = Resource.create(
        {
            **(resource_attributes or {}),
            SERVICE_NAME: service_name,
            SERVICE_INSTANCE_ID: instance_id or str(uuid.uuid4()),
        }
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


def _traces_endpoint(base: str) -> str | None:
    """The traces URL for an OTLP base URL; None lets the exporter read the signal's variable."""
    if environ.get(_TRACES_ENDPOINT_VAR):
        return None
    return f"{base.rstrip('/')}/{_TRACES_PATH}"


def with_tracing(tracer: Tracer) -> Around:
    """One span per attempt, `job.run <job name>`, kind INTERNAL: a hook of the run's chain.

    The span is a child of the current span when there is one (a manual run started inside a
    traced call), else the root of a new trace: each attempt, retries included, has its own.

    Attributes: `job.name`, `job.run_id`, `job.scheduled_at` (ISO 8601), `job.attempt`,
    `job.trigger`, and at the end `job.status` (the outcome's status). A `failed` or
    `timed_out` outcome sets the span's status to ERROR and records its exception; a success
    leaves the status UNSET, as OpenTelemetry advises. A cancelled attempt ends the span with
    ERROR and `job.status=interrupted`. An exception that escapes the call (none does past
    recovery) is recorded, without a `job.status`.

    The span's ids are bound in structlog's contextvars for the attempt and the previous values
    restored afterwards. Put this hook outside logging, as the worker does, so `job_started` and
    `job_failed` carry the ids. With the ids-only tracer (no exporter) a leaner hook binds the
    same ids (`ids_only.py`); with a no-op tracer it does nothing.
    """
    if isinstance(tracer, IdsOnlyTracer):
        fast = ids_only_hook()
        if fast is not None:
            return fast
    elif isinstance(tracer, trace.NoOpTracer):
        return NOTHING
    return _Tracing(tracer)


_LogTokens = dict[str, Token[Any]]


class _Tracing(Around):
    __slots__ = ("_span_names", "_tracer")

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer
        self._span_names: dict[str, str] = {}

    def enter(self, ctx: JobContext) -> object:
        name = self._span_names.get(ctx.job_name)
        if name is None:
            name = self._span_names[ctx.job_name] = SPAN_NAME_PREFIX + ctx.job_name
        span = self._tracer.start_span(name, kind=SpanKind.INTERNAL)
        if span.is_recording():  # else nothing would ever read the attributes
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
        return span, context_token, log_tokens

    def exit(
        self,
        ctx: JobContext,
        token: object,
        outcome: Outcome | None,
        error: BaseException | None,
    ) -> None:
        span, context_token, log_tokens = cast("tuple[Span, Token[Context], _LogTokens]", token)
        try:
            if outcome is None:
                if isinstance(error, asyncio.CancelledError):
                    if span.is_recording():
                        span.set_attribute(ATTR_STATUS, RunStatus.INTERRUPTED.value)
                        span.set_status(Status(StatusCode.ERROR, "cancelled"))
                elif error is not None:
                    _record_error(span, error)
            elif span.is_recording():
                span.set_attribute(ATTR_STATUS, outcome.status.value)
                if outcome.error is not None:
                    _record_error(span, outcome.error)
                elif outcome.status in (RunStatus.FAILED, RunStatus.TIMED_OUT):
                    span.set_status(Status(StatusCode.ERROR, outcome.status.value))
        finally:
            structlog.contextvars.reset_contextvars(**log_tokens)
            otel_context.detach(context_token)
            span.end()


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
