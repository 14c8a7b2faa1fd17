"""The contract every `JobSettingsStore` keeps, run against the in-memory store
(tests/unit/test_job_settings_store.py) and PostgreSQL (tests/integration/test_job_settings_pg.py).

A test module subclasses `JobSettingsContract` as `Test...` and provides the `settings` fixture.
"""

from __future__ import annotations

import pytest

from financial.pkg.scheduler.job_settings import (
    NOT_SET,
    JobSettingsStore,
    RuntimeSettings,
    SettingsAction,
)


class JobSettingsContract:
    """Tests every job settings store passes."""

    async def test_a_job_without_settings_has_none(self, settings: JobSettingsStore) -> None:
        assert await settings.get("job") == NOT_SET
        assert await settings.all() == {}
        assert await settings.audit("job") == []

    async def test_set_stores_the_fields_given(self, settings: JobSettingsStore) -> None:
        change = await settings.set(
            "job", RuntimeSettings(schedule="*/5 * * * *", timeout_s=30), by="ann@h", reason="r"
        )
        expected = RuntimeSettings(schedule="*/5 * * * *", timeout_s=30.0)
        assert change.new == expected
        assert change.old == NOT_SET
        assert change.action is SettingsAction.SET
        assert await settings.get("job") == expected
        assert await settings.all() == {"job": expected}

    async def test_set_merges_with_what_was_set(self, settings: JobSettingsStore) -> None:
        await settings.set("job", RuntimeSettings(schedule="@hourly"), by="a", reason=None)
        change = await settings.set("job", RuntimeSettings(enabled=False), by="b", reason=None)
        assert change.old == RuntimeSettings(schedule="@hourly")
        assert change.new == RuntimeSettings(schedule="@hourly", enabled=False)
        assert await settings.get("job") == RuntimeSettings(schedule="@hourly", enabled=False)

    async def test_set_replaces_a_field_set_before(self, settings: JobSettingsStore) -> None:
        await settings.set("job", RuntimeSettings(calendar="BR"), by="a", reason=None)
        await settings.set("job", RuntimeSettings(calendar="NYSE"), by="a", reason=None)
        assert (await settings.get("job")).calendar == "NYSE"

    async def test_set_with_nothing_to_set_is_refused_and_not_audited(
        self, settings: JobSettingsStore
    ) -> None:
        with pytest.raises(ValueError, match="nothing to set"):
            await settings.set("job", NOT_SET, by="a", reason=None)
        assert await settings.audit("job") == []
        assert await settings.all() == {}

    async def test_reset_forgets_every_field(self, settings: JobSettingsStore) -> None:
        await settings.set("job", RuntimeSettings(enabled=False, timeout_s=5), by="a", reason=None)
        change = await settings.reset("job", by="b", reason="back to code")
        assert change is not None
        assert change.action is SettingsAction.RESET
        assert change.old == RuntimeSettings(enabled=False, timeout_s=5.0)
        assert change.new == NOT_SET
        assert await settings.get("job") == NOT_SET
        assert await settings.all() == {}

    async def test_reset_of_a_job_without_settings_changes_nothing(
        self, settings: JobSettingsStore
    ) -> None:
        assert await settings.reset("job", by="a", reason=None) is None
        assert await settings.audit("job") == []

    async def test_audit_lists_changes_newest_first_with_who_and_why(
        self, settings: JobSettingsStore
    ) -> None:
        await settings.set("job", RuntimeSettings(schedule="@daily"), by="ann@h1", reason="one")
        await settings.set("other", RuntimeSettings(enabled=False), by="bob@h2", reason=None)
        await settings.set("job", RuntimeSettings(timeout_s=9.5), by="bob@h2", reason="two")
        await settings.reset("job", by="cid@h3", reason="three")
        entries = await settings.audit("job")
        assert [(e.by, e.reason, e.action) for e in entries] == [
            ("cid@h3", "three", SettingsAction.RESET),
            ("bob@h2", "two", SettingsAction.SET),
            ("ann@h1", "one", SettingsAction.SET),
        ]
        assert entries[1].old == RuntimeSettings(schedule="@daily")
        assert entries[1].new == RuntimeSettings(schedule="@daily", timeout_s=9.5)
        assert entries[0].at >= entries[1].at >= entries[2].at
        assert entries[0].at.tzinfo is not None
        assert [e.job for e in await settings.audit("other")] == ["other"]

    async def test_audit_is_limited(self, settings: JobSettingsStore) -> None:
        for n in range(5):
            await settings.set("job", RuntimeSettings(timeout_s=n + 1), by="a", reason=str(n))
        entries = await settings.audit("job", limit=2)
        assert [e.reason for e in entries] == ["4", "3"]

    async def test_settings_of_jobs_are_kept_apart(self, settings: JobSettingsStore) -> None:
        await settings.set("a", RuntimeSettings(enabled=True), by="x", reason=None)
        await settings.set("b", RuntimeSettings(enabled=False), by="x", reason=None)
        assert await settings.all() == {
            "a": RuntimeSettings(enabled=True),
            "b": RuntimeSettings(enabled=False),
        }

    async def test_a_check_that_raises_stores_nothing(self, settings: JobSettingsStore) -> None:
        await settings.set("job", RuntimeSettings(schedule="@daily"), by="a", reason=None)
        seen: list[RuntimeSettings] = []

        def refuse(merged: RuntimeSettings) -> None:
            seen.append(merged)
            raise LookupError("refused")

        with pytest.raises(LookupError, match="refused"):
            await settings.set(
                "job", RuntimeSettings(enabled=False), by="b", reason=None, check=refuse
            )
        with pytest.raises(LookupError):
            await settings.set(
                "new", RuntimeSettings(enabled=False), by="b", reason=None, check=refuse
            )
        assert seen == [
            RuntimeSettings(schedule="@daily", enabled=False),
            RuntimeSettings(enabled=False),
        ]
        assert await settings.all() == {"job": RuntimeSettings(schedule="@daily")}
        assert [e.by for e in await settings.audit("job")] == ["a"]
        assert await settings.audit("new") == []

    async def test_alert_after_is_stored_merged_and_audited(
        self, settings: JobSettingsStore
    ) -> None:
        await settings.set("job", RuntimeSettings(schedule="@hourly"), by="a", reason=None)
        change = await settings.set(
            "job", RuntimeSettings(alert_after_s=3600), by="b", reason="tune"
        )
        assert change.new == RuntimeSettings(schedule="@hourly", alert_after_s=3600.0)
        assert await settings.get("job") == RuntimeSettings(
            schedule="@hourly", alert_after_s=3600.0
        )
        change = await settings.set("job", RuntimeSettings(timeout_s=5), by="c", reason=None)
        assert change.new.alert_after_s == 3600.0  # kept by a change of another field
        [latest, tuned, _] = await settings.audit("job")
        assert (tuned.old.alert_after_s, tuned.new.alert_after_s) == (None, 3600.0)
        assert latest.new.alert_after_s == 3600.0

    async def test_alert_after_0_is_a_value_not_unset(self, settings: JobSettingsStore) -> None:
        await settings.set("job", RuntimeSettings(alert_after_s=600), by="a", reason=None)
        change = await settings.set("job", RuntimeSettings(alert_after_s=0), by="b", reason="off")
        assert change.old == RuntimeSettings(alert_after_s=600.0)
        assert change.new == RuntimeSettings(alert_after_s=0.0)
        assert await settings.get("job") == RuntimeSettings(alert_after_s=0.0)
        assert await settings.all() == {"job": RuntimeSettings(alert_after_s=0.0)}
        assert not (await settings.get("job")).empty
        [entry, _] = await settings.audit("job")
        assert entry.new.alert_after_s == 0.0

    async def test_reset_forgets_alert_after(self, settings: JobSettingsStore) -> None:
        await settings.set("job", RuntimeSettings(alert_after_s=0), by="a", reason=None)
        change = await settings.reset("job", by="b", reason=None)
        assert change is not None
        assert change.old == RuntimeSettings(alert_after_s=0.0)
        assert await settings.get("job") == NOT_SET
        assert await settings.all() == {}
