"""Structured logging: structlog events, one JSON object per line, with credentials masked.

Every line carries `event` (a stable snake_case name such as `job_started`), `level`, `timestamp`
(ISO 8601, UTC) and whatever other code bound with `structlog.contextvars` (`job`, `run_id`,
`scheduled_at`, `attempt`, `trace_id`, `span_id`, ...). Records from the standard library's
`logging` (asyncpg, aio-pika) are rendered by the same processors, so no line comes out in
another format, after `third_party.ThirdPartyNoiseFilter` has cut the drivers' reconnect loops
down to their first line. The masker itself is `masking.mask_secrets`, re-exported here.
The processors here are the plain path; JSON lines go through `json_line.JsonLineProcessor`,
a shortcut held to them by its test.

Output goes to stdout by default: systemd's journal and Kubernetes collect stdout and stderr
alike, and stdout keeps the daemon's own diagnostics (a crash before logging is configured goes
to stderr) apart from its event stream.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import date, datetime, time
from functools import lru_cache
from typing import Any, TextIO, cast

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from financial.pkg.observability import json_line
from financial.pkg.observability.dependencies import dependencies
from financial.pkg.observability.masking import MASK, is_secret_key, mask_secrets
from financial.pkg.observability.third_party import ThirdPartyNoiseFilter

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "configure_logging",
    "get_logger",
    "mask_processor",
    "mask_secrets",
]

LOG_LEVELS: dict[str, int] = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}
"""Level names `configure_logging` accepts (any case)."""

LOG_FORMATS = ("json", "console", "auto")
"""`auto` renders for a human on a terminal and JSON everywhere else."""

_HANDLER_FLAG = "_financial_logging_handler"


@lru_cache(maxsize=1024)
def _is_secret_key(key: str) -> bool:
    # Event keys are a small, fixed set, so the answer is cached rather than searched per line.
    return is_secret_key(key)


def _mask_value(key: str, value: Any) -> Any:
    if value is None:
        return value
    if _is_secret_key(key):
        return MASK
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, BaseException):
        return mask_secrets(f"{type(value).__name__}: {value}")
    if isinstance(value, dict):
        return {k: _mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(key, v) for v in value]
    return value


def mask_processor(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask credentials in every value of the event dict.

    String values go through `mask_secrets`; values under a key that names a secret
    (`password`, `db_password`, `api_key`, `token`, ...) become `***` whatever they hold; dicts
    and lists are walked; exceptions become masked text. A pending `exc_info` is rendered to
    an `exception` traceback string first, so a traceback never leaves unmasked.
    """
    if event_dict.get("exc_info"):
        event_dict = structlog.processors.format_exc_info(logger, method_name, event_dict)
    for key, value in event_dict.items():
        if key not in _GENERATED_KEYS:
            event_dict[key] = _mask_value(key, value)
    return event_dict


# Values the worker itself produces on every run's lines (job names checked against
# [a-z0-9_.-]+, uuids, ISO ticks, numbers): no credential can be in them, and skipping them keeps
# the regexes off the hot path. `event` is not one: a stdlib record's message lands there.
_GENERATED_KEYS = frozenset(
    {
        "job",
        "run_id",
        "scheduled_at",
        "attempt",
        "trigger",
        "trace_id",
        "span_id",
        "duration_ms",
        "lateness_ms",
        "level",
        "log_level",
        "logger",
        "timestamp",
    }
)


def _json_default(value: object) -> str:
    # Values the json module cannot encode are stringified here, after `mask_processor` ran,
    # so their text is masked too (an aio-pika URL object, asyncpg connection parameters, ...).
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return mask_secrets(str(value))


class _MaskedConsoleRenderer:
    """The console renderer, with the rendered text masked once more (it reprs objects)."""

    def __init__(self, colors: bool) -> None:
        self._inner = structlog.dev.ConsoleRenderer(
            colors=colors, exception_formatter=structlog.dev.plain_traceback
        )

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
        return mask_secrets(self._inner(logger, method_name, event_dict))


class _NamedWriteLogger(structlog.WriteLogger):
    """A `WriteLogger` that remembers the name `get_logger` was given."""

    def __init__(self, file: TextIO, name: str | None) -> None:
        super().__init__(file)
        self.name = name


