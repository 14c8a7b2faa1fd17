"""The OpenTelemetry instrumentations of the database and broker clients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from opentelemetry.instrumentation.aio_pika import AioPikaInstrumentor
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.trace import TracerProvider


class _Instrumentor(Protocol):
    # OpenTelemetry's BaseInstrumentor module is marked `# type: ignore` as a whole, so mypy
    # sees it as Any: this spells out the part used here.
    @property
    def is_instrumented_by_opentelemetry(self) -> bool: ...
    def instrument(self, **kwargs: Any) -> object: ...
    def uninstrument(self, **kwargs: Any) -> object: ...


def instrument_clients(tracer_provider: TracerProvider | None = None) -> Callable[[], None]:
    """Turn on the asyncpg and aio-pika instrumentations; returns a function that turns them off.

    Database and broker calls then get CLIENT/PRODUCER child spans of the current run's span.
    With no `tracer_provider` they use OpenTelemetry's global one, which `setup_tracing` sets
    when traces are exported; query parameters are not captured (they may hold personal data).
    Calling it twice is harmless: an instrumentor already on is left as it is.
    """
    instrumentors: list[_Instrumentor] = [
        AsyncPGInstrumentor(),  # type: ignore[no-untyped-call]  # its __init__ has no annotations
        AioPikaInstrumentor(),
    ]
    for instrumentor in instrumentors:
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=tracer_provider)

    def uninstrument() -> None:
        for instrumentor in instrumentors:
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()

    return uninstrument
