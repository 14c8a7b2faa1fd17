"""The ids-only tracing shortcut (`pkg/observability/ids_only.py`) gives what the plain path gives:
the same ids bound for log lines and current for child spans, the same parent and the same state
restored after the attempt, whatever way the attempt ends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanContext, Tracer

from financial.pkg.jobs.context import JobContext
from financial.pkg.observability import ids_only, tracing
from financial.pkg.observability.tracing import (
    child_span,
    current_span_id,
    current_trace_id,
    setup_tracing,
    with_tracing,
)
from financial.pkg.scheduler.execution.chain import SUCCEEDED, Around, Outcome
from tests.unit.scheduling import job_context


def ids_only_tracer() -> Tracer:
    return setup_tracing("financial-worker", endpoint=None, set_global=False).tracer


def bound_and_current_ids() -> dict[str, object]:
    ids = trace.get_current_span().get_span_context()
    bound = structlog.contextvars.get_contextvars()
    return {
        "trace_id": bound.get("trace_id"),
        "span_id": bound.get("span_id"),
        "current_trace_id": f"{ids.trace_id:032x}",
        "current_span_id": f"{ids.span_id:016x}",
    }


async def test_without_an_exporter_a_run_inside_a_span_is_its_child_and_restores_it() -> None:
    tracer = ids_only_tracer()
    seen: dict[str, object] = {}

    async def step(ctx: JobContext) -> Outcome:
        seen.update(bound_and_current_ids())
        child = tracer.start_span("db.query")
        with tracer.start_as_current_span("amqp.publish"):
            seen["nested_trace_id"] = current_trace_id()
        seen["child_trace_id"] = f"{child.get_span_context().trace_id:032x}"
        return SUCCEEDED

    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(span_id="outer")
    try:
        with tracer.start_as_current_span("manual") as outer:
            await with_tracing(tracer)(step)(job_context())
            after_span = trace.get_current_span()
            after_vars = structlog.contextvars.get_contextvars()
    finally:
        structlog.contextvars.clear_contextvars()

    outer_trace_id = f"{outer.get_span_context().trace_id:032x}"
    assert seen["trace_id"] == seen["current_trace_id"] == outer_trace_id
    assert seen["span_id"] == seen["current_span_id"] != f"{outer.get_span_context().span_id:016x}"
    assert seen["child_trace_id"] == seen["nested_trace_id"] == outer_trace_id
    assert after_span is outer
    assert after_vars == {"span_id": "outer"}
    assert current_trace_id() is None


async def test_without_an_exporter_an_escaping_exception_propagates_and_restores_ids() -> None:
    seen: dict[str, object] = {}

    async def step(ctx: JobContext) -> Outcome:
        seen.update(bound_and_current_ids())
        raise KeyError("lost")

    structlog.contextvars.clear_contextvars()
    with pytest.raises(KeyError):
        await with_tracing(ids_only_tracer())(step)(job_context())

    assert seen["trace_id"] == seen["current_trace_id"]
    assert seen["span_id"] == seen["current_span_id"]
    assert structlog.contextvars.get_contextvars() == {}
    assert current_trace_id() is None


async def test_without_an_exporter_a_cancellation_propagates() -> None:
    started = asyncio.Event()

    async def step(ctx: JobContext) -> Outcome:
        started.set()
        await asyncio.Event().wait()
        return SUCCEEDED

    traced = with_tracing(ids_only_tracer())(step)

    async def attempt() -> tuple[object, object]:
        try:
            await traced(job_context())
        except asyncio.CancelledError:
            return current_trace_id(), structlog.contextvars.get_contextvars().get("trace_id")
        raise AssertionError("not cancelled")

    task = asyncio.create_task(attempt())
    await started.wait()
    task.cancel()

    assert await task == (None, None)


async def test_another_runtime_context_gets_the_general_wrapper_with_the_same_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracer = ids_only_tracer()
    started: list[str] = []
    start_span = tracer.start_span

    def spy(name: str, *args: Any, **kwargs: Any) -> trace.Span:
        started.append(name)
        return start_span(name, *args, **kwargs)

    monkeypatch.setattr(tracer, "start_span", spy)
    seen: list[dict[str, object]] = []

    async def step(ctx: JobContext) -> Outcome:
        seen.append(bound_and_current_ids())
        return SUCCEEDED

    with monkeypatch.context() as patched:
        # A runtime context that does not read what `attach` set through a context variable.
        patched.setattr(otel_context, "get_current", otel_context.Context)
        assert ids_only.ids_only_hook() is None
        traced = with_tracing(tracer)(step)
    await traced(job_context())
    await traced(job_context())

    assert started == ["job.run nightly_report"] * 2
    assert seen[0]["trace_id"] == seen[0]["current_trace_id"] != seen[1]["trace_id"]
    assert seen[0]["span_id"] == seen[0]["current_span_id"]


def test_the_fast_span_context_is_the_one_the_constructor_builds() -> None:
    built = ids_only.span_context(2**128 - 1, 1)
    expected = SpanContext(2**128 - 1, 1, is_remote=False)

    assert built == expected and type(built) is SpanContext
    assert (built.trace_id, built.span_id, built.is_remote) == (2**128 - 1, 1, False)
    assert built.is_valid and built.trace_flags == expected.trace_flags
    assert built.trace_state == expected.trace_state


def both_hooks() -> list[tuple[str, Around]]:
    """The shortcut and the plain hook, on an ids-only tracer."""
    tracer = ids_only_tracer()
    fast = with_tracing(tracer)
    assert type(fast).__module__ == ids_only.__name__
    return [("ids_only", fast), ("plain", tracing._Tracing(tracer))]


async def attempt_under_an_outer_span(
    hook: Around, tracer: Tracer, ending: str
) -> tuple[dict[str, object], dict[str, object]]:
    """One attempt through `hook` inside an outer span, with ids bound before it: what the job
    saw, and what was current and bound once the attempt was over."""
    seen: dict[str, object] = {}
    started = asyncio.Event()

    async def step(ctx: JobContext) -> Outcome:
        seen.update(bound_and_current_ids())
        started.set()
        with child_span(tracer, "db.query"):
            seen["child_trace_id"] = current_trace_id()
            seen["child_span_id"] = current_span_id()
        if ending == "raises":
            raise KeyError("lost")
        if ending == "cancelled":
            await asyncio.Event().wait()
        return SUCCEEDED

    async def attempt() -> dict[str, object]:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(job="nightly_report", span_id="outer")
        outer = tracer.start_span("outer")
        token = otel_context.attach(trace.set_span_in_context(outer))
        try:
            try:
                await hook(step)(job_context())
            except (KeyError, asyncio.CancelledError) as exc:
                seen["raised"] = type(exc).__name__
            return {
                "outer_trace_id": f"{outer.get_span_context().trace_id:032x}",
                "outer_is_current_after": trace.get_current_span() is outer,
                "bound_after": structlog.contextvars.get_contextvars(),
            }
        finally:
            otel_context.detach(token)

    task = asyncio.ensure_future(attempt())
    if ending == "cancelled":
        await started.wait()
        task.cancel()
    return seen, await task


@pytest.mark.parametrize("ending", ["returns", "raises", "cancelled"])
async def test_the_shortcut_leaves_a_run_as_the_plain_hook_does(ending: str) -> None:
    """The run's ids are bound and current, a child span inherits its trace, and afterwards the
    outer span and the ids bound before are back, through either hook."""
    results: dict[str, dict[str, object]] = {}
    for name, hook in both_hooks():
        seen, after = await attempt_under_an_outer_span(hook, ids_only_tracer(), ending)
        outer_trace_id = after.pop("outer_trace_id")
        assert seen["trace_id"] == seen["current_trace_id"] == outer_trace_id, name
        assert seen["span_id"] == seen["current_span_id"] != "outer", name
        assert seen["child_trace_id"] == outer_trace_id, name
        assert seen["child_span_id"] != seen["span_id"], name
        results[name] = {
            **after,
            "raised": seen.get("raised"),
            "id_lengths": (len(str(seen["trace_id"])), len(str(seen["span_id"]))),
        }

    assert results["ids_only"] == results["plain"]
    assert results["plain"]["outer_is_current_after"] is True
    assert results["plain"]["bound_after"] == {"job": "nightly_report", "span_id": "outer"}
    assert results["plain"]["id_lengths"] == (32, 16)
