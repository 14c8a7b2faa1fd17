"""`with_late`: the status page's extras with the late-job checker's verdict laid over them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from financial.cmd.alerts import with_late
from financial.pkg.health import JobExtras
from tests.unit.late_checking import Cluster, spec_of, tick


async def test_late_jobs_are_marked_and_the_other_extras_kept() -> None:
    cluster = Cluster.new()
    checker = cluster.checker(spec_of(alert_after=90))
    await checker.check()
    await cluster.at(tick(3))
    await checker.check()
    asked: list[tuple[tuple[str, ...], bool]] = []

    async def runtime(names: Sequence[str], *, with_audit: bool) -> Mapping[str, JobExtras]:
        asked.append((tuple(names), with_audit))
        return {"minutely": JobExtras(schedule="@every 2m"), "other": JobExtras(disabled=True)}

    extras = await with_late(checker, runtime)(["minutely", "other"], with_audit=True)

    assert asked == [(("minutely", "other"), True)]
    assert extras["minutely"] == JobExtras(
        schedule="@every 2m", late=True, late_since=checker.late_jobs()["minutely"]
    )
    assert extras["other"] == JobExtras(disabled=True)


async def test_without_another_source_only_late_jobs_have_extras() -> None:
    cluster = Cluster.new()
    checker = cluster.checker(spec_of(alert_after=90))
    await checker.check()
    source = with_late(checker)
    assert await source(["minutely"], with_audit=False) == {}

    await cluster.at(tick(3))
    await checker.check()
    extras = await source(["minutely", "unknown"], with_audit=False)
    assert list(extras) == ["minutely"] and extras["minutely"].late
