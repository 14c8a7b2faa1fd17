"""`financial schedule`: fire times on a holiday calendar, with why dates were skipped or moved."""

from __future__ import annotations

import json

import pytest

from financial.cmd.cli import main


def run(args: list[str], capsys: pytest.CaptureFixture[str], code: int = 0) -> tuple[str, str]:
    with pytest.raises(SystemExit) as exited:
        main(["schedule", *args])
    out, err = capsys.readouterr()
    assert exited.value.code == code, err
    return out, err


@pytest.fixture(autouse=True)
def _no_worker_calendar(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORKER_CALENDAR", "WORKER_CLOSED_DATES", "WORKER_CLOSED_DATES_FILE"):
        monkeypatch.delenv(name, raising=False)
    # main() sets up logging for the process; pointed at pytest's captured stream, it would
    # outlive the test and break the logging of every test after it.
    monkeypatch.setattr(
        "financial.pkg.observability.logging.configure_logging", lambda *a, **k: None
    )


def test_a_moved_date_says_from_where_and_why(capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run(
        [
            "0 7 1 * *",
            "--tz",
            "America/Sao_Paulo",
            "--calendar",
            "BR",
            "--on-holiday",
            "previous",
            "--after",
            "2026-11-15T00:00:00Z",
            "--count",
            "3",
        ],
        capsys,
    )
    assert out.splitlines() == [
        "  Expression: 0 7 1 * *",
        "        Zone: America/Sao_Paulo",
        "    Calendar: BR (on holiday: previous)",
        " Next elapse: Tue 2026-12-01 07:00:00 -0300 (-03)  2026-12-01T10:00:00Z",
        "Iteration #2: Thu 2026-12-31 07:00:00 -0300 (-03)  2026-12-31T10:00:00Z"
        "  moved here from Fri 2027-01-01 (Universal Fraternization Day)",
        "Iteration #3: Mon 2027-02-01 07:00:00 -0300 (-03)  2027-02-01T10:00:00Z",
    ]


def test_skipped_dates_are_listed_where_they_fell(capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run(
        [
            "0 9 * * *",
            "--tz",
            "America/Sao_Paulo",
            "--calendar",
            "BR-SP",
            "--after",
            "2026-12-24T13:00:00Z",
            "--count",
            "2",
        ],
        capsys,
    )
    assert out.splitlines()[3:] == [
        "     Skipped: Fri 2026-12-25 (Christmas Day)",
        "     Skipped: Sat 2026-12-26 (Saturday)",
        "     Skipped: Sun 2026-12-27 (Sunday)",
        " Next elapse: Mon 2026-12-28 09:00:00 -0300 (-03)  2026-12-28T12:00:00Z",
        "Iteration #2: Tue 2026-12-29 09:00:00 -0300 (-03)  2026-12-29T12:00:00Z",
    ]


def test_json_names_the_calendar_and_each_skipped_and_moved_date(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, _ = run(
        [
            "0 18 L * *",
            "--tz",
            "America/Sao_Paulo",
            "--calendar",
            "BR",
            "--on-holiday",
            "next",
            "--after",
            "2026-05-20T00:00:00Z",
            "--count",
            "2",
            "--json",
        ],
        capsys,
    )
    shown = json.loads(out)
    assert (shown["calendar"], shown["on_holiday"]) == ("BR", "next")
    assert shown["next"][0] == {
        "local": "2026-06-01T18:00:00-03:00",
        "utc": "2026-06-01T21:00:00Z",
        "moved_from": [{"date": "2026-05-31", "reason": "Sunday"}],
    }
    assert shown["next"][1]["moved_from"] == []
    assert shown["skipped"] == []


def test_the_worker_default_calendar_and_closed_dates_apply(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKER_CALENDAR", "NYSE")
    monkeypatch.setenv("WORKER_CLOSED_DATES", "2027-05-28")
    out, _ = run(
        ["0 18 LB * *", "--tz", "America/New_York", "--after", "2027-05-01", "--count", "1"],
        capsys,
    )
    # Memorial Day (31st) and the company's closed 28th: the 27th is the last business day.
    assert "    Calendar: NYSE (on holiday: skip)" in out
    assert " Next elapse: Thu 2027-05-27 18:00:00 -0400 (EDT)  2027-05-27T22:00:00Z" in out
    out, _ = run(["0 18 LB * *", "--calendar", "none", "--after", "2027-05-01Z"], capsys)
    assert "Calendar:" not in out
    assert "2027-05-31T18:00:00Z" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["0 9 5B * *", "--calendar", "XX"],
            2,
            "financial: --calendar='XX': unknown calendar 'XX': expected a country (BR)",
        ),
        (
            ["@every 5s", "--calendar", "BR"],
            2,
            "financial: --calendar='BR': calendar 'BR': a holiday calendar applies to cron",
        ),
        (
            ["0 9 * * *", "--calendar", "BR", "--after", "2100-12-31T23:00:00Z"],
            2,
            "financial: --calendar='BR': calendar 'BR' has no holiday data for 2101",
        ),
        (["0 9 * * *", "--on-holiday", "next"], 2, "on_holiday='next' needs a holiday calendar"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    args: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, err = run(args, capsys, code)
    assert len(err.strip().splitlines()) == 1
    assert message in err


def test_a_bad_default_calendar_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKER_CALENDAR", "Atlantis")
    _, err = run(["0 9 * * *"], capsys, 78)
    assert err.startswith("financial: WORKER_CALENDAR='Atlantis': unknown calendar 'ATLANTIS'")
    # An @every schedule takes no default calendar, so it is not in the way.
    run(["@every 5s", "--count", "1"], capsys)
