"""Logging: event dicts, JSON lines, stdlib routing, level filtering, and credential masking."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime

import pytest
import structlog
from structlog.testing import capture_logs

from financial.pkg.observability.logging import (
    configure_logging,
    get_logger,
    mask_processor,
    mask_secrets,
)
from tests.unit.log_lines import SECRET, configured, json_lines

pytestmark = pytest.mark.usefixtures("restore_logging")


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("amqp://user:pw@host/", "amqp://user:***@host/"),
        ("amqps://user:pw@host:5671/vhost", "amqps://user:***@host:5671/vhost"),
        ("postgresql://app:s3cr3t@db:5432/fin", "postgresql://app:***@db:5432/fin"),
        ("postgresql://app:p@ss/w@db:5432/fin", "postgresql://app:***@db:5432/fin"),
        ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
        ("connect to 'amqp://u:p@mq/' failed", "connect to 'amqp://u:***@mq/' failed"),
        ("a=amqp://u:p@h1 b=postgres://v:q@h2", "a=amqp://u:***@h1 b=postgres://v:***@h2"),
        ("host=db user=app password=xyz dbname=fin", "host=db user=app password=*** dbname=fin"),
        ("host=db password='a b c' port=5432", "host=db password='***' port=5432"),
        ("postgres://db/x?user=a&password=xyz&ssl=1", "postgres://db/x?user=a&password=***&ssl=1"),
        ("DB_PASSWORD=xyz", "DB_PASSWORD=***"),
        ("{'password': 'xyz', 'user': 'app'}", "{'password': '***', 'user': 'app'}"),
        ('{"api_key": "k-123"}', '{"api_key": "***"}'),
    ],
)  # fmt: skip
def test_mask_secrets(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "job_started",
        "http://collector:4318/v1/traces",
        "postgresql://db:5432/fin",
        "scheduled at 2024-03-31T02:30:00+02:00",
        'password authentication failed for user "app"',
        "",
    ],
)
def test_mask_secrets_leaves_other_text_alone(text: str) -> None:
    assert mask_secrets(text) == text


def test_mask_processor_masks_values_keys_and_nesting() -> None:
    event = {
        "event": "db_connect_failed",
        "dsn": f"postgresql://app:{SECRET}@db/fin",
        "db_password": SECRET,
        "token": 1234,
        "attempt": 2,
        "options": {"password": SECRET, "hosts": [f"amqp://u:{SECRET}@mq/"]},
        "error": ConnectionError(f"cannot reach amqp://u:{SECRET}@mq/"),
    }

    masked = mask_processor(None, "error", event)

    assert masked == {
        "event": "db_connect_failed",
        "dsn": "postgresql://app:***@db/fin",
        "db_password": "***",
        "token": "***",
        "attempt": 2,
        "options": {"password": "***", "hosts": ["amqp://u:***@mq/"]},
        "error": "ConnectionError: cannot reach amqp://u:***@mq/",
    }


def test_mask_processor_renders_and_masks_a_pending_traceback() -> None:
    try:
        raise RuntimeError(f"login failed: password={SECRET}")
    except RuntimeError as exc:
        masked = mask_processor(None, "error", {"event": "job_failed", "exc_info": exc})

    assert "exc_info" not in masked
    assert "Traceback (most recent call last)" in masked["exception"]
    assert "RuntimeError: login failed: password=***" in masked["exception"]
    assert SECRET not in masked["exception"]


def test_events_are_captured_as_dicts() -> None:
    configured()
    log = get_logger("financial.test")

    with capture_logs() as events:
        log.info("job_started", job="report_generator", attempt=1)
        log.bind(run_id="r-1").warning("job_slow", duration_ms=1500)
        log.debug("dropped")

    assert events == [
        {"event": "job_started", "job": "report_generator", "attempt": 1, "log_level": "info"},
        {"event": "job_slow", "run_id": "r-1", "duration_ms": 1500, "log_level": "warning"},
    ]


def test_json_line_fields() -> None:
    stream = configured()
    scheduled_at = datetime(2024, 3, 4, 8, 0, tzinfo=UTC)
    structlog.contextvars.bind_contextvars(
        job="report_generator",
        run_id="r-1",
        scheduled_at=scheduled_at,
        attempt=1,
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
    )

    before = datetime.now(UTC)
    get_logger("financial.jobs").info("job_started", duration_ms=12)
    after = datetime.now(UTC)

    (line,) = json_lines(stream)
    assert line["event"] == "job_started"
    assert line["level"] == "info"
    assert line["logger"] == "financial.jobs"
    assert line["job"] == "report_generator"
    assert line["run_id"] == "r-1"
    assert line["scheduled_at"] == "2024-03-04T08:00:00+00:00"
    assert line["attempt"] == 1
    assert line["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert line["span_id"] == "b7ad6b7169203331"
    assert line["duration_ms"] == 12
    assert line["timestamp"].endswith("Z")
    stamp = datetime.fromisoformat(line["timestamp"])
    assert stamp.utcoffset() is not None
    assert before <= stamp <= after


def test_every_event_is_one_line() -> None:
    stream = configured()
    log = get_logger()

    log.info("multi", text="first\nsecond")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("job_failed")

    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["multi", "job_failed"]


def test_secrets_are_masked_in_json_output() -> None:
    stream = configured()
    log = get_logger()

    class Endpoint:
        def __str__(self) -> str:
            return f"amqp://app:{SECRET}@mq:5672/"

    log.info(
        "broker_connecting",
        url=f"amqp://app:{SECRET}@mq:5672/",
        dsn=f"host=db password={SECRET}",
        endpoint=Endpoint(),
        rabbitmq_password=SECRET,
    )

    output = stream.getvalue()
    assert SECRET not in output
    (line,) = json_lines(stream)
    assert line["url"] == "amqp://app:***@mq:5672/"
    assert line["dsn"] == "host=db password=***"
    assert line["endpoint"] == "amqp://app:***@mq:5672/"
    assert line["rabbitmq_password"] == "***"


def test_exception_traceback_is_rendered_and_masked() -> None:
    stream = configured()

    def connect() -> None:
        raise ConnectionError(f"cannot reach postgresql://app:{SECRET}@db:5432/fin")

    try:
        try:
            connect()
        except ConnectionError as exc:
            raise RuntimeError(f"job failed, password={SECRET}") from exc
    except RuntimeError:
        get_logger().exception("job_failed", job="database_cleanup")

    assert SECRET not in stream.getvalue()
    (line,) = json_lines(stream)
    assert line["level"] == "error"
    assert "Traceback (most recent call last)" in line["exception"]
    assert "in connect" in line["exception"]
    assert "ConnectionError: cannot reach postgresql://app:***@db:5432/fin" in line["exception"]
    assert "RuntimeError: job failed, password=***" in line["exception"]


def test_level_filtering() -> None:
    stream = configured("WARNING")
    log = get_logger()

    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")

    assert [line["event"] for line in json_lines(stream)] == ["w", "e"]


def test_filtered_calls_do_no_work() -> None:
    stream = configured("INFO")

    class Explosive:
        def __str__(self) -> str:
            raise AssertionError("a filtered-out call must not render its arguments")

        __repr__ = __str__

    get_logger().debug("noisy", value=Explosive())
    get_logger().bind(job="j").debug("noisy", value=Explosive())

    assert stream.getvalue() == ""


def test_debug_level_shows_debug() -> None:
    stream = configured("debug")
    get_logger().debug("tick_computed")
    assert [line["event"] for line in json_lines(stream)] == ["tick_computed"]


def test_stdlib_logging_is_rendered_the_same_way() -> None:
    stream = configured("INFO")
    structlog.contextvars.bind_contextvars(job="outbox_relay")

    logging.getLogger("asyncpg.pool").info("hidden below WARNING")
    logging.getLogger("aio_pika").warning("reconnecting to %s", f"amqp://u:{SECRET}@mq/")
    try:
        raise OSError(f"password={SECRET}")
    except OSError:
        logging.getLogger("asyncpg").exception("connection lost")

    assert SECRET not in stream.getvalue()
    first, second = json_lines(stream)
    assert first["event"] == "reconnecting to amqp://u:***@mq/"
    assert first["level"] == "warning"
    assert first["logger"] == "aio_pika"
    assert first["job"] == "outbox_relay"
    assert "timestamp" in first
    assert second["level"] == "error"
    assert "OSError: password=***" in second["exception"]


def test_stdlib_follows_a_stricter_level() -> None:
    stream = configured("ERROR")
    logging.getLogger("aio_pika").warning("hidden")
    logging.getLogger("aio_pika").error("shown")
    assert [line["event"] for line in json_lines(stream)] == ["shown"]


def test_reconfiguring_replaces_the_previous_setup() -> None:
    log = get_logger("made.before.configuring")
    first = configured()
    second = configured()

    log.info("structlog_event")
    logging.getLogger("lib").warning("stdlib_event")

    assert first.getvalue() == ""
    assert [line["event"] for line in json_lines(second)] == ["structlog_event", "stdlib_event"]
    ours = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    assert [h.stream for h in ours].count(second) == 1


def test_console_format_masks_too() -> None:
    stream = configured(fmt="console")

    try:
        raise ConnectionError(f"cannot reach amqp://app:{SECRET}@mq/")
    except ConnectionError:
        get_logger().exception("broker_down", url=f"amqp://app:{SECRET}@mq/")

    output = stream.getvalue()
    assert SECRET not in output
    assert "broker_down" in output
    assert "amqp://app:***@mq/" in output
    assert "Traceback (most recent call last)" in output
    with pytest.raises(json.JSONDecodeError):
        json.loads(output.splitlines()[0])


def test_auto_format_is_json_off_a_terminal_and_console_on_one() -> None:
    piped = io.StringIO()
    configure_logging(fmt="auto", stream=piped)
    get_logger().info("piped")
    assert json.loads(piped.getvalue())["event"] == "piped"

    terminal = TTY()
    configure_logging(fmt="auto", stream=terminal)
    get_logger().info("interactive")
    assert "interactive" in terminal.getvalue()
    assert not terminal.getvalue().startswith("{")


def test_stdout_is_the_default_stream(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt="json")
    get_logger().info("to_stdout")
    captured = capsys.readouterr()
    assert json.loads(captured.out)["event"] == "to_stdout"
    assert captured.err == ""


@pytest.mark.parametrize(("level", "fmt"), [("LOUD", "json"), ("INFO", "xml")])
def test_bad_level_or_format_is_rejected(level: str, fmt: str) -> None:
    with pytest.raises(ValueError, match="expected one of"):
        configure_logging(level, fmt, io.StringIO())


def test_a_secret_bound_under_a_run_key_that_could_hold_one_is_still_masked() -> None:
    stream = configured("INFO")
    # Only the worker's generated fields skip masking; a job's own fields never do.
    structlog.get_logger().info("job_note", note=f"amqp://u:{SECRET}@mq/", job="outbox_relay")
    assert SECRET not in stream.getvalue()
    [line] = json_lines(stream)
    assert line["job"] == "outbox_relay"
