"""`jobs requests` and `jobs cancel`: what they accept and print, on the in-memory store."""

from __future__ import annotations

import pytest

from financial.cmd import cli
from financial.cmd.request_queue import (
    BadInput,
    cancel_report,
    check_ids_are_the_job_s,
    parse_request_ids,
    request_dict,
    requests_table,
    short_args,
)
from financial.pkg.jobs.model import RunStatus, Trigger
from financial.pkg.scheduler.clock import FakeClock
from financial.pkg.scheduler.store.memory import MemoryRunStore
from financial.pkg.scheduler.store.requests import RequestStore
from financial.pkg.scheduler.store.requests_memory import MemoryRequestStore
from tests.contract.run_request_contract import day
from tests.unit.scheduling import T0

ID = "3f2b8c1e-6d4a-4b7e-9c2d-1a5e8f0b7c63"


@pytest.fixture
def store() -> RequestStore:
    clock = FakeClock(T0)
    return MemoryRequestStore(MemoryRunStore(clock, shared=True), clock)


def test_cancel_needs_request_ids_or_all_and_takes_uuids_only() -> None:
    with pytest.raises(BadInput, match=r"expected --request ID .* or --all"):
        parse_request_ids(None, all_pending=False)
    assert parse_request_ids(None, all_pending=True) is None
    assert parse_request_ids([ID, f" {ID.upper()} ", ID], all_pending=False) == [ID]
    with pytest.raises(BadInput, match=r"--request 'abc': expected a request id \(a UUID"):
        parse_request_ids([ID, "abc"], all_pending=False)


def test_the_parser_takes_either_request_or_all_and_the_two_triggers() -> None:
    parser = cli._parser()
    args = parser.parse_args(["jobs", "cancel", "daily", "--request", ID, "--request", ID])
    assert (args.request_ids, args.all, args.trigger) == ([ID, ID], False, None)
    args = parser.parse_args(["jobs", "cancel", "daily", "--all", "--trigger", "backfill"])
    assert (args.request_ids, args.all, args.trigger) == (None, True, "backfill")
    for wrong in (["--request", ID, "--all"], ["--all", "--trigger", "schedule"]):
        with pytest.raises(SystemExit) as exited:
            parser.parse_args(["jobs", "cancel", "daily", *wrong])
        assert exited.value.code == 2
    listing = parser.parse_args(["jobs", "requests", "daily", "--json", "--limit", "5"])
    assert (listing.name, listing.json, listing.limit) == ("daily", True, 5)


async def test_ids_of_no_request_or_another_job_s_are_named(store: RequestStore) -> None:
    [mine] = await store.add("daily", [None], trigger=Trigger.MANUAL, requested_by="a")
    [theirs] = await store.add("other", [None], trigger=Trigger.MANUAL, requested_by="a")
    ids = [mine.request_id, theirs.request_id, ID]
    found = [await store.get(i) for i in ids]
    assert check_ids_are_the_job_s("daily", ids, found) == [
        f"--request {theirs.request_id}: a request of other, not of daily; expected one of "
        "daily's (`financial jobs requests daily`)",
        f"--request {ID}: no such request; expected one of daily's",
    ]


async def test_all_cancels_the_pending_and_names_the_claimed_one(store: RequestStore) -> None:
    await store.add("daily", [day(0), day(1), day(2)], trigger=Trigger.BACKFILL, requested_by="a")
    [claimed] = await store.claim(["daily"], worker_id="w1", limit=1)
    result = await store.cancel("daily", None, cancelled_by="ops")
    report = cancel_report("daily", None, None, result, timeout_s=20)
    assert report.code == 0
    assert report.lines[0] == "daily: 2 pending request(s) cancelled"
    assert report.lines[1].startswith(
        "daily: 1 request(s) claimed by a worker already, not cancelled: each run goes on"
    )
    assert "the job's timeout (20s)" in report.lines[1]
    assert claimed.request_id in report.lines[2] and "claimed by w1" in report.lines[2]
    again = cancel_report(
        "daily", None, None, await store.cancel("daily", None, cancelled_by="x"), 20
    )
    assert again.code == 1  # only the claimed one is left: nothing could be cancelled
    assert again.lines[0] == "daily: 0 pending request(s) cancelled"


async def test_nothing_to_cancel_is_not_a_failure(store: RequestStore) -> None:
    result = await store.cancel("daily", None, trigger=Trigger.MANUAL, cancelled_by="ops")
    report = cancel_report("daily", None, "manual", result, timeout_s=20)
    assert (report.lines, report.code) == (["daily: 0 pending manual request(s) cancelled"], 0)


async def test_ids_done_or_cancelled_already_are_named_and_exit_1(store: RequestStore) -> None:
    [done] = await store.add("daily", [day(0)], trigger=Trigger.MANUAL, requested_by="a")
    await store.claim(["daily"], worker_id="w", limit=1)
    await store.complete(done.request_id, worker_id="w", run_id=None, status=RunStatus.FAILED)
    [gone, manual] = [
        *await store.add("daily", [day(1)], trigger=Trigger.BACKFILL, requested_by="a"),
        *await store.add("daily", [day(2)], trigger=Trigger.MANUAL, requested_by="a"),
    ]
    await store.cancel("daily", [gone.request_id], cancelled_by="alice")
    ids = [done.request_id, gone.request_id, manual.request_id]
    result = await store.cancel("daily", ids, trigger=Trigger.BACKFILL, cancelled_by="bob")
    report = cancel_report("daily", ids, "backfill", result, timeout_s=20)
    assert report.code == 1
    assert report.lines == [
        "daily: 0 pending backfill request(s) cancelled",
        f"daily: request {done.request_id}: done already (failed, run -): nothing to cancel",
        f"daily: request {gone.request_id}: cancelled already by alice at 2026-01-05 00:00:00Z",
        f"daily: request {manual.request_id}: a manual request, not backfill: left pending",
    ]
    some = await store.cancel("daily", [manual.request_id, done.request_id], cancelled_by="bob")
    partly = cancel_report("daily", [manual.request_id, done.request_id], None, some, 20)
    assert partly.code == 0
    assert partly.lines[:2] == [
        "daily: 1 pending request(s) cancelled",
        f"  cancelled request {manual.request_id} (tick 2026-03-04 08:00:00Z)",
    ]


async def test_the_listing_shows_each_open_request_in_run_order(store: RequestStore) -> None:
    await store.add("daily", [day(1), day(0)], trigger=Trigger.BACKFILL, requested_by="ops@h")
    await store.add("daily", [day(5)], trigger=Trigger.MANUAL, requested_by="b", args={"n": 7})
    await store.claim(["daily"], worker_id="w1", limit=1)
    found = await store.open_requests("daily")
    headers, rows = requests_table(found)
    assert headers[:4] == ["REQUEST", "TICK", "TRIGGER", "STATE"]
    assert [(r[1], r[2], r[3], r[6]) for r in rows] == [
        ("2026-03-02 08:00:00Z", "backfill", "claimed", "w1"),
        ("2026-03-03 08:00:00Z", "backfill", "pending", "-"),
        ("2026-03-07 08:00:00Z", "manual", "pending", "-"),
    ]
    assert rows[2][7] == '{"n":7}'
    assert request_dict(found[2])["args"] == {"n": 7}
    assert request_dict(found[0])["claimed_by"] == "w1"


def test_long_args_are_cut() -> None:
    assert short_args({}) == "-"
    cut = short_args({"to": "x" * 100})
    assert len(cut) == 40 and cut.endswith("...")
