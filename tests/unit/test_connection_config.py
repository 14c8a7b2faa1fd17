"""Configuration errors found while connecting: told apart from outages, shown as one line."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from aiormq.exceptions import AMQPConnectionError

from financial.configs.errors import connection_problem
from financial.pkg.database.pool import DatabaseUnavailable, config_error, is_config_error
from financial.pkg.messaging import rabbit

PASSWORD = "s3cr3t-pw"


@pytest.mark.parametrize(
    "exc",
    [
        # What asyncpg raised against a real server (see test_connection_config_process.py).
        asyncpg.ClientConfigurationError("`sslmode` parameter must be one of: disable, ..."),
        asyncpg.ClientConfigurationError("invalid DSN: scheme is expected to be postgresql"),
        asyncpg.UndefinedObjectError('unrecognized configuration parameter "foo"'),
        asyncpg.InvalidParameterValueError('invalid value for parameter "statement_timeout"'),
        ValueError("invalid literal for int() with base 10: 'notaport'"),
        ValueError("Invalid IPv6 URL"),
        OverflowError("connect(): port must be 0-65535."),
    ],
)
def test_a_rejected_dsn_is_a_configuration_error(exc: Exception) -> None:
    assert is_config_error(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
        OSError("No such file or directory: '/run/postgresql/.s.PGSQL.5432'"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.InvalidPasswordError('password authentication failed for user "app"'),
        asyncpg.InvalidCatalogNameError('database "x" does not exist'),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    ],
)
def test_an_unreachable_or_refusing_server_is_an_outage(exc: Exception) -> None:
    # A wrong password or a missing database may be fixed by the next attempt (a rotation, a
    # provisioning job): retried as an outage, as before.
    assert not is_config_error(exc)


def test_the_config_error_masks_the_password_wherever_the_driver_put_it() -> None:
    dsn = f"postgresql://app:{PASSWORD}@db:5432/x?sslmode=bogus"
    error = config_error(dsn, ValueError(f"cannot use {dsn}"))
    assert PASSWORD not in str(error)
    assert PASSWORD not in error.dsn
    assert error.dsn == "postgresql://app:***@db:5432/x?sslmode=bogus"
    assert not isinstance(error, DatabaseUnavailable)  # never retried as an outage


def test_the_line_names_the_variable_the_masked_value_and_what_was_expected() -> None:
    line = connection_problem(
        "DATABASE_URL",
        f"postgresql://app:{PASSWORD}@db:5432/x?sslmode=bogus",
        "a postgresql:// URI with valid options",
        "ClientConfigurationError: `sslmode` parameter must be one of: disable, ...",
    )
    assert line.startswith("DATABASE_URL='postgresql://app:***@db:5432/x?sslmode=bogus': expected")
    assert "sslmode" in line and PASSWORD not in line and "\n" not in line


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("amqp://u:pw@mq:5672/?heartbeat=abc", "heartbeat='abc': expected a number"),
        ("amqp://u:pw@mq:5672/?frame_max=", "frame_max='': expected a number"),
        ("amqps://u:pw@mq:5671/?cafile=/nonexistent/ca.pem", "no such file"),
        ("amqp://u:pw@mq:notaport/", "cannot be parsed"),
        ("amqp://u:pw@[::1/", "cannot be parsed"),
        ("http://u:pw@mq/", "scheme 'http'"),
    ],
)
def test_a_broker_url_that_cannot_work_is_found_before_connecting(url: str, problem: str) -> None:
    found = rabbit.url_problem(url)
    assert found is not None and problem in found


def test_a_good_broker_url_has_no_problem(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert rabbit.url_problem("amqp://guest:guest@127.0.0.1:5672/") is None
    assert rabbit.url_problem(f"amqps://u:pw@mq:5671/v?heartbeat=30&cafile={ca}") is None


@pytest.mark.parametrize(
    ("exc", "config"),
    [
        (ValueError("invalid literal for int() with base 10: 'abc'"), True),
        (FileNotFoundError(2, "No such file or directory"), True),
        (AMQPConnectionError(111, "Connect call failed"), False),
        (ConnectionRefusedError(111, "Connect call failed"), False),
        (TimeoutError(), False),
    ],
)
def test_broker_errors_are_classified(exc: Exception, config: bool) -> None:
    assert rabbit.is_config_error(exc) is config


async def test_connect_with_a_malformed_url_raises_the_config_error_not_unavailable() -> None:
    publisher = rabbit.RabbitPublisher(f"amqp://u:{PASSWORD}@127.0.0.1:1/?heartbeat=x", "ex")
    with pytest.raises(rabbit.BrokerConfigError) as caught:
        await publisher.connect()
    assert caught.value.url == "amqp://u:***@127.0.0.1:1/?heartbeat=x"
    assert PASSWORD not in str(caught.value)
