"""One setting read the way `Settings` reads it, without pydantic: for `financial schedule`.

Importing pydantic-settings alone takes about 150 ms, as long as the whole of a quick command
may take; `financial schedule` needs one setting, `WORKER_TIMEZONE`, so it reads that one from
the same sources in the same order (the environment, any case; `.env`; secret files), applies
the same default (an empty value means it) and the same check. A malformed value is told in
the same line as by `load_settings` (exit 78). Other settings are not read, so a wrong one does
not stop this command.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TIMEZONE = "UTC"
TIMEZONE_EXPECTED = "an IANA time zone such as UTC or Europe/Paris"
SYSTEM_SECRETS_DIR = Path("/run/secrets")


def default_secrets_dirs() -> list[Path]:
    """The secret folders that exist now; later ones win: systemd's credentials over a mounted
    /run/secrets."""
    candidates = [SYSTEM_SECRETS_DIR]
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials:
        candidates.append(Path(credentials))
    return [path for path in candidates if path.is_dir()]


def check_timezone(value: str) -> str:
    """`value` stripped, when it names a zone; ValueError saying what was expected otherwise."""
    value = value.strip()
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(TIMEZONE_EXPECTED) from None
    return value


def raw_setting(
    variable: str,
    env_file: str | os.PathLike[str] | None = ".env",
    secrets_dirs: Sequence[Path] | None = None,
) -> str | None:
    """The value of `variable` from the first source that has it, as `Settings` ranks them:
    the environment, then `env_file`, then secret files (the last folder first); None if none."""
    wanted = variable.lower()
    for name, value in os.environ.items():
        if name.lower() == wanted:
            return value
    if env_file is not None and Path(env_file).is_file():
        # python-dotenv reads .env for pydantic-settings too (it is one of its dependencies).
        from dotenv import dotenv_values

        for name, found in dotenv_values(env_file, encoding="utf-8").items():
            if name.lower() == wanted and found is not None:
                return found
    folders = default_secrets_dirs() if secrets_dirs is None else list(secrets_dirs)
    for folder in reversed(folders):
        for name in (wanted, variable.upper()):
            path = folder / name
            if path.is_file():
                return path.read_text(encoding="utf-8").strip()
    return None


def worker_timezone(
    env_file: str | os.PathLike[str] | None = ".env",
    secrets_dirs: Sequence[Path] | None = None,
) -> str:
    """`WORKER_TIMEZONE`, checked; ValueError when it names no zone, in the one line a
    `SettingsError` would say (`WORKER_TIMEZONE='Mars/Olympus': expected an IANA ...`)."""
    value = raw_setting("WORKER_TIMEZONE", env_file, secrets_dirs)
    if value is None or not value.strip():
        return DEFAULT_TIMEZONE
    try:
        return check_timezone(value)
    except ValueError as exc:
        raise ValueError(f"WORKER_TIMEZONE={value!r}: expected {exc}") from None
