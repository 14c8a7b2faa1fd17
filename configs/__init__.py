"""Settings: the one place that reads the environment (`load_settings`)."""

from __future__ import annotations

from financial.configs.errors import SettingsError
from financial.configs.settings import JobOverride, Settings, job_key, load_settings

__all__ = ["JobOverride", "Settings", "SettingsError", "job_key", "load_settings"]
