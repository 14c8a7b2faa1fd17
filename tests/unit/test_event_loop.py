"""The event loop: WORKER_EVENT_LOOP, the loop each command runs on, and the unit suite on both."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import sys
from collections.abc import Iterator
from importlib.metadata import version

import pytest
import structlog
import uvloop

from financial.cmd import cli, event_loop
from financial.cmd.errors import EX_CONFIG, ConfigError
from financial.configs import SettingsError, load_settings
from tests.unit.conftest import LOOP_FACTORIES, LOOPS_VARIABLE

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """A command configures logging onto the captured stdout, which closes after the test:
    leave structlog and the root logger as they were, for the tests after this one."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def no_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """`import uvloop` fails, as where it does not install."""
    monkeypatch.setitem(sys.modules, "uvloop", None)


async def _which_loop() -> str:
    return event_loop.running_loop_name()


def test_auto_takes_uvloop_where_it_imports() -> None:
    choice = event_loop.choose_event_loop("auto")

    assert (choice.name, choice.version) == ("uvloop", version("uvloop"))
    assert event_loop.run("auto", _which_loop()) == "uvloop"


def test_asyncio_and_uvloop_are_taken_when_asked_for() -> None:
    assert event_loop.run("asyncio", _which_loop()) == "asyncio"
    assert event_loop.run("uvloop", _which_loop()) == "uvloop"


@pytest.mark.usefixtures("no_uvloop")
def test_auto_falls_back_to_asyncio_where_uvloop_does_not_import() -> None:
    assert event_loop.choose_event_loop("auto").name == "asyncio"
    assert event_loop.run("auto", _which_loop()) == "asyncio"


@pytest.mark.usefixtures("no_uvloop")
def test_asking_for_uvloop_where_it_does_not_import_is_a_configuration_error() -> None:
    main = _which_loop()

    with pytest.raises(ConfigError, match=r"^WORKER_EVENT_LOOP='uvloop': expected auto or asyncio"):
        event_loop.run("uvloop", main)
    # Closed, so no "coroutine was never awaited" warning.
    assert inspect.getcoroutinestate(main) == inspect.CORO_CLOSED


@pytest.mark.usefixtures("no_uvloop", "restore_logging")
def test_a_command_asking_for_a_missing_uvloop_exits_78_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKER_EVENT_LOOP", "uvloop")

    with pytest.raises(SystemExit) as exited:
        cli.main(["migrate"])

    assert exited.value.code == EX_CONFIG
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("financial: configuration error: WORKER_EVENT_LOOP='uvloop': ")


def test_the_setting_is_normalized_and_checked() -> None:
    assert load_settings(env_file=None, secrets_dirs=[]).worker_event_loop == "auto"
    loaded = load_settings(env_file=None, secrets_dirs=[], worker_event_loop=" UVLoop ")
    assert loaded.worker_event_loop == "uvloop"
    with pytest.raises(SettingsError) as bad:
        load_settings(env_file=None, secrets_dirs=[], worker_event_loop="trio")
    assert str(bad.value) == "WORKER_EVENT_LOOP='trio': expected one of auto, uvloop, asyncio"


def test_the_unit_suite_runs_on_both_loops_by_default() -> None:
    if LOOPS_VARIABLE in os.environ:
        pytest.skip(f"{LOOPS_VARIABLE} chose the loops")
    assert {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop} == LOOP_FACTORIES


async def test_each_async_test_runs_on_the_loop_its_id_names(
    request: pytest.FixtureRequest,
) -> None:
    # The id pytest-asyncio gives each loop factory: test_...[asyncio], test_...[uvloop].
    expected = request.node.callspec.id
    assert expected in LOOP_FACTORIES
    assert event_loop.running_loop_name() == expected
