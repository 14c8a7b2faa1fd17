"""What `jobs trigger` and `jobs backfill` accept, before anything reaches the database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from financial.cmd import requests
from financial.cmd.requests import BadInput, backfill_ticks, parse_args_json, parse_instant
from financial.pkg.jobs import JobContext, cron_job
from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.registry import JobRegistry, JobSpec
from financial.pkg.scheduler.store.memory import MemoryRunStore
from financial.pkg.scheduler.store.requests import RequestState, RunRequest
from financial.pkg.scheduler.store.requests_memory import MemoryRequestStore
from tests.unit.scheduling import T0


async def _noop(ctx: JobContext) -> None:
    return None


def daily_spec() -> JobSpec:
    registry = JobRegistry()
    registry.add_all([cron_job("0 3 * * *", name="daily")(_noop)])
    return registry.get("daily")


def test_an_instant_needs_its_offset() -> None:
    assert parse_instant("--tick", "2026-03-01T02:00:00Z") == datetime(2026, 3, 1, 2, tzinfo=UTC)
    plus_two = parse_instant("--tick", "2026-03-01T04:00:00+02:00")
    assert plus_two == datetime(2026, 3, 1, 2, tzinfo=UTC)
    with pytest.raises(BadInput, match=r"--tick '2026-03-01T02:00:00': .*with its UTC offset"):
        parse_instant("--tick", "2026-03-01T02:00:00")
    with pytest.raises(BadInput, match=r"--from 'yesterday': expected an ISO 8601 instant"):
        parse_instant("--from", "yesterday")


def test_a_tick_in_the_future_is_refused() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert requests.parse_past_tick("2026-03-01T12:00:00Z", now) == now
    with pytest.raises(BadInput, match=r"--tick '2026-03-02T03:00:00Z': expected an instant not"):
        requests.parse_past_tick("2026-03-02T03:00:00Z", now)


def test_args_must_be_a_small_json_object() -> None:
    assert parse_args_json(None) == {}
    assert parse_args_json('{"day": "2026-03-01", "n": [1]}') == {"day": "2026-03-01", "n": [1]}
    with pytest.raises(BadInput, match=r"--args '\[1\]': expected a JSON object .*not a JSON list"):
        parse_args_json("[1]")
    with pytest.raises(BadInput, match=r"--args '\{nope': expected a JSON object"):
        parse_args_json("{nope")
    big = '{"x": "' + "a" * requests.ARGS_LIMIT_BYTES + '"}'
    with pytest.raises(BadInput, match="expected at most 16384"):
        parse_args_json(big)


def test_backfill_ticks_include_both_ends() -> None:
    spec = daily_spec()
    start = datetime(2026, 3, 1, 3, tzinfo=UTC)
    ticks = backfill_ticks(spec, start, start + timedelta(days=3))
    assert ticks == [start + timedelta(days=n) for n in range(4)]
    inside = backfill_ticks(spec, start + timedelta(hours=1), start + timedelta(hours=2))
    assert inside == []


def test_a_range_past_the_scan_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(requests, "BACKFILL_SCAN_LIMIT", 5)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(BadInput, match="more than 5 ticks of daily"):
        backfill_ticks(daily_spec(), start, start + timedelta(days=30))


def test_requested_by_is_by_else_user_at_host() -> None:
    assert requests.requested_by(" ops-bot ") == "ops-bot"
    assert "@" in requests.requested_by(None)


async def test_wait_ends_on_a_cancelled_request_with_who_and_exit_1() -> None:
    clock = FakeClock(T0)
    store = MemoryRequestStore(MemoryRunStore(clock, shared=True), clock)
    [request] = await store.add("daily", [None], trigger=Trigger.MANUAL, requested_by="ops")
    await store.cancel("daily", [request.request_id], cancelled_by="alice", reason="mistake")
    followed = await requests._follow(store, request.request_id, timeout_s=5)
    assert followed is not None
    assert requests.followed_outcome("daily", followed) == (
        f"daily: cancelled by alice (request {request.request_id})",
        1,
    )


def test_wait_outcome_of_a_run() -> None:
    done = RunRequest(
        request_id="r1",
        job="daily",
        tick=T0,
        trigger=Trigger.MANUAL,
        requested_at=T0,
        requested_by="ops",
        state=RequestState.DONE,
        run_id="run-1",
        status=RunStatus.SUCCEEDED,
    )
    assert requests.followed_outcome("daily", done) == ("daily: succeeded (run run-1)", 0)
    failed = replace(done, status=RunStatus.TIMED_OUT)
    assert requests.followed_outcome("daily", failed, ": TimeoutError: x") == (
        "daily: timed_out (run run-1): TimeoutError: x",
        1,
    )
