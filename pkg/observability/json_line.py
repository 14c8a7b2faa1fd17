"""The fused JSON line: the plain JSON log chain as one processor and one pass over the line.

A shortcut of its own (STYLE 13). The plain path is `logging._shared_processors` (structlog's
`merge_contextvars`, the stack and exception renderers, masking, the logger name, the level, a
`TimeStamper(fmt="iso", utc=True)`) followed by `logging._render_json` (`JSONEncoder.encode`).
Every run writes a line, so `JsonLineProcessor` does the same in one call: it reads structlog's
own context variables instead of walking the whole context, skips the two renderers that only
act on `stack_info` and `exc_info` (a line holding either goes through the plain processors),
formats the timestamp's whole second once per second, and calls the encoder's C function
directly (`line_encoder`). The keys and values are the same, masked the same way; only the order
of the contextvars keys can differ, and structlog's own merge orders them by hash, which changes
from one process to the next. `tests/unit/test_json_line.py` holds it to the plain path's lines;
what it saves is in `benchmarks/README.md#what-the-shortcuts-save`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from time import gmtime, time_ns
from typing import Any

import structlog
from structlog.processors import StackInfoRenderer, TimeStamper, format_exc_info
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["JsonLineProcessor", "line_encoder"]

# The C encoder that `JSONEncoder.encode` sets up and calls. Undocumented, hence optional.
_C_MAKE_ENCODER: Callable[..., Callable[[object, int], Iterable[str]]] | None = getattr(
    json.encoder, "c_make_encoder", None
)

# Where structlog keeps the variables `bind_contextvars` made (it never removes one). Private,
# hence looked up defensively: without it, lines are merged by structlog's own processor.
_CONTEXT_VARS: dict[str, ContextVar[Any]] | None = getattr(
    structlog.contextvars, "_CONTEXT_VARS", None
)


def line_encoder(encoder: json.JSONEncoder) -> Callable[[EventDict], str]:
    """`encoder.encode` for an event dict, to the byte, without the Python steps `encode` takes
    before its C encoder. An encoder the C function does not serve gets its own `encode`."""
    make = _C_MAKE_ENCODER
    if make is None or encoder.indent is not None or not encoder.check_circular:
        return encoder.encode
    strings = (
        json.encoder.encode_basestring_ascii
        if encoder.ensure_ascii
        else json.encoder.encode_basestring
    )
    args = (
        encoder.default,
        strings,
        encoder.indent,
        encoder.key_separator,
        encoder.item_separator,
        encoder.sort_keys,
        encoder.skipkeys,
        encoder.allow_nan,
    )

    def encode(event_dict: EventDict) -> str:
        # A fresh `markers` dict (circular references still raise ValueError), as `encode` passes.
        return "".join(make({}, *args)(event_dict, 0))

    return encode


class JsonLineProcessor:
    """The processors `plain`, then `encoder.encode`, in one processor and one pass over the line.

    `plain` is the chain this processor stands for: structlog's `merge_contextvars` first, a
    `TimeStamper(fmt="iso", utc=True)` last (a `ValueError` says otherwise). A line with
    `stack_info` or `exc_info` (rare) goes through `plain` as it is.
    """

    def __init__(self, plain: Sequence[Processor], encoder: json.JSONEncoder) -> None:
        merge, *after_merge = plain
        stamper = after_merge[-1] if after_merge else None
        if merge is not structlog.contextvars.merge_contextvars or not _is_iso_utc(stamper):
            raise ValueError("expected merge_contextvars first and an ISO UTC TimeStamper last")
        self._after_merge = after_merge
        # The renderers of `stack_info` and `exc_info` do nothing to a line without them.
        self._per_line = tuple(
            p
            for p in after_merge[:-1]
            if not isinstance(p, StackInfoRenderer) and p is not format_exc_info
        )
        self._encode = line_encoder(encoder)
        self._context_vars: tuple[tuple[str, ContextVar[Any]], ...] = ()
        self._second: tuple[int, str] = (-1, "")

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
        self._merge_contextvars(logger, method_name, event_dict)
        processed: Any = event_dict  # what a processor returns is only known at run time
        if "stack_info" in event_dict or "exc_info" in event_dict:
            for processor in self._after_merge:
                processed = processor(logger, method_name, processed)
            return self._encode(processed)
        for processor in self._per_line:
            processed = processor(logger, method_name, processed)
        # The wall clock, read as structlog's `TimeStamper` reads it: a line's timestamp is
        # when it was written, which the scheduler's `Clock` (schedule math) has no say in.
        processed["timestamp"] = self.timestamp(time_ns())
        return self._encode(processed)

    def _merge_contextvars(self, logger: WrappedLogger, method_name: str, ed: EventDict) -> None:
        # structlog's `merge_contextvars` walks every variable of the context (OpenTelemetry's,
        # asyncio's, ...); this asks each of structlog's own variables for its value instead.
        if _CONTEXT_VARS is None:
            structlog.contextvars.merge_contextvars(logger, method_name, ed)
            return
        if len(self._context_vars) != len(_CONTEXT_VARS):
            start = len(structlog.contextvars.STRUCTLOG_KEY_PREFIX)
            # `tuple()` copies at once: another thread may bind a new key meanwhile.
            registry = tuple(_CONTEXT_VARS.items())
            self._context_vars = tuple((name[start:], var) for name, var in registry)
        for key, var in self._context_vars:
            value = var.get()
            # Ellipsis: the default structlog gives its variables, and a cleared one's value.
            if value is not Ellipsis and key not in ed:
                ed[key] = value

    def timestamp(self, ns: int) -> str:
        """`TimeStamper(fmt="iso", utc=True)`'s text for the instant `ns` (ns since the epoch)."""
        second, micros = divmod(ns // 1000, 1_000_000)
        cached = self._second
        if cached[0] != second:
            t = gmtime(second)
            text = (
                f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
                f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
            )
            # One tuple, so that a thread never pairs a second with another second's text.
            cached = self._second = (second, text)
        # `datetime.isoformat` leaves the fraction out when it is zero.
        return f"{cached[1]}.{micros:06d}Z" if micros else f"{cached[1]}Z"


def _is_iso_utc(processor: object) -> bool:
    return (
        isinstance(processor, TimeStamper)
        and processor.fmt is not None
        and processor.fmt.upper() == "ISO"
        and processor.utc
        and processor.key == "timestamp"
    )
