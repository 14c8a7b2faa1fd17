"""What the command line turns into exit codes, importable without the clients behind them."""

from __future__ import annotations

import sys
from collections.abc import Coroutine
from typing import Any

EX_OK, EX_FAILED, EX_USAGE, EX_CONFIG = 0, 1, 2, 78


class ConfigError(Exception):
    """A configuration problem found before anything starts (exit 78)."""


def store_errors() -> tuple[type[Exception], ...]:
    """What reaching the run store from the command line can meet; each message names the
    cause. Imported when a command reaches the store, not before."""
    from financial.pkg.database.embedded import EmbeddedPostgresError
    from financial.pkg.database.migrator import MigrationError
    from financial.pkg.database.pool import DatabaseUnavailable
    from financial.pkg.scheduler.store import RunStoreUnavailable

    return (DatabaseUnavailable, EmbeddedPostgresError, MigrationError, RunStoreUnavailable)


def run_command(loop: str, command: Coroutine[Any, Any, int]) -> int:
    """Run a command that reaches the database on a loop of the kind `loop` names
    (WORKER_EVENT_LOOP): its exit code, or EX_FAILED with the store's one-line message."""
    from financial.cmd import event_loop

    try:
        return event_loop.run(loop, command)
    except store_errors() as exc:
        print(f"financial: {exc}", file=sys.stderr)
        return EX_FAILED
