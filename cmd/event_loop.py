"""The event loop every command runs on: uvloop or asyncio's own (`WORKER_EVENT_LOOP`).

uvloop (libuv under asyncio's API) took 5-15% off the worker's CPU per run and about a fifth off
its p99 start lateness at 1,000 jobs a second (benchmarks/README.md), and asyncpg is built for
it; `auto` takes it wherever it is installed (it is a dependency on every platform it builds
for). Loops are made by a factory handed to `asyncio.Runner`, never through a global event loop
policy: policies are deprecated from Python 3.14, and a policy would also reach the loops that
libraries and tests make for themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from financial.cmd.errors import ConfigError

if TYPE_CHECKING:
    # asyncio itself is imported when a loop is made: it costs about 40 ms, and the command
    # line imports this module for commands that run no loop (`schedule`, `--help`).
    import asyncio

    LoopFactory = Callable[[], asyncio.AbstractEventLoop]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class EventLoopChoice:
    """The loop `WORKER_EVENT_LOOP` resolved to: its name, its version and how to make one
    (None: as `asyncio.run` makes it)."""

    name: str
    version: str
    factory: LoopFactory | None


def _asyncio_loop() -> EventLoopChoice:
    import platform

    # No factory: the Runner then makes and sets the loop exactly as `asyncio.run` does.
    return EventLoopChoice("asyncio", platform.python_version(), None)


def choose_event_loop(setting: str) -> EventLoopChoice:
    """`auto`: uvloop when it imports, else asyncio's; `uvloop`: uvloop or ConfigError (exit
    78); `asyncio`: asyncio's."""
    if setting == "asyncio":
        return _asyncio_loop()
    try:
        import uvloop
    except ImportError as exc:
        if setting == "auto":
            return _asyncio_loop()
        raise ConfigError(
            f"WORKER_EVENT_LOOP={setting!r}: expected auto or asyncio, since uvloop does not "
            f"import here ({exc}); install it (pip install uvloop) or choose another loop"
        ) from None
    # uvloop's stubs do not export __version__, which the module has.
    version = str(getattr(uvloop, "__version__", "unknown"))
    return EventLoopChoice("uvloop", version, uvloop.new_event_loop)


def run(setting: str, main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on a new loop of the chosen kind, as `asyncio.run` does."""
    import asyncio

    try:
        choice = choose_event_loop(setting)
    except ConfigError:
        main.close()  # never started: no "coroutine was never awaited" warning
        raise
    with asyncio.Runner(loop_factory=choice.factory) as runner:
        return runner.run(main)


def running_loop_name() -> str:
    """`uvloop` or `asyncio`: the kind of loop running this coroutine (for the start-up log)."""
    import asyncio

    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.split(".")[0] == "uvloop" else "asyncio"
