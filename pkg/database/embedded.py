"""An embedded PostgreSQL for trying the worker out with no database configured (DESIGN section 10).

It runs the PostgreSQL binaries shipped in the `pgserver` wheel (an optional extra:
`pip install 'financial[embedded]'`) on a data folder of ours, listening on a Unix socket inside
it only (no TCP port). Never a production mode.

Under root, pgserver runs the server as a system user `pgserver` (created with `useradd` when
missing, since PostgreSQL refuses to run as root), hands the data folder to that user and adds
group/other read+execute permission to the folders above it so that user can reach it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import structlog

log = structlog.get_logger()

INSTALL_HINT = "install the extra with: pip install 'financial[embedded]'"


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL is not installed or could not start."""


class EmbeddedPostgresMissing(EmbeddedPostgresError):
    """The embedded PostgreSQL is not installed (or has no build for this Python): a
    configuration problem, since a database must then be configured."""


@dataclass(slots=True)
class EmbeddedPostgres:
    """A running embedded server: `dsn` for asyncpg, and `stop()` to shut it down."""

    dsn: str
    data_dir: Path
    _server: Any = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Stop the server if this process is the last one using it (pgserver counts users).

        Idempotent. pgserver also stops it at interpreter exit should this never be called.
        Logs `embedded_postgres_stopped` when the server was stopped, and
        `embedded_postgres_detached` (DEBUG) when another process still uses it, as a CLI
        command run beside a worker does: the worker's database keeps running.
        """
        if self._stopped:
            return
        self._stopped = True
        others = self.other_users()
        self._server.cleanup()
        if others:
            log.debug(
                "embedded_postgres_detached",
                data_dir=str(self.data_dir),
                still_used_by_pids=others,
            )
        else:
            log.info("embedded_postgres_stopped", data_dir=str(self.data_dir))

    def other_users(self) -> list[int]:
        """Pids of the other processes attached to this server, as pgserver lists them in the
        data folder: it stops the server only when this process is the last on the list."""
        handles = getattr(self._server, "global_process_id_list", None)
        try:
            pids = [int(pid) for pid in handles.get()] if handles is not None else []
        except (OSError, ValueError):
            return []
        return [pid for pid in pids if pid != os.getpid()]


# pgserver publishes builds for CPython up to 3.12; the `embedded` extra asks for it only there
# (pyproject.toml), so that installing on a newer Python succeeds and this says why it is absent.
PGSERVER_NEWEST_PYTHON = (3, 12)


def _import_pgserver() -> ModuleType:
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (services, containers) and falls
            # back to /tmp/runtime-<uid>, which is fine for pgserver's lock file.
            warnings.simplefilter("ignore")
            import pgserver  # type: ignore[import-untyped, unused-ignore]
    except ImportError as exc:
        raise EmbeddedPostgresMissing(missing_pgserver(sys.version_info[:2], exc)) from exc
    return pgserver


def missing_pgserver(python: tuple[int, int], exc: ImportError) -> str:
    """Why there is no embedded PostgreSQL on Python `python`, and what to do instead."""
    if python > PGSERVER_NEWEST_PYTHON:
        newest = ".".join(map(str, PGSERVER_NEWEST_PYTHON))
        return (
            f"no database is configured, and the embedded PostgreSQL (the pgserver package) has "
            f"no build for Python {python[0]}.{python[1]}: set DATABASE_URL (or DB_HOST) to a "
            f"PostgreSQL server, or run the worker on Python {newest} or older for the embedded one"
        )
    return (
        f"no database is configured and the embedded PostgreSQL is not installed "
        f"(import pgserver failed: {exc}); {INSTALL_HINT}, or set DATABASE_URL"
    )


def start_embedded(data_dir: str | Path) -> EmbeddedPostgres:
    """Start (or attach to) an embedded PostgreSQL on `data_dir`, initialising it on first use.

    Blocking (initdb takes a few seconds the first time, a start under a second): call it from a
    thread in async code, or use `start_embedded_async`. The DSN is a `postgresql://` URI on the
    server's Unix socket (database and user `postgres`, trust authentication, no password).
    """
    pgserver = _import_pgserver()
    path = Path(data_dir).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.get_server(path, cleanup_mode="stop")
        dsn = str(server.get_uri())
    except Exception as exc:
        hint = f"see {path / 'log'}"
        if os.geteuid() == 0:
            # The usual cause under root: a parent folder the `pgserver` user cannot enter (pgserver
            # opens them up, but something may close one again, as pytest does with its 0700 tmp).
            hint += (
                "; under root the server runs as the user 'pgserver', which needs to enter every "
                f"folder above {path}"
            )
        raise EmbeddedPostgresError(
            f"the embedded PostgreSQL in {path} did not start: {type(exc).__name__}: {exc}; "
            f"expected a data folder it can own and initialise ({hint})"
        ) from exc
    log.debug("embedded_postgres_started", data_dir=str(path))
    return EmbeddedPostgres(dsn=dsn, data_dir=path, _server=server)


async def start_embedded_async(data_dir: str | Path) -> EmbeddedPostgres:
    """`start_embedded` run in a worker thread, so the event loop keeps going meanwhile."""
    return await asyncio.to_thread(start_embedded, data_dir)