class _NamedWriteLoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        name = args[0] if args and isinstance(args[0], str) else None
        return _NamedWriteLogger(self._file, name)


def _add_logger_name(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    record = event_dict.get("_record")
    name = record.name if record is not None else getattr(logger, "name", None)
    if name:
        event_dict.setdefault("logger", name)
    return event_dict


def _level_number(level: str) -> int:
    try:
        return LOG_LEVELS[level.strip().upper()]
    except KeyError:
        expected = ", ".join(LOG_LEVELS)
        raise ValueError(f"log level {level!r}: expected one of {expected}") from None


def _resolve_format(fmt: str, stream: TextIO) -> str:
    fmt = fmt.strip().lower()
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r}: expected one of {', '.join(LOG_FORMATS)}")
    if fmt != "auto":
        return fmt
    isatty = getattr(stream, "isatty", None)
    return "console" if callable(isatty) and isatty() else "json"


# ASCII escapes: a journal or pipe with a non-UTF-8 locale must not fail on a line.
_JSON = json.JSONEncoder(default=_json_default)


def _render_json(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
    return _JSON.encode(event_dict)


def _shared_processors() -> list[Processor]:
    # Masking comes before the level and timestamp are added: those never hold secrets.
    return [
        structlog.contextvars.merge_contextvars,
        # The fused processor's frames are skipped too: it calls this one itself.
        structlog.processors.StackInfoRenderer(additional_ignores=[json_line.__name__]),
        structlog.processors.format_exc_info,
        mask_processor,
        _add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _renderer(fmt: str, stream: TextIO) -> Processor:
    if fmt == "json":
        return _render_json
    isatty = getattr(stream, "isatty", None)
    colors = callable(isatty) and bool(isatty()) and "NO_COLOR" not in os.environ
    return _MaskedConsoleRenderer(colors=colors)


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog and route the standard library's `logging` through it.

    `level` is one of `LOG_LEVELS` (any case); calls below it cost almost nothing, since
    `structlog.make_filtering_bound_logger` turns them into no-ops. `fmt` is `json`,
    `console` or `auto` (console when `stream` is a terminal). `stream` defaults to
    `sys.stdout`, looked up at call time. Standard-library records are shown from WARNING up
    (or from `level`, if that is higher). Calling it again replaces the previous setup; a
    `ValueError` names a bad level or format before anything changes.
    """
    level_no = _level_number(level)
    out = stream if stream is not None else sys.stdout
    fmt = _resolve_format(fmt, out)
    renderer = _renderer(fmt, out)
    shared = _shared_processors()
    # JSON lines, every run's, go through the fused processor: the same line as `shared` then
    # `_render_json` would write (stdlib records still take that plain path).
    chain: list[Processor] = (
        [json_line.JsonLineProcessor(shared, _JSON)] if fmt == "json" else [*shared, renderer]
    )
    structlog.configure(
        processors=chain,
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=_NamedWriteLoggerFactory(out),
        context_class=dict,
        # Not cached: a logger made at import time must follow a later `configure_logging`
        # (the CLI configures after imports, tests reconfigure). Loggers bound per run, as
        # the job context's is, are concrete and pay no lookup per call.
        cache_logger_on_first_use=False,
    )
    _route_stdlib(shared, renderer, out, max(level_no, logging.WARNING))


def _route_stdlib(shared: list[Processor], renderer: Processor, out: TextIO, level: int) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    # The drivers' reconnect loops repeat themselves (with tracebacks) on every attempt.
    handler.addFilter(ThirdPartyNoiseFilter(is_away=dependencies.is_away))
    setattr(handler, _HANDLER_FLAG, True)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_FLAG, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def get_logger(name: str | None = None) -> FilteringBoundLogger:
    """A structlog logger; `name` (usually `__name__`) is added to every event as `logger`.

    Safe to call at import time: the logger looks up the configuration when it is used. For a
    hot path, `bind()` once and keep the bound logger.
    """
    # The name travels as the logger factory's argument, the way `logging.getLogger` names work.
    logger = structlog.get_logger(name) if name else structlog.get_logger()
    return cast(FilteringBoundLogger, logger)
