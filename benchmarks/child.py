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
    else:
        raise SystemExit(f"unknown scenario {name!r}")
    fn: Scenario = getattr(module, name.split(".", 1)[1])
    return fn


def main(argv: list[str]) -> int:
    """Run the scenario named in `argv` and write its result."""
    name, params_json, result_path = argv
    params: dict[str, Any] = json.loads(params_json)
    if name.endswith(".idle"):
        common.Wakeups.install()
    if name.endswith(".lateness"):
        common.WATCHDOG = common.Watchdog(params["duration_s"] + OVERRUN_S, Path(result_path))
    result = asyncio.run(_scenario(name)(**params))
    if common.WATCHDOG is not None:
        common.WATCHDOG.cancel()
    Path(result_path).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
