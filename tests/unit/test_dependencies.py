"""One line when a dependency goes away, one when it comes back; third-party repeats dropped."""

from __future__ import annotations

import logging

from structlog.testing import capture_logs

from financial.pkg.observability.dependencies import Dependencies
from financial.pkg.observability.third_party import ThirdPartyNoiseFilter


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_one_warning_per_outage_and_one_when_it_ends_with_how_long() -> None:
    ticker = Ticker()
    deps = Dependencies(ticker)
    with capture_logs() as logs:
        assert deps.came_back("postgresql") is None  # up all along: nothing to say
        assert deps.went_away("postgresql", ConnectionRefusedError("refused"))
        for _ in range(50):
            ticker.now_s += 1
            assert not deps.went_away("postgresql", ConnectionRefusedError("refused again"))
        assert deps.is_away("postgresql")
        assert deps.came_back("postgresql") == 50.0
        assert deps.came_back("postgresql") is None
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("dependency_unavailable", "warning"),
        ("dependency_restored", "warning"),
    ]
    assert logs[0]["dependency"] == "postgresql"
    assert logs[0]["error"] == "ConnectionRefusedError: refused"
    assert logs[1]["down_for_s"] == 50.0
    assert not deps.is_away("postgresql")


def test_dependencies_are_tracked_apart_and_errors_are_masked() -> None:
    ticker = Ticker()
    deps = Dependencies(ticker)
    with capture_logs() as logs:
        deps.went_away("rabbitmq", "cannot connect to amqp://u:pw-123@mq:5672/")
        deps.went_away("postgresql", "down")
        ticker.now_s += 2.25
        deps.came_back("rabbitmq")
    assert [(e["event"], e["dependency"]) for e in logs] == [
        ("dependency_unavailable", "rabbitmq"),
        ("dependency_unavailable", "postgresql"),
        ("dependency_restored", "rabbitmq"),
    ]
    assert "pw-123" not in logs[0]["error"]
    assert logs[2]["down_for_s"] == 2.2  # rounded to a tenth
    assert set(deps.away()) == {"postgresql"}


def record(
    name: str, msg: str, *args: object, at: float, level: int = logging.WARNING, exc: bool = False
) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ConnectionRefusedError(111, "Connect call failed")
        except ConnectionRefusedError as error:
            exc_info = (type(error), error, error.__traceback__)
    rec = logging.LogRecord(name, level, __file__, 1, msg, args, exc_info)
    rec.created = at
    return rec


def test_a_reconnect_loop_logs_its_first_line_without_a_traceback_then_goes_quiet() -> None:
    noise = ThirdPartyNoiseFilter(quiet_s=60, remind_s=600)
    msg = "Failed to restore the pool connection floor; retrying"
    first = record("asyncpg.pool", msg, at=0.0, exc=True)
    assert noise.filter(first)
    assert first.exc_info is None and first.exc_text is None
    assert first.getMessage() == f"{msg} (ConnectionRefusedError: [Errno 111] Connect call failed)"
    # Every second for ten minutes: all dropped.
    passed = [
        noise.filter(record("asyncpg.pool", msg, at=float(t), exc=True)) for t in range(1, 600)
    ]
    assert not any(passed)
    # Ten minutes on, one line says how many were left out.
    reminder = record("asyncpg.pool", msg, at=600.0, exc=True)
    assert noise.filter(reminder)
    assert "repeated" in reminder.getMessage()
    # After a quiet minute (the outage ended), the next outage's first line passes again.
    assert noise.filter(record("asyncpg.pool", msg, at=700.0, exc=True))


def test_repeats_are_recognised_by_template_and_other_records_pass() -> None:
    noise = ThirdPartyNoiseFilter()
    template = 'Connection attempt to "%s" failed: %s. Reconnecting after %r seconds.'
    robust = "aio_pika.robust_connection"
    assert noise.filter(record(robust, template, "amqp://mq", "refused", 5, at=0.0))
    assert not noise.filter(record(robust, template, "amqp://mq", "reset", 5, at=5.0))
    # Another template of the same logger, our own records, and INFO records are left alone.
    assert noise.filter(record(robust, "Reconnect attempt failed %s", "x", at=6.0))
    assert noise.filter(record("financial.worker", template, "a", "b", 5, at=7.0))
    assert noise.filter(record("financial.worker", template, "a", "b", 5, at=8.0))
    assert noise.filter(record(robust, template, "a", "b", 5, at=9.0, level=logging.INFO))
    # A third-party traceback outside the reconnect loops is kept.
    other = record("aiohttp.server", "Error handling request", at=10.0, exc=True)
    assert noise.filter(other) and other.exc_info is not None


def test_a_drivers_lines_are_dropped_while_its_dependency_is_reported_away() -> None:
    deps = Dependencies(Ticker())
    noise = ThirdPartyNoiseFilter(is_away=deps.is_away)
    deps.went_away("rabbitmq", "refused")
    assert not noise.filter(record("aiormq.connection", "error when creating transport", at=0.0))
    assert not noise.filter(record("aio_pika.tools", "Callback %r error", "cb", at=0.0))
    # The database's driver is not concerned, nor anyone else.
    assert noise.filter(record("asyncpg.pool", "Failed to restore", at=0.0))
    assert noise.filter(record("aiohttp.access", "oops", at=0.0))
    deps.came_back("rabbitmq")
    assert noise.filter(record("aiormq.connection", "Connection %r was blocked", "c", at=1.0))
