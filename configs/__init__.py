"""Settings: the one place that reads the environment (`load_settings`).

The names below load their modules on first use (PEP 562), so that importing a module of this
package (`financial.configs.quick`, for a command that must start fast) does not import
pydantic-settings, which takes longer than such a command may.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from financial.configs.errors import SettingsError
    from financial.configs.job_override import JobOverride, job_key
    from financial.configs.settings import Settings, load_settings

__all__ = ["JobOverride", "Settings", "SettingsError", "job_key", "load_settings"]

_HOMES = {
    "JobOverride": "financial.configs.job_override",
    "Settings": "financial.configs.settings",
    "SettingsError": "financial.configs.errors",
    "job_key": "financial.configs.job_override",
    "load_settings": "financial.configs.settings",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
