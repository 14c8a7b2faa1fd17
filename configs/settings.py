"""Settings: the one place that reads the environment, `.env` and secret files.

Every field is named after its environment variable, lowercased (`WORKER_MAX_CONCURRENT_JOBS` is
`settings.worker_max_concurrent_jobs`); the names are the Go worker's where it had one. Sources,
strongest first: keyword overrides, the environment, `.env`, secret files. An empty variable
means "use the default", except `WORKER_HEALTH_ADDR`, where empty turns the health server off.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pydantic_settings
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from financial.configs import otel
from financial.configs.closed_dates import parse_date as _date
from financial.configs.closed_dates import read_closed_dates
from financial.configs.errors import (
    SettingsError,
    problem_from_source_error,
    problems_from_validation,
)
from financial.configs.job_override import JobOverride, job_key
from financial.configs.quick import DEFAULT_TIMEZONE, check_timezone, default_secrets_dirs
from financial.configs.values import check_url as _check_url
from financial.configs.values import parse_host_port

__all__ = ["JobOverride", "Settings", "SettingsError", "job_key", "load_settings"]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["json", "console", "auto"]
BlockingExecutor = Literal["thread", "process"]
EventLoop = Literal["auto", "uvloop", "asyncio"]
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)
# NoDecode: pydantic-settings would otherwise demand JSON for a list read from the environment.
CommaList = Annotated[list[str], NoDecode]

_MODULE_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    """Every setting of the worker, validated; build it with `load_settings`."""

    model_config = SettingsConfigDict(
        env_nested_delimiter="__",
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="ignore",
        frozen=True,
        # A rejected secret must not reach a traceback through pydantic's own message.
        hide_input_in_errors=True,
    )

    # Worker
    service_name_worker: str = Field(default="financial-worker", min_length=1)
    worker_id: str = Field(default_factory=_default_worker_id, min_length=1)
    worker_default_timeout_seconds: float = Field(default=300, gt=0)
    worker_max_concurrent_jobs: int = Field(default=10, ge=1)
    worker_shutdown_timeout_seconds: float = Field(default=30, ge=0)
    worker_timezone: str = DEFAULT_TIMEZONE
    worker_start_deadline_seconds: float = Field(default=60, gt=0)
    worker_job_modules: CommaList = Field(default_factory=list)
    worker_auto_migrate: bool = True
    worker_history_retention_days: int = Field(default=30, ge=1)
    worker_run_lease_seconds: float = Field(default=30, ge=3)
    worker_job_settings_reread_seconds: float = Field(default=30, gt=0, le=3600)
    worker_health_addr: str = "127.0.0.1:8080"
    worker_data_dir: Path = Path(".data")
    worker_jobs: dict[str, JobOverride] = Field(default_factory=dict)
    # Blocking jobs: where they run unless they say, the thread pool's size (None: the
    # concurrency cap), and how long a child process has between SIGTERM and SIGKILL.
    worker_default_executor: BlockingExecutor = "thread"
    worker_thread_pool_size: int | None = Field(default=None, ge=1)
    worker_process_kill_grace_seconds: float = Field(default=5, ge=0)
    # Holiday calendars: the default of cron jobs that name none (checked when a job uses
    # it: the holidays package is imported only then), and the company's own closed dates.
    worker_calendar: str | None = None
    worker_closed_dates: CommaList = Field(default_factory=list)
    worker_closed_dates_file: Path | None = None
    # The event loop of every command: uvloop where it is installed (auto), or either one.
    worker_event_loop: EventLoop = "auto"
    # Dead-man alerts: the default `alert_after` of every job (unset or 0: off), and how often
    # the replica holding the checker's lease looks for late jobs.
    worker_alert_after_seconds: float | None = Field(default=None, ge=0)
    worker_alert_check_interval_seconds: float = Field(default=5, ge=0.1)

    # Logging
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "auto"

    # PostgreSQL: DATABASE_URL wins over the DB_* parts.
    database_url: SecretStr | None = None
    db_host: str | None = None
    db_port: int = Field(default=5432, ge=1, le=65535)
    db_user: str | None = None
    db_password: SecretStr | None = None
    db_name: str | None = None
    db_pool_min_size: int = Field(default=1, ge=0)
    db_pool_max_size: int = Field(default=10, ge=1)
    db_command_timeout_seconds: float = Field(default=30, gt=0)
    db_connect_timeout_seconds: float = Field(default=10, gt=0)

    # RabbitMQ
    rabbitmq_url: SecretStr | None = None
    rabbitmq_exchange: str = Field(default="financial.events", min_length=1)
    rabbitmq_publish_timeout_seconds: float = Field(default=5, gt=0)

    # Outbox
    outbox_retention_days: int = Field(default=7, ge=1)
    outbox_batch_size: int = Field(default=100, ge=1)

    # Jobs
    cleanup_retention_days: int = Field(default=90, ge=1)
    cleanup_tables: CommaList = Field(default_factory=lambda: ["categories"])
    cleanup_batch_size: int = Field(default=1000, ge=1)

    # Telemetry
    otel_service_name: str = Field(default="", validate_default=True)
    otel_exporter_otlp_endpoint: str | None = None
    otel_sdk_disabled: bool = False
    # The standard OTEL_* variables, checked by `configs/otel.py`.
    otel_exporter_otlp_traces_endpoint: str | None = None
    otel_exporter_otlp_metrics_endpoint: str | None = None
    otel_exporter_otlp_protocol: str | None = None
    otel_traces_exporter: str | None = None
    otel_metrics_exporter: str | None = None
    otel_resource_attributes: str | None = None
    otel_metric_export_interval: int = Field(default=60_000, gt=0)  # ms, the spec's default

    @model_validator(mode="before")
    @classmethod
    def _empty_means_default(cls, data: Any) -> Any:
        # `.env.example` lists every variable; a copy with blanks left in must still load.
        if not isinstance(data, dict):
            return data
        return {
            key: value
            for key, value in data.items()
            if key == "worker_health_addr" or not (isinstance(value, str) and not value.strip())
        }

    @field_validator("log_level", mode="before")
    @classmethod
    def _normalize_level(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        level = value.strip().upper()
        level = "WARNING" if level == "WARN" else level
        if level not in LOG_LEVELS:
            raise ValueError(f"one of {', '.join(LOG_LEVELS)} (any case)")
        return level

    @field_validator("log_format", mode="before")
    @classmethod
    def _normalize_format(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("worker_default_executor", "worker_event_loop", mode="before")
    @classmethod
    def _normalize_choice(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("worker_job_modules", "cleanup_tables", "worker_closed_dates", mode="before")
    @classmethod
    def _split_comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("worker_job_modules")
    @classmethod
    def _check_module_paths(cls, value: list[str]) -> list[str]:
        bad = [item for item in value if not _MODULE_PATH.match(item)]
        if bad:
            raise ValueError(f"dotted module paths such as myapp.jobs (not {', '.join(bad)})")
        return value

    @field_validator("worker_closed_dates")
    @classmethod
    def _check_closed_dates(cls, value: list[str]) -> list[str]:
        bad = [item for item in value if _date(item) is None]
        if bad:
            raise ValueError(f"dates as YYYY-MM-DD, comma-separated (not {', '.join(bad)})")
        return value

    @field_validator("worker_closed_dates_file")
    @classmethod
    def _check_closed_dates_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_closed_dates(value)
        return value

    @field_validator("worker_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        return check_timezone(value)  # shared with `financial schedule`'s quick read

    @field_validator("worker_health_addr")
    @classmethod
    def _check_health_addr(cls, value: str) -> str:
        value = value.strip()
        if value:
            parse_host_port(value)
        return value

    @field_validator("worker_jobs", mode="before")
    @classmethod
    def _normalize_job_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {job_key(str(name)): override for name, override in value.items()}
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_url(value.get_secret_value(), ("postgresql", "postgres"))
        return value

    @field_validator("rabbitmq_url")
    @classmethod
    def _check_rabbitmq_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_url(value.get_secret_value(), ("amqp", "amqps"))
        return value

    @field_validator("otel_exporter_otlp_endpoint")
    @classmethod
    def _check_otlp_endpoint(cls, value: str | None) -> str | None:
        if value is not None:
            _check_url(value, ("http", "https"))
        return value

    @field_validator("otel_exporter_otlp_traces_endpoint", "otel_exporter_otlp_metrics_endpoint")
    @classmethod
    def _check_signal_endpoint(cls, value: str | None) -> str | None:
        return otel.check_endpoint(value)

    @field_validator("otel_exporter_otlp_protocol")
    @classmethod
    def _check_otlp_protocol(cls, value: str | None) -> str | None:
        return otel.check_protocol(value)

    @field_validator("otel_traces_exporter", "otel_metrics_exporter")
    @classmethod
    def _check_exporters(cls, value: str | None, info: ValidationInfo) -> str | None:
        allowed = (
            otel.TRACES_EXPORTERS
            if info.field_name == "otel_traces_exporter"
            else otel.METRICS_EXPORTERS
        )
        names = otel.parse_exporters(value, allowed)
        return ",".join(names) or None

    @field_validator("otel_resource_attributes")
    @classmethod
    def _check_resource_attributes(cls, value: str | None) -> str | None:
        otel.parse_resource_attributes(value)
        return value

    @field_validator("otel_service_name")
    @classmethod
    def _default_otel_service_name(cls, value: str, info: ValidationInfo) -> str:
        # Declared after service_name_worker, so that one is already validated here.
        return value.strip() or str(info.data.get("service_name_worker", "financial-worker"))

    @model_validator(mode="after")
    def _check_pool_sizes(self) -> Settings:
        if self.db_pool_max_size < self.db_pool_min_size:
            raise ValueError(
                f"DB_POOL_MAX_SIZE='{self.db_pool_max_size}': expected an integer >= "
                f"DB_POOL_MIN_SIZE ({self.db_pool_min_size})"
            )
        return self

    @property
    def jobs(self) -> dict[str, JobOverride]:
        """Per-job overrides by job key (see `job_key`)."""
        return self.worker_jobs

    def job_override(self, name: str) -> JobOverride | None:
        """The overrides for job `name` (any case, `.`/`-` as `_`), or `None`."""
        return self.worker_jobs.get(job_key(name))

    def closed_dates(self) -> tuple[tuple[date, str], ...]:
        """The company's own closed dates with their labels, from `WORKER_CLOSED_DATES` and
        `WORKER_CLOSED_DATES_FILE`, in date order: not business days for any job with a
        calendar."""
        found: dict[date, str] = {}
        for item in self.worker_closed_dates:
            day = _date(item)
            if day is not None:  # always: the validator checked each
                found[day] = "closed (WORKER_CLOSED_DATES)"
        if self.worker_closed_dates_file is not None:
            found |= read_closed_dates(self.worker_closed_dates_file)
        return tuple(sorted(found.items()))

    @property
    def thread_pool_size(self) -> int:
        """`WORKER_THREAD_POOL_SIZE`, else `WORKER_MAX_CONCURRENT_JOBS`: a run that has a slot
        always finds a thread."""
        return self.worker_thread_pool_size or self.worker_max_concurrent_jobs

    @property
    def timezone(self) -> ZoneInfo:
        """`WORKER_TIMEZONE` as a `ZoneInfo`: the default zone for jobs that set none."""
        return ZoneInfo(self.worker_timezone)

    @property
    def health_address(self) -> tuple[str, int] | None:
        """`WORKER_HEALTH_ADDR` as (host, port), or `None` when the health server is off."""
        return parse_host_port(self.worker_health_addr) if self.worker_health_addr else None

    @property
    def database_configured(self) -> bool:
        """Whether an external PostgreSQL is configured (else the embedded one is used)."""
        return self.database_url is not None or self.db_host is not None

    def database_dsn(self) -> str | None:
        """The PostgreSQL DSN, with the password in clear: hand it to the driver, never log it.

        `DATABASE_URL` when set; else one built from the `DB_*` parts, user and password
        URL-quoted; `None` when neither is configured.
        """
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        if self.db_host is None:
            return None
        userinfo = ""
        if self.db_user is not None:
            userinfo = quote(self.db_user, safe="")
            if self.db_password is not None:
                userinfo += ":" + quote(self.db_password.get_secret_value(), safe="")
            userinfo += "@"
        host, query = self.db_host, ""
        if host.startswith("/"):
            # A Unix socket folder goes in the query string, where libpq and asyncpg look.
            host, query = "", "?host=" + quote(host, safe="/")
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"
        name = quote(self.db_name, safe="") if self.db_name is not None else ""
        return f"postgresql://{userinfo}{host}:{self.db_port}/{name}{query}"

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        # Secrets are SecretStr already; this also covers a credential pasted into a plain URL.
        from financial.pkg.observability.logging import mask_secrets

        for name, value in super().__repr_args__():
            yield name, mask_secrets(value) if isinstance(value, str) else value


def load_settings(
    env_file: str | os.PathLike[str] | None = ".env",
    *,
    secrets_dirs: Sequence[str | os.PathLike[str]] | None = None,
    **overrides: Any,
) -> Settings:
    """Read and validate every setting; raise `SettingsError` naming each bad variable.

    `env_file` is read if it exists (`None` reads no file). Secret files (a file per variable,
    named like it in lower or upper case, e.g. `db_password`) come from `secrets_dirs`, or by
    default from `/run/secrets` and `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`),
    whichever exist now. The environment wins over `.env`, which wins over secret files;
    `overrides` (field names) win over all.
    """
    if secrets_dirs is None:
        dirs = default_secrets_dirs()
    else:
        dirs = [Path(d) for d in secrets_dirs]
        missing = [str(d) for d in dirs if not d.is_dir()]
        if missing:
            raise SettingsError([f"secrets folder {d!r}: expected a directory" for d in missing])
    fields = Settings.model_fields
    # pydantic-settings' own keywords, passed as a mapping: the __init__ that type checkers
    # derive from the fields does not list them.
    sources: dict[str, Any] = {"_env_file": env_file, "_secrets_dir": dirs or None}
    try:
        return Settings(**sources, **overrides)
    except ValidationError as exc:
        raise SettingsError(problems_from_validation(exc.errors(), fields)) from None
    except pydantic_settings.SettingsError as exc:
        raise SettingsError([problem_from_source_error(str(exc), fields)]) from None
