"""The quick commands in this process: `schedule` reading WORKER_TIMEZONE without the other
settings, `completion`'s view of the parser, and the names the parser keeps in step with."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from financial.cmd import cli
from financial.cmd.completion import JOB, command_specs, script
from financial.configs import SettingsError, load_settings
from financial.configs.quick import raw_setting, worker_timezone
from financial.pkg.jobs.model import RunStatus

pytestmark = pytest.mark.usefixtures("clean_env")


def test_the_timezone_comes_from_the_environment_then_dotenv_then_secret_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "worker_timezone").write_text("Asia/Tokyo\n")
    assert worker_timezone(secrets_dirs=[]) == "UTC"
    assert worker_timezone(secrets_dirs=[secrets]) == "Asia/Tokyo"
    Path(".env").write_text("# comment\nexport WORKER_TIMEZONE='Europe/Berlin'\n")
    assert worker_timezone(secrets_dirs=[secrets]) == "Europe/Berlin"
    monkeypatch.setenv("worker_timezone", " America/Sao_Paulo ")  # any case, as Settings
    assert worker_timezone(secrets_dirs=[secrets]) == "America/Sao_Paulo"
    monkeypatch.setenv("worker_timezone", "")  # empty means the default, as in Settings
    assert worker_timezone(secrets_dirs=[secrets]) == "UTC"


def test_the_quick_read_agrees_with_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    newer, older = tmp_path / "newer", tmp_path / "older"
    for folder, zone in ((older, "Asia/Tokyo"), (newer, "Europe/Paris")):
        folder.mkdir()
        (folder / "WORKER_TIMEZONE").write_text(zone)
    dirs = [older, newer]
    assert worker_timezone(secrets_dirs=dirs) == load_settings(secrets_dirs=dirs).worker_timezone
    assert raw_setting("WORKER_TIMEZONE", secrets_dirs=dirs) == "Europe/Paris"

    monkeypatch.setenv("WORKER_TIMEZONE", "Mars/Olympus_Mons")
    with pytest.raises(SettingsError) as full:
        load_settings(secrets_dirs=[])
    with pytest.raises(ValueError, match=r"^WORKER_TIMEZONE=") as quick:
        worker_timezone(secrets_dirs=[])
    assert str(quick.value) == str(full.value)


def test_schedule_prints_the_next_fire_times_in_the_configured_zone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKER_TIMEZONE", "Europe/Berlin")
    # Another setting that is wrong does not stop it: it reads WORKER_TIMEZONE alone.
    monkeypatch.setenv("WORKER_MAX_CONCURRENT_JOBS", "ten")

    with pytest.raises(SystemExit) as exited:
        cli.main(["schedule", "30 2 * * *", "--after", "2026-10-24T12:00", "--count", "2"])

    assert exited.value.code == 0
    assert capsys.readouterr().out.splitlines() == [
        "  Expression: 30 2 * * *",
        "        Zone: Europe/Berlin",
        " Next elapse: Sun 2026-10-25 02:30:00 +0200 (CEST)  2026-10-25T00:30:00Z",
        "Iteration #2: Mon 2026-10-26 02:30:00 +0100 (CET)  2026-10-26T01:30:00Z",
    ]


def test_schedule_with_a_malformed_zone_setting_exits_78_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKER_TIMEZONE", "Mars/Olympus_Mons")

    with pytest.raises(SystemExit) as exited:
        cli.main(["schedule", "0 8 * * 1"])

    assert exited.value.code == 78
    assert capsys.readouterr().err == (
        "financial: configuration error: WORKER_TIMEZONE='Mars/Olympus_Mons': expected an IANA "
        "time zone such as UTC or Europe/Paris\n"
    )


def test_the_history_statuses_of_the_parser_are_the_run_statuses() -> None:
    assert list(cli.RUN_STATUSES) == [status.value for status in RunStatus]


def test_completion_sees_every_command_and_option_of_the_parser() -> None:
    specs = {" ".join(spec.path): spec for spec in command_specs(cli._parser())}

    assert specs[""].subcommands == ["worker", "jobs", "migrate", "schedule", "completion"]
    assert specs["jobs"].subcommands == [
        "list",
        "names",
        "run",
        "pause",
        "resume",
        "trigger",
        "backfill",
        "requests",
        "cancel",
        "history",
        "set",
        "reset",
        "audit",
    ]
    assert specs["jobs run"].positionals == ["job"]
    assert specs["jobs history"].values["--status"] == list(cli.RUN_STATUSES)
    assert specs["jobs history"].values["--limit"] == []
    assert "--json" in specs["jobs history"].options
    assert "--json" not in specs["jobs history"].values  # a flag takes no value
    assert specs["completion"].positionals == ["bash zsh"]
    assert specs["jobs set"].positionals == ["job"]
    assert specs["jobs set"].values["--enabled"] == ["true", "false"]
    assert {"--schedule", "--timeout", "--calendar", "--alert-after", "--reason", "--by"} <= set(
        specs["jobs set"].values
    )
    assert specs["jobs reset"].positionals == ["job"]
    assert {"--reason", "--by"} <= set(specs["jobs reset"].values)
    assert specs["jobs audit"].positionals == ["job"]


def test_an_option_added_to_the_parser_is_completed_without_a_change_elsewhere() -> None:
    parser = argparse.ArgumentParser(prog="financial")
    sub = parser.add_subparsers()
    schedule = sub.add_parser("schedule")
    schedule.add_argument("--on-holiday", choices=["skip", "next", "previous"])
    sub.add_parser("jobs").add_argument("name", metavar=JOB)

    bash = script("bash", parser)

    assert '"schedule") cmd_subcommands=""; cmd_options="-h --help --on-holiday"' in bash
    assert 'cmd_valued="--on-holiday=skip,next,previous"' in bash
    jobs = '"jobs") cmd_subcommands=""; cmd_options="-h --help"; cmd_valued=""; cmd_positionals'
    assert jobs + '="job";;' in bash


def test_a_word_that_would_need_quoting_is_refused() -> None:
    parser = argparse.ArgumentParser(prog="financial")
    parser.add_argument("--mode", choices=["a b"])

    with pytest.raises(ValueError, match="not a plain word"):
        script("zsh", parser)
