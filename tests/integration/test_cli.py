"""The command line as a user runs it: what each command imports, and shell completion driven
in real bash and zsh (zsh from Debian's packages, scripts/ensure-test-tools.sh).

How fast the commands start is measured in the benchmarks (`python -m benchmarks.cli`), not
here: a timing on a shared machine is no test. What makes them fast is asserted instead: the
modules a command leaves in `sys.modules`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FINANCIAL = str(Path(sys.executable).with_name("financial"))
# The clients a quick command must not import (each costs tens of milliseconds).
CLIENTS = {"aiohttp", "asyncpg", "aio_pika", "opentelemetry.sdk"}
# What `schedule`, `--help` and `completion` leave out besides: the settings' pydantic, the
# logging stack, the event loop.
HEAVY = CLIENTS | {"pydantic", "pydantic_settings", "structlog", "asyncio", "uvloop"}

PROBE = """
import json, sys
from financial.cmd.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
with open(sys.argv[0] + ".json", "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A user's environment with nothing of the worker configured (no database, no broker)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), **extra}


def imported_by(tmp_path: Path, *args: str) -> tuple[int, set[str]]:
    """Run `financial ARGS` in a fresh interpreter: its exit code and the modules it imported."""
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    subprocess.run(
        [sys.executable, str(probe), *args],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        timeout=60,
        check=False,
    )
    result = json.loads((tmp_path / "probe.py.json").read_text())
    return result["code"], set(result["modules"])


def loaded(modules: set[str], packages: set[str]) -> set[str]:
    """Which of `packages` (or a module inside one) is among `modules`."""
    return {p for p in packages if any(m == p or m.startswith(p + ".") for m in modules)}


@pytest.mark.parametrize(
    "args",
    [
        ("schedule", "0 8 * * 1"),
        ("schedule", "CRON_TZ=Europe/Berlin 30 2 * * *", "--json"),
        ("--help",),
        ("jobs", "--help"),
        ("completion", "bash"),
    ],
)
def test_quick_commands_import_neither_clients_nor_settings_nor_an_event_loop(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    code, modules = imported_by(tmp_path, *args)

    assert code == 0
    assert "financial.cmd.cli" in modules  # the probe ran the command line
    assert loaded(modules, HEAVY) == set()


def test_jobs_names_builds_the_registry_without_a_client_or_the_run_machinery(
    tmp_path: Path,
) -> None:
    code, modules = imported_by(tmp_path, "jobs", "names")

    assert code == 0
    assert "financial.pkg.scheduler.registry" in modules
    assert loaded(modules, {"aiohttp", "aio_pika", "opentelemetry.sdk", "uvloop"}) == set()
    assert loaded(modules, {"financial.pkg.scheduler.execution", "financial.cmd.worker"}) == set()


def test_jobs_list_runs_without_the_health_server(tmp_path: Path) -> None:
    code, modules = imported_by(tmp_path, "jobs", "list")

    assert code == 0
    assert "financial.cmd.history" in modules
    assert loaded(modules, {"aiohttp", "financial.pkg.health", "financial.cmd.worker"}) == set()


def test_jobs_names_prints_the_registered_jobs_one_a_line(tmp_path: Path) -> None:
    plain = subprocess.run(
        [FINANCIAL, "jobs", "names"], cwd=tmp_path, env=_env(tmp_path), capture_output=True,
        text=True, timeout=60, check=True,
    )  # fmt: skip
    with_broker = subprocess.run(
        [FINANCIAL, "jobs", "names"],
        cwd=tmp_path,
        env=_env(tmp_path, RABBITMQ_URL="amqp://guest:guest@127.0.0.1:1/"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert plain.stdout.splitlines() == ["database_cleanup", "report_generator"]
    # The relay is registered only with a broker configured: the names follow the settings.
    assert with_broker.stdout.splitlines() == [
        "database_cleanup",
        "outbox_relay",
        "report_generator",
    ]
    assert "guest" not in with_broker.stderr


def _script(shell: str, tmp_path: Path) -> str:
    return subprocess.run(
        [FINANCIAL, "completion", shell], cwd=tmp_path, env=_env(tmp_path), capture_output=True,
        text=True, timeout=60, check=True,
    ).stdout  # fmt: skip


def bash_complete(tmp_path: Path, *words: str, **env: str) -> list[str]:
    """What bash offers for the last of `words` (the command line typed so far), through the
    script's own completion function, as bash calls it on TAB."""
    program = "\n".join(
        [
            _script("bash", tmp_path),
            f"COMP_WORDS=({shlex.join([FINANCIAL, *words])})",
            f"COMP_CWORD={len(words)}",
            "_financial",
            'printf "%s\\n" "${COMPREPLY[@]}"',
        ]
    )
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program], cwd=tmp_path, capture_output=True,
        text=True, env=_env(tmp_path, **env), timeout=60, check=True,
    )  # fmt: skip
    return [line for line in done.stdout.splitlines() if line]


def zsh_complete(tmp_path: Path, *words: str, **env: str) -> list[str]:
    """What zsh offers for the last of `words`: the script loaded after compinit as a user's
    .zshrc does, and `_financial` called with zsh's `words` and `CURRENT` set. `compadd` only
    works inside a completion widget, so a function standing in for it prints its words."""
    program = "\n".join(
        [
            "autoload -Uz compinit && compinit -u -D",
            f"eval {shlex.quote(_script('zsh', tmp_path))}",
            'compadd() { [ "$1" = "--" ] && shift; print -rl -- "$@"; }',
            f"words=({shlex.join([FINANCIAL, *words])})",
            f"CURRENT={len(words) + 1}",
            "_financial",
        ]
    )
    done = subprocess.run(
        ["zsh", "-f", "-c", program], cwd=tmp_path, capture_output=True, text=True,
        env=_env(tmp_path, **env), timeout=60, check=True,
    )  # fmt: skip
    assert done.stderr == ""
    offered = [line for line in done.stdout.splitlines() if line]
    # zsh filters by the prefix itself (compadd gets every candidate): do it here as it would.
    return [word for word in offered if word.startswith(words[-1])]


CASES = [
    (("",), ["worker", "jobs", "migrate", "schedule", "completion"]),
    (("jo",), ["jobs"]),
    (
        ("jobs", ""),
        [
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
        ],
    ),
    (("jobs", "run", ""), ["database_cleanup", "report_generator"]),
    (("jobs", "pause", "rep"), ["report_generator"]),
    (("jobs", "history", "--status", "f"), ["failed"]),
    (("jobs", "history", "--"), ["--help", "--status", "--limit", "--json"]),
    (("jobs", "history", "--limit", ""), []),
    (("jobs", "history", "--json", "database_cleanup", "--li"), ["--limit"]),
    (("jobs", "set", "rep"), ["report_generator"]),
    (("jobs", "set", "report_generator", "--enabled", ""), ["true", "false"]),
    (("schedule", "0 8 * * 1", "--c"), ["--calendar", "--count"]),
    (("completion", ""), ["bash", "zsh"]),
    (("migrate", ""), []),
]


@pytest.mark.parametrize(("words", "expected"), CASES)
def test_bash_completes_commands_options_values_and_job_names(
    tmp_path: Path, words: tuple[str, ...], expected: list[str]
) -> None:
    assert bash_complete(tmp_path, *words) == expected


@pytest.mark.parametrize(("words", "expected"), CASES)
def test_zsh_completes_commands_options_values_and_job_names(
    tmp_path: Path, words: tuple[str, ...], expected: list[str]
) -> None:
    if shutil.which("zsh") is None:
        pytest.fail("zsh is not installed: run scripts/ensure-test-tools.sh")
    assert zsh_complete(tmp_path, *words) == expected


def test_job_names_follow_the_settings_of_the_shell_that_completes(tmp_path: Path) -> None:
    env = {"RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:1/"}
    expected = ["outbox_relay"]
    assert bash_complete(tmp_path, "jobs", "run", "out", **env) == expected
    assert zsh_complete(tmp_path, "jobs", "run", "out", **env) == expected


def test_the_bash_script_registers_itself_for_financial(tmp_path: Path) -> None:
    program = _script("bash", tmp_path) + "\ncomplete -p financial\n"
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "complete -F _financial financial"
