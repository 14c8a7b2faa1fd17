"""A PostgreSQL of the fault tests' own, that they freeze (SIGSTOP), thaw and restart.

It is an embedded server (pgserver) apart from the session's, so freezing or stopping it never
disturbs another test. Its template database is migrated once; each test gets a copy.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from tests.integration.services import PostgresService

STOP_WAIT_S = 2.0


class FaultPostgres(PostgresService):
    """The embedded server plus what a fault needs: its processes, its socket, SIGSTOP."""

    @property
    def postmaster_pid(self) -> int:
        """The postmaster's pid: the first line of `postmaster.pid` in the data folder."""
        return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])

    @property
    def socket_path(self) -> Path:
        """The server's Unix socket (`<socket dir>/.s.PGSQL.<port>`, from `postmaster.pid`)."""
        lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        port, socket_dir = lines[3].strip(), lines[4].strip()
        return Path(socket_dir) / f".s.PGSQL.{port}"

    def processes(self) -> list[int]:
        """The postmaster and every process below it (backends, checkpointer, walwriter...)."""
        root = self.postmaster_pid
        found = [root]
        queue = [root]
        while queue:
            found_now = _children(queue.pop())
            found.extend(found_now)
            queue.extend(found_now)
        return found

    @contextlib.contextmanager
    def frozen(self) -> Iterator[list[int]]:
        """Every process of the server stopped (SIGSTOP) inside the block, resumed after it.

        The postmaster is stopped first, so it forks nothing while its children are stopped;
        the tree is walked again until no new process shows up. SIGCONT goes to every process
        in a `finally`, whatever the block raised.
        """
        stopped: list[int] = []
        try:
            for _ in range(5):
                new = [pid for pid in self.processes() if pid not in stopped]
                if not new:
                    break
                for pid in new:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGSTOP)
                    stopped.append(pid)
            # A signal is delivered asynchronously: wait (bounded) until the kernel shows
            # every process stopped, so the fault has begun when the block starts.
            deadline = time.monotonic() + STOP_WAIT_S
            while time.monotonic() < deadline and any(
                process_state(pid) not in ("T", "?") for pid in stopped
            ):
                time.sleep(0.01)
            yield stopped
        finally:
            for pid in reversed(stopped):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children.extend(int(c) for c in (task / "children").read_text().split())
    return children


def process_state(pid: int) -> str:
    """The kernel's one-letter state of a process (`T` when stopped), or `?` when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "?"
    return stat.rsplit(")", 1)[1].split()[0]
