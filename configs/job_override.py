"""What an operator changes for one job from the environment (`WORKER_JOBS__<JOB>__<FIELD>`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["HolidayPolicy", "JobOverride", "job_key"]

HolidayPolicy = Literal["skip", "next", "previous"]


def job_key(name: str) -> str:
    """The key a job's overrides live under: lowercased, `.` and `-` as `_`.

    Environment variable names cannot hold `.` or `-`, so `reports.weekly` is configured as
    `WORKER_JOBS__REPORTS_WEEKLY__SCHEDULE`.
    """
    return name.strip().lower().replace(".", "_").replace("-", "_")


class JobOverride(BaseModel):
    """What an operator changed for one job from the environment; `None` keeps the job's own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schedule: str | None = None
    enabled: bool | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)
    calendar: str | None = None
    on_holiday: HolidayPolicy | None = None
    alert_after_seconds: float | None = Field(default=None, ge=0)  # 0: alerts off for the job

    @model_validator(mode="before")
    @classmethod
    def _empty_means_unset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        return data

    @field_validator("schedule", "calendar")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return value.strip() if value is not None else None

    @field_validator("on_holiday", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value
