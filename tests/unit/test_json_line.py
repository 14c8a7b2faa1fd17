"""The fused JSON line (`pkg/observability/json_line.py`) gives what the plain path gives: the plain
processors (`logging._shared_processors`) then `logging._render_json`, on every kind of line."""

from __future__ import annotations

import contextvars
import json
import math
import types
import uuid
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any

import pytest
import structlog

from financial.pkg.observability import json_line
from financial.pkg.observability.json_line import JsonLineProcessor, line_encoder
from financial.pkg.observability.logging import (
    _JSON,
    _json_default,
    _render_json,
    _shared_processors,
)
from tests.unit.log_lines import SECRET, configured, json_lines

pytestmark = pytest.mark.usefixtures("restore_logging")


class Endpoint:
    """A value the json module cannot encode, whose text holds a credential."""

    def __str__(self) -> str:
        return f"amqp://app:{SECRET}@mq:5672/"


def bind_a_run() -> None:
    structlog.contextvars.bind_contextvars(
        job="report_generator",
        run_id="r-1",
        scheduled_at="2024-03-04T08:00:00+00:00",
        attempt=1,
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
        note_from_context=f"postgresql://app:{SECRET}@db/fin",
        context_password=SECRET,
    )


def emit_lines() -> None:
    """One logger call of each kind, each from a single source line for both chains."""
    log = structlog.get_logger("financial.scheduler").bind(bound_dsn=f"host=db password={SECRET}")
    log.info("job_succeeded", trigger="schedule", lateness_ms=1.25, duration_ms=0.5)
    log.warning("job_note", note=f"amqp://u:{SECRET}@mq/", api_token=7, attempt=3, when=None)
    log.warn("old_name", options={"password": SECRET, "hosts": [f"amqp://u:{SECRET}@mq/"]})
    log.info("object_field", endpoint=ValueError(f"password={SECRET}"), level="ignored")
    log.info(
        "not_json",
        endpoint=Endpoint(),
        at=datetime(2024, 3, 4, 8, 0, 0, 250, tzinfo=UTC),
        run=uuid.UUID(int=7),
        amount=Decimal("1.10"),
        path=PurePosixPath("/srv/reports"),
        nested={"endpoints": [Endpoint()], "ratio": math.inf},
    )
    log.info("no_exception", exc_info=False, stack_info=False)
    log.info("with_stack", stack_info=True)
    try:
        raise RuntimeError(f"job failed, password={SECRET}")
    except RuntimeError as exc:
        log.exception("job_failed", job="database_cleanup")
        log.warning("exception_given", exc_info=exc)


def lines_of(plain: bool) -> list[dict[str, Any]]:
    stream = configured()
    if plain:
        structlog.configure(processors=[*_shared_processors(), _render_json])
    emit_lines()
    lines = json_lines(stream)
    for line in lines:
        assert datetime.fromisoformat(line.pop("timestamp")).tzinfo is not None
    return lines


def test_the_json_chain_is_one_fused_processor() -> None:
    configured()
    (processor,) = structlog.get_config()["processors"]
    assert isinstance(processor, JsonLineProcessor)


def test_the_fused_processor_stands_only_for_the_chain_it_knows() -> None:
    with pytest.raises(ValueError, match="merge_contextvars first"):
        JsonLineProcessor(_shared_processors()[1:], _JSON)
    with pytest.raises(ValueError, match="ISO UTC TimeStamper last"):
        JsonLineProcessor([*_shared_processors()[:-1], structlog.processors.TimeStamper()], _JSON)


def test_fused_lines_equal_the_plain_processors_lines() -> None:
    bind_a_run()

    fused, plain = lines_of(plain=False), lines_of(plain=True)

    assert fused == plain
    context = set(structlog.contextvars.get_contextvars())
    # Keys come in the same order, but for the context's (structlog orders those by hash).
    assert [[k for k in line if k not in context] for line in fused] == [
        [k for k in line if k not in context] for line in plain
    ]
    assert SECRET not in json.dumps(fused)
    assert "financial.scheduler" in {line["logger"] for line in fused}
    assert [line["level"] for line in fused] == [
        *["info", "warning", "warning", "info", "info", "info", "info"],
        *["error", "warning"],
    ]
    assert fused[0]["job"] == "report_generator" and fused[0]["context_password"] == "***"
    # Values the json module cannot encode went through the default, masked.
    assert fused[4]["endpoint"] == "amqp://app:***@mq:5672/"
    assert fused[4]["at"] == "2024-03-04T08:00:00.000250+00:00"
    assert fused[4]["nested"] == {"endpoints": ["amqp://app:***@mq:5672/"], "ratio": math.inf}
    # The stack starts at the caller: neither structlog's frames nor the processors' own.
    assert "in emit_lines" in fused[6]["stack"]
    assert "observability/json_line.py" not in fused[6]["stack"]
    assert "observability/logging.py" not in fused[6]["stack"]
    assert "RuntimeError: job failed, password=***" in fused[7]["exception"]
    assert "RuntimeError: job failed, password=***" in fused[8]["exception"]


