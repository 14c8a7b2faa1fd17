"""One scenario in this process: `python -m benchmarks.child SCENARIO PARAMS_JSON RESULT_PATH`.

The runner starts a fresh interpreter per scenario so that peak RSS and CPU belong to that
scenario alone. The result goes to RESULT_PATH as JSON, since stdout may carry log lines.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.common import Result

# A scenario with a duration that is still going this long after it should have ended has
# fallen behind for good: the watchdog writes what it measured and ends it.
OVERRUN_S = 40

Scenario = Callable[..., Coroutine[Any, Any, Result]]


def _scenario(name: str) -> Scenario:
    # Imported on demand: the peer's scenarios need APScheduler, the database one asyncpg.
    if name.startswith("ours."):
        from benchmarks import ours as module
    elif name.startswith("peer."):
        from benchmarks import peer as module  # type: ignore[no-redef]
    elif name.startswith("bare."):
        from benchmarks import bare as module  # type: ignore[no-redef]
    elif name.startswith("database."):
        from benchmarks import database as module  # type: ignore[no-redef]
    elif name.startswith("firetime."):
        from benchmarks import firetime as module  # type: ignore[no-redef]
    elif name.startswith("cli."):
        from benchmarks import cli as module  # type: ignore[no-redef]
    elif name.startswith("status_page."):
        from benchmarks import status_page as module  # type: ignore[no-redef]
    elif name.startswith("metrics_scrape."):
        from benchmarks import metrics_scrape as module  # type: ignore[no-redef]
    else:
        raise SystemExit(f"unknown scenario {name!r}")
    fn: Scenario = getattr(module, name.split(".", 1)[1])
    return fn


def _loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """`asyncio`: None, the loop `asyncio.run` makes; `uvloop`: uvloop's, as the worker makes
    it with WORKER_EVENT_LOOP=auto (cmd/event_loop.py)."""
    if loop == "asyncio":
        return None
    if loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    raise SystemExit(f"unknown event loop {loop!r}")


def main(argv: list[str]) -> int:
    """Run the scenario named in `argv` and write its result. PARAMS_JSON may hold `loop`
    (`asyncio`, the default, or `uvloop`): the event loop the scenario runs on."""
    name, params_json, result_path = argv
    params: dict[str, Any] = json.loads(params_json)
    loop = params.pop("loop", "asyncio")
    if name.endswith(".idle") and loop == "asyncio":
        # Counted in asyncio's selector; uvloop waits in libuv, where this cannot count.
        common.Wakeups.install()
    if name.endswith(".lateness"):
        common.WATCHDOG = common.Watchdog(params["duration_s"] + OVERRUN_S, Path(result_path))
    with asyncio.Runner(loop_factory=_loop_factory(loop)) as runner:
        result = runner.run(_scenario(name)(**params))
    if common.WATCHDOG is not None:
        common.WATCHDOG.cancel()
    Path(result_path).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
