"""Settings: defaults, sources, per-job overrides, and one-line errors that never show a secret."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from financial.configs import JobOverride, Settings, SettingsError, job_key, load_settings
from tests.unit.settings_env import load

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
ENV_NAMES = [name.upper() for name in Settings.model_fields]
SECRET = "hunter2-s3cr3t"


pytestmark = pytest.mark.usefixtures("clean_env")


def test_defaults() -> None:
    settings = load()

    assert settings.service_name_worker == "financial-worker"
    assert settings.worker_id == f"{socket.gethostname()}-{os.getpid()}"
    assert settings.worker_default_timeout_seconds == 300
    assert settings.worker_max_concurrent_jobs == 10
    assert settings.worker_shutdown_timeout_seconds == 30
    assert settings.worker_timezone == "UTC"
    assert settings.timezone == ZoneInfo("UTC")
    assert settings.worker_start_deadline_seconds == 60
    assert settings.worker_job_modules == []
    assert settings.worker_auto_migrate is True
    assert settings.worker_history_retention_days == 30
    assert settings.worker_health_addr == "127.0.0.1:8080"
    assert settings.health_address == ("127.0.0.1", 8080)
    assert settings.worker_data_dir == Path(".data")
    assert settings.worker_default_executor == "thread"
    assert settings.worker_thread_pool_size is None
    assert settings.thread_pool_size == settings.worker_max_concurrent_jobs == 10
    assert settings.worker_process_kill_grace_seconds == 5
    assert settings.jobs == {}
    assert settings.log_level == "INFO"
    assert settings.log_format == "auto"
    assert settings.database_url is None
    assert settings.database_configured is False
    assert settings.database_dsn() is None
    assert (settings.db_port, settings.db_pool_min_size, settings.db_pool_max_size) == (5432, 1, 10)
    assert settings.db_command_timeout_seconds == 30
    assert settings.db_connect_timeout_seconds == 10
    assert settings.rabbitmq_url is None
    assert settings.rabbitmq_exchange == "financial.events"
    assert settings.rabbitmq_publish_timeout_seconds == 5
    assert (settings.outbox_retention_days, settings.outbox_batch_size) == (7, 100)
    assert settings.cleanup_retention_days == 90
    assert settings.cleanup_tables == ["categories"]
    assert settings.cleanup_batch_size == 1000
    assert settings.otel_service_name == "financial-worker"
    assert settings.otel_exporter_otlp_endpoint is None
    assert settings.otel_sdk_disabled is False


def test_executor_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_DEFAULT_EXECUTOR", " Process ")
    monkeypatch.setenv("WORKER_MAX_CONCURRENT_JOBS", "4")
    monkeypatch.setenv("WORKER_PROCESS_KILL_GRACE_SECONDS", "0.5")
    settings = load()
    assert settings.worker_default_executor == "process"
    assert settings.thread_pool_size == 4  # the concurrency cap, when unset
    assert settings.worker_process_kill_grace_seconds == 0.5
    monkeypatch.setenv("WORKER_THREAD_POOL_SIZE", "16")
    assert load().thread_pool_size == 16


def test_worker_id_is_computed_when_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "box-7")
    assert load().worker_id == f"box-7-{os.getpid()}"


@pytest.mark.parametrize(
    ("variable", "value", "attribute", "expected"),
    [
        ("SERVICE_NAME_WORKER", "svc", "service_name_worker", "svc"),
        ("WORKER_ID", "replica-a", "worker_id", "replica-a"),
        ("WORKER_DEFAULT_TIMEOUT_SECONDS", "12.5", "worker_default_timeout_seconds", 12.5),
        ("WORKER_MAX_CONCURRENT_JOBS", "3", "worker_max_concurrent_jobs", 3),
        ("WORKER_SHUTDOWN_TIMEOUT_SECONDS", "0", "worker_shutdown_timeout_seconds", 0),
        ("WORKER_TIMEZONE", "Europe/Paris", "worker_timezone", "Europe/Paris"),
        ("WORKER_START_DEADLINE_SECONDS", "5", "worker_start_deadline_seconds", 5),
        ("WORKER_JOB_MODULES", "a.jobs, b.more ,", "worker_job_modules", ["a.jobs", "b.more"]),
        ("WORKER_AUTO_MIGRATE", "false", "worker_auto_migrate", False),
        ("WORKER_HISTORY_RETENTION_DAYS", "3", "worker_history_retention_days", 3),
        ("WORKER_HEALTH_ADDR", "0.0.0.0:9000", "health_address", ("0.0.0.0", 9000)),
        ("WORKER_HEALTH_ADDR", "[::1]:8080", "health_address", ("::1", 8080)),
        ("WORKER_HEALTH_ADDR", ":8080", "health_address", ("", 8080)),
        ("WORKER_HEALTH_ADDR", "", "health_address", None),
        ("WORKER_DATA_DIR", "/var/lib/worker", "worker_data_dir", Path("/var/lib/worker")),
        ("LOG_LEVEL", "debug", "log_level", "DEBUG"),
        ("LOG_LEVEL", "Warn", "log_level", "WARNING"),
        ("LOG_FORMAT", "JSON", "log_format", "json"),
        ("DB_PORT", "6432", "db_port", 6432),
        ("DB_POOL_MIN_SIZE", "0", "db_pool_min_size", 0),
        ("DB_POOL_MAX_SIZE", "20", "db_pool_max_size", 20),
        ("DB_COMMAND_TIMEOUT_SECONDS", "2", "db_command_timeout_seconds", 2),
        ("DB_CONNECT_TIMEOUT_SECONDS", "3", "db_connect_timeout_seconds", 3),
        ("RABBITMQ_EXCHANGE", "ex", "rabbitmq_exchange", "ex"),
        ("RABBITMQ_PUBLISH_TIMEOUT_SECONDS", "1.5", "rabbitmq_publish_timeout_seconds", 1.5),
        ("OUTBOX_RETENTION_DAYS", "1", "outbox_retention_days", 1),
        ("OUTBOX_BATCH_SIZE", "5", "outbox_batch_size", 5),
        ("CLEANUP_RETENTION_DAYS", "30", "cleanup_retention_days", 30),
        ("CLEANUP_TABLES", "categories,budgets", "cleanup_tables", ["categories", "budgets"]),
        ("CLEANUP_BATCH_SIZE", "10", "cleanup_batch_size", 10),
        ("OTEL_SERVICE_NAME", "traced", "otel_service_name", "traced"),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://otel:4318",
            "otel_exporter_otlp_endpoint",
            "http://otel:4318",
        ),
        ("OTEL_SDK_DISABLED", "true", "otel_sdk_disabled", True),
    ],
)
def test_environment_overrides(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, attribute: str, expected: object
) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(load(), attribute) == expected


def test_empty_variable_takes_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORKER_MAX_CONCURRENT_JOBS", "LOG_LEVEL", "DB_HOST", "CLEANUP_TABLES"):
        monkeypatch.setenv(name, "")
    settings = load()
    assert settings.worker_max_concurrent_jobs == 10
    assert settings.log_level == "INFO"
    assert settings.db_host is None
    assert settings.cleanup_tables == ["categories"]


def test_otel_service_name_follows_the_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_NAME_WORKER", "worker-eu")
    assert load().otel_service_name == "worker-eu"


def test_keyword_overrides_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_MAX_CONCURRENT_JOBS", "4")
    assert load(worker_max_concurrent_jobs=2).worker_max_concurrent_jobs == 2


def test_unknown_worker_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_SOMETHING_NEW", "x")
    assert load().worker_max_concurrent_jobs == 10


def test_per_job_overrides_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_JOBS__REPORT_GENERATOR__SCHEDULE", " 0 9 * * 1 ")
    monkeypatch.setenv("WORKER_JOBS__REPORT_GENERATOR__ENABLED", "false")
    monkeypatch.setenv("WORKER_JOBS__DATABASE_CLEANUP__TIMEOUT_SECONDS", "600")
    monkeypatch.setenv("WORKER_JOBS__REPORTS_WEEKLY__ENABLED", "true")

    settings = load()

    assert settings.jobs["report_generator"].schedule == "0 9 * * 1"
    assert settings.jobs["report_generator"] == JobOverride(schedule="0 9 * * 1", enabled=False)
    assert settings.job_override("database_cleanup") == JobOverride(timeout_seconds=600)
    # Job names may hold `.` and `-`, which environment variable names cannot.
    assert settings.job_override("reports.weekly") == JobOverride(enabled=True)
    assert settings.job_override("Report-Generator") is settings.jobs["report_generator"]
    assert settings.job_override("outbox_relay") is None
    assert job_key("Reports.Weekly-v2") == "reports_weekly_v2"


def test_env_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "custom.env"
    env_file.write_text(
        "WORKER_MAX_CONCURRENT_JOBS=4\n"
        "LOG_LEVEL=error\n"
        "WORKER_JOB_MODULES=a.jobs,b.jobs\n"
        'WORKER_JOBS__OUTBOX_RELAY__SCHEDULE="@every 10s"\n'
        "# a comment\n"
        "SOMETHING_ELSE=ignored\n"
    )
    monkeypatch.setenv("LOG_LEVEL", "debug")

    settings = load_settings(env_file=env_file, secrets_dirs=[])

    assert settings.worker_max_concurrent_jobs == 4
    assert settings.worker_job_modules == ["a.jobs", "b.jobs"]
    assert settings.job_override("outbox_relay") == JobOverride(schedule="@every 10s")
    assert settings.log_level == "DEBUG"  # the environment wins over the file


def test_dot_env_in_the_working_directory_is_the_default(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WORKER_MAX_CONCURRENT_JOBS=7\n")
    assert load_settings(secrets_dirs=[]).worker_max_concurrent_jobs == 7
    assert load_settings(env_file=None, secrets_dirs=[]).worker_max_concurrent_jobs == 10


def test_missing_env_file_is_not_an_error(tmp_path: Path) -> None:
    settings = load_settings(env_file=tmp_path / "absent.env", secrets_dirs=[])
    assert settings.worker_max_concurrent_jobs == 10


def test_secrets_from_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "db_password").write_text(f"{SECRET}\n")
    (secrets / "RABBITMQ_URL").write_text("amqp://app:from-file@mq:5672/")
    (secrets / "db_user").write_text("from-file")
    monkeypatch.setenv("DB_HOST", "db")
    monkeypatch.setenv("DB_USER", "from-env")

    settings = load_settings(env_file=None, secrets_dirs=[secrets])

    assert settings.db_password is not None
    assert settings.db_password.get_secret_value() == SECRET
    assert settings.rabbitmq_url is not None
    assert settings.rabbitmq_url.get_secret_value() == "amqp://app:from-file@mq:5672/"
    assert settings.db_user == "from-env"  # the environment wins over files
    assert settings.database_dsn() == f"postgresql://from-env:{SECRET}@db:5432/"


def test_credentials_directory_is_found_at_load_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "DB_PASSWORD").write_text(SECRET)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))

    settings = load_settings(env_file=None)

    assert settings.db_password is not None
    assert settings.db_password.get_secret_value() == SECRET


def test_missing_secrets_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="expected a directory"):
        load_settings(env_file=None, secrets_dirs=[tmp_path / "nope"])


HEALTH_ADDR_EXPECTED = "host:port such as 127.0.0.1:8080, or empty to turn it off"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("WORKER_MAX_CONCURRENT_JOBS", "ten", "an integer >= 1"),
        ("WORKER_MAX_CONCURRENT_JOBS", "0", "an integer >= 1"),
        ("WORKER_DEFAULT_TIMEOUT_SECONDS", "-1", "a number > 0"),
        ("WORKER_TIMEZONE", "Mars/Base", "an IANA time zone such as UTC or Europe/Paris"),
        ("LOG_LEVEL", "LOUD", "one of DEBUG, INFO, WARNING, ERROR (any case)"),
        ("LOG_FORMAT", "xml", "one of json, console, auto"),
        ("WORKER_HEALTH_ADDR", "nope", HEALTH_ADDR_EXPECTED),
        ("WORKER_HEALTH_ADDR", "host:99999", HEALTH_ADDR_EXPECTED),
        ("WORKER_AUTO_MIGRATE", "maybe", "a boolean (true or false)"),
        ("WORKER_DEFAULT_EXECUTOR", "fork", "one of thread, process"),
        ("WORKER_THREAD_POOL_SIZE", "0", "an integer >= 1"),
        ("WORKER_THREAD_POOL_SIZE", "many", "an integer >= 1"),
        ("WORKER_PROCESS_KILL_GRACE_SECONDS", "-1", "a number >= 0"),
        ("DB_PORT", "70000", "an integer >= 1 and <= 65535"),
        ("WORKER_JOB_MODULES", "my-jobs", "dotted module paths such as myapp.jobs (not my-jobs)"),
        ("WORKER_JOBS__REPORT_GENERATOR__TIMEOUT_SECONDS", "soon", "a number > 0"),
        ("WORKER_JOBS__REPORT_GENERATOR__ENABLED", "perhaps", "a boolean (true or false)"),
        (
            "WORKER_JOBS__REPORT_GENERATOR__SCHEDUEL",
            "0 9 * * 1",
            "one of the per-job settings SCHEDULE, ENABLED, TIMEOUT_SECONDS, CALENDAR, "
            "ON_HOLIDAY, ALERT_AFTER_SECONDS",
        ),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "otel:4318", "a URL starting with http:// or https://"),
        (
            "WORKER_CLOSED_DATES",
            "2026-12-24,2026-13-01",
            "dates as YYYY-MM-DD, comma-separated (not 2026-13-01)",
        ),
        ("WORKER_JOBS__REPORT_GENERATOR__ON_HOLIDAY", "later", "one of skip, next, previous"),
    ],
)
def test_malformed_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError) as caught:
        load()

    assert str(caught.value) == f"{variable}={value!r}: expected {expected}"
    # Raised `from None`: pydantic's own multi-line error is not chained on.
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "DATABASE_URL",
            f"postgresql://app:{SECRET}@db:port/x",
            "DATABASE_URL='postgresql://app:***@db:port/x': "
            "expected a postgresql:// URL whose port is a number from 0 to 65535",
        ),
        (
            "DATABASE_URL",
            f"mysql://app:{SECRET}@db:5432/x",
            "DATABASE_URL='mysql://app:***@db:5432/x': "
            "expected a URL starting with postgresql:// or postgres://",
        ),
        (
            "RABBITMQ_URL",
            f"rabbit {SECRET}",
            "RABBITMQ_URL='***': expected a URL starting with amqp:// or amqps://",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            f"ftp://otel:{SECRET}@collector",
            "OTEL_EXPORTER_OTLP_ENDPOINT='ftp://otel:***@collector': "
            "expected a URL starting with http:// or https://",
        ),
    ],
)
def test_malformed_secret_is_masked_in_the_message(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError) as caught:
        load()

    assert str(caught.value) == message
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


def test_every_problem_is_reported_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_MAX_CONCURRENT_JOBS", "ten")
    monkeypatch.setenv("WORKER_TIMEZONE", "Mars/Base")
    monkeypatch.setenv("LOG_LEVEL", "LOUD")

    with pytest.raises(SettingsError) as caught:
        load()

    assert len(caught.value.problems) == 3
    assert str(caught.value) == "; ".join(caught.value.problems)
    assert [p.split("=")[0] for p in caught.value.problems] == [
        "WORKER_MAX_CONCURRENT_JOBS",
        "WORKER_TIMEZONE",
        "LOG_LEVEL",
    ]
    assert "\n" not in str(caught.value)


def test_pool_sizes_must_be_ordered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_POOL_MIN_SIZE", "5")
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "2")
    with pytest.raises(SettingsError) as caught:
        load()
    assert str(caught.value) == "DB_POOL_MAX_SIZE='2': expected an integer >= DB_POOL_MIN_SIZE (5)"


def test_secret_of_the_wrong_type_is_masked_whole() -> None:
    with pytest.raises(SettingsError) as caught:
        load(db_password=12345678)
    assert str(caught.value) == "DB_PASSWORD='***': expected a string"


def test_undecodable_per_job_json_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_JOBS", "{not json")
    with pytest.raises(SettingsError, match=r"^WORKER_JOBS: expected per-job settings"):
        load()


def test_secret_fields_never_show_in_repr_or_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:{SECRET}@db:5432/fin")
    monkeypatch.setenv("DB_PASSWORD", SECRET)
    monkeypatch.setenv("RABBITMQ_URL", f"amqp://app:{SECRET}@mq:5672/")

    settings = load()

    for text in (repr(settings), str(settings), repr(settings.model_dump())):
        assert SECRET not in text
    assert SECRET not in settings.model_dump_json()


def test_credentials_in_a_plain_url_are_masked_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"https://otel:{SECRET}@collector:4318")

    settings = load()

    assert SECRET not in repr(settings)
    assert "https://otel:***@collector:4318" in repr(settings)
    assert settings.otel_exporter_otlp_endpoint == f"https://otel:{SECRET}@collector:4318"


def test_env_example_lists_every_setting() -> None:
    text = ENV_EXAMPLE.read_text()
    for name in ENV_NAMES:
        # WORKER_JOBS is a family: WORKER_JOBS__<JOB>__<SETTING>.
        line = f"{name}__" if name == "WORKER_JOBS" else f"{name}="
        assert f"\n{line}" in text or f"\n# {line}" in text, name


def test_env_example_holds_the_defaults() -> None:
    from_example = load_settings(env_file=ENV_EXAMPLE, secrets_dirs=[])
    assert from_example == load(worker_id=from_example.worker_id)