class _Instant:
    """Both clocks a line's timestamp can come from, set to the same instant (`ns`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ns = 0

        def now(tz: tzinfo | None = None) -> datetime:
            # `datetime.now` rounds down to the microsecond.
            return datetime.fromtimestamp(0, tz) + timedelta(microseconds=self.ns // 1000)

        # The fused processor reads `time_ns`; structlog's `TimeStamper` calls
        # `datetime.datetime.now(tz=datetime.timezone.utc)` on its module's `datetime`.
        monkeypatch.setattr(json_line, "time_ns", lambda: self.ns)
        stamper_datetime = types.SimpleNamespace(
            datetime=types.SimpleNamespace(now=now), timezone=timezone
        )
        monkeypatch.setattr(structlog.processors, "datetime", stamper_datetime)


SECOND = 1_709_539_200_000_000_000  # 2024-03-04T08:00:00
NEW_YEAR = 1_735_689_600_000_000_000  # 2025-01-01T00:00:00


def test_lines_across_a_second_boundary_carry_the_plain_timestamps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    instant = _Instant(monkeypatch)
    instants = [
        SECOND - 1_000,  # the last microsecond of the second before
        SECOND,  # a whole second: no fraction
        SECOND + 999,  # under a microsecond: still none
        SECOND + 1_000,
        SECOND - 500_000_000,  # back to the second before: its text, not the cached one
        SECOND + 999_999_999,
        SECOND + 1_000_000_000,  # the next second
        NEW_YEAR - 1_000,  # 2024-12-31T23:59:59.999999
        NEW_YEAR,
    ]

    def lines(plain: bool) -> list[dict[str, Any]]:
        stream = configured()
        if plain:
            structlog.configure(processors=[*_shared_processors(), _render_json])
        log = structlog.get_logger("financial.scheduler")
        for ns in instants:
            instant.ns = ns
            log.info("job_started", at_ns=ns)
        return json_lines(stream)

    bind_a_run()
    fused, plain = lines(plain=False), lines(plain=True)

    assert fused == plain
    assert [line["timestamp"] for line in fused] == [
        "2024-03-04T07:59:59.999999Z",
        "2024-03-04T08:00:00Z",
        "2024-03-04T08:00:00Z",
        "2024-03-04T08:00:00.000001Z",
        "2024-03-04T07:59:59.500000Z",
        "2024-03-04T08:00:00.999999Z",
        "2024-03-04T08:00:01Z",
        "2024-12-31T23:59:59.999999Z",
        "2025-01-01T00:00:00Z",
    ]


def test_fused_merge_equals_structlog_merge() -> None:
    processor = JsonLineProcessor(_shared_processors(), _JSON)

    def both(event_dict: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        fused = dict(event_dict)
        processor._merge_contextvars(None, "info", fused)
        plain = dict(event_dict)
        structlog.contextvars.merge_contextvars(None, "info", plain)
        return fused, plain

    fused, plain = both({"event": "e"})
    assert fused == plain

    structlog.contextvars.bind_contextvars(job="j", attempt=1)
    fused, plain = both({"event": "e", "attempt": 2})
    assert fused == plain == {"event": "e", "attempt": 2, "job": "j"}

    structlog.contextvars.bind_contextvars(key_bound_after_the_first_line="x")
    structlog.contextvars.unbind_contextvars("job")
    fused, plain = both({"event": "e"})
    assert fused == plain == {"event": "e", "attempt": 1, "key_bound_after_the_first_line": "x"}

    def in_a_copied_context() -> tuple[dict[str, Any], dict[str, Any]]:
        structlog.contextvars.bind_contextvars(run_id="r-2")
        return both({})

    fused, plain = contextvars.copy_context().run(in_a_copied_context)
    assert fused == plain == {"attempt": 1, "key_bound_after_the_first_line": "x", "run_id": "r-2"}
    assert "run_id" not in both({})[0]

    structlog.contextvars.clear_contextvars()
    assert both({"event": "e"}) == ({"event": "e"}, {"event": "e"})


@pytest.mark.parametrize(
    "ns",
    [
        0,
        SECOND,  # no fraction
        SECOND + 999,  # under a microsecond: still no fraction
        SECOND + 1_000,
        SECOND + 999_999_999,
        SECOND + 1_000_000_000,  # the next second
        1_709_164_799_123_456_789,  # 2024-02-28T23:59:59, the day before a leap day
        1_709_164_800_500_000_000,  # 2024-02-29
        NEW_YEAR - 1_000,  # the last microsecond of 2024
    ],
)
def test_timestamp_is_the_timestampers_text(ns: int) -> None:
    # `TimeStamper(fmt="iso", utc=True)`: `datetime.now(UTC)` (whole microseconds, rounded
    # down), `isoformat()`, and `Z` for `+00:00`.
    second, micros = divmod(ns // 1000, 1_000_000)
    instant = datetime.fromtimestamp(second, UTC).replace(microsecond=micros)
    expected = instant.isoformat().replace("+00:00", "Z")

    processor = JsonLineProcessor(_shared_processors(), _JSON)
    assert processor.timestamp(ns) == expected
    assert processor.timestamp(ns - 10**9) != expected  # a cached second is not reused
    assert processor.timestamp(ns) == expected


def test_the_line_encoder_is_the_encoders_encode_to_the_byte() -> None:
    value = {
        "text": 'caf\u00e9 \u2603 "quoted"\n',
        "numbers": [1, -2.5, 1e300, math.inf, -math.inf, math.nan, True, False, None],
        "nested": {"a": [{"b": ()}], 3: "int key"},
        "when": datetime(2024, 3, 4, 8, 0, tzinfo=UTC),
        "endpoint": Endpoint(),
    }
    encode = line_encoder(_JSON)
    assert encode(value) == _JSON.encode(value) == json.dumps(value, default=_json_default)
    assert SECRET not in encode(value)
    unicode = json.JSONEncoder(ensure_ascii=False, default=str)
    assert line_encoder(unicode)(value) == unicode.encode(value)
    indented = json.JSONEncoder(indent=2, default=str)
    assert line_encoder(indented)(value) == indented.encode(value)

    circular: dict[str, Any] = {"event": "e"}
    circular["self"] = circular
    with pytest.raises(ValueError, match="Circular reference"):
        encode(circular)
    shared = ["same list twice is not a cycle"]
    assert encode({"a": shared, "b": shared}) == json.dumps({"a": shared, "b": shared})
