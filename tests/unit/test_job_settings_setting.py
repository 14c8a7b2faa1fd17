"""WORKER_JOB_SETTINGS_REREAD_SECONDS: its default, a value read, and bad values named."""

from __future__ import annotations

import pytest

from financial.configs import SettingsError
from tests.unit.settings_env import load

pytestmark = pytest.mark.usefixtures("clean_env")


def test_the_reread_defaults_to_30_seconds_and_reads_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load().worker_job_settings_reread_seconds == 30
    monkeypatch.setenv("WORKER_JOB_SETTINGS_REREAD_SECONDS", "2.5")
    assert load().worker_job_settings_reread_seconds == 2.5


@pytest.mark.parametrize("value", ["0", "-1", "often", "7200"])
def test_a_bad_reread_is_refused_naming_the_variable_and_value(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("WORKER_JOB_SETTINGS_REREAD_SECONDS", value)
    with pytest.raises(SettingsError) as refused:
        load()
    assert str(refused.value).startswith(f"WORKER_JOB_SETTINGS_REREAD_SECONDS='{value}': expected")
