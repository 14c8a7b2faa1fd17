"""Settings as a test loads them: from the environment alone (no .env file, no secrets folder).

The `clean_env` fixture (conftest.py) empties the environment of every setting first.
"""

from __future__ import annotations

from financial.configs import Settings, load_settings


def load(**overrides: object) -> Settings:
    """The settings from the environment and `overrides` (keyword arguments win)."""
    return load_settings(env_file=None, secrets_dirs=[], **overrides)
