"""A real `financial worker` under a fake systemd: READY=1, WATCHDOG=1 pings, STOPPING=1.

The test plays systemd's part: it binds the datagram socket that `NOTIFY_SOCKET` names and sets
`WATCHDOG_USEC`, then reads what the worker sends through start, run and a SIGTERM drain.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

WATCHDOG_USEC = 2_000_000  # systemd would wait 2 s; the worker pings every 1 s


class FakeSystemd:
    """The notify socket, and every datagram received on it with its arrival time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[tuple[float, list[str]]] = []

    def receive(self, timeout_s: float) -> tuple[float, list[str]]:
        """The next datagram and its arrival time; fails when none comes within `timeout_s`."""
        self.sock.settimeout(timeout_s)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            seen = [lines for _, lines in self.messages]
            raise AssertionError(f"nothing within {timeout_s:g} s; received {seen}") from None
        message = (time.monotonic(), data.decode().split("\n"))
        self.messages.append(message)
        return message

    def wait_for(self, state: str, timeout_s: float = 30.0) -> list[str]:
        """The next datagram holding `state`, skipping others, within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            _, lines = self.receive(max(deadline - time.monotonic(), 0.001))
            if state in lines:
                return lines

    def states(self) -> list[str]:
        return [line.split("=", 1)[0] for _, lines in self.messages for line in lines]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def systemd(open_tmp_path: Path) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(open_tmp_path / "notify")
    yield fake
    fake.close()


def test_worker_reports_ready_watchdog_and_stopping(
    systemd: FakeSystemd, open_tmp_path: Path, database_dsn: str
) -> None:
    worker = WorkerProcess(
        "worker",
        env={
            "DATABASE_URL": database_dsn,
            "WORKER_JOB_MODULES": "tests.fixtures.worker_jobs",
            "TEST_MARKS_DIR": str(open_tmp_path),
            "NOTIFY_SOCKET": str(systemd.path),
            "WATCHDOG_USEC": str(WATCHDOG_USEC),
        },
        cwd=open_tmp_path,
    )
    try:
        ready = systemd.wait_for("READY=1")
        assert any(line.startswith("STATUS=") for line in ready)
        # Pings keep coming, each well inside the interval systemd would wait: a wait of the
        # whole interval without one fails the test as it would fail the unit.
        pings: list[float] = []
        while len(pings) < 3:
            at, lines = systemd.receive(WATCHDOG_USEC / 1e6)
            if "WATCHDOG=1" in lines:
                pings.append(at)

        worker.signal(signal.SIGTERM)
        systemd.wait_for("STOPPING=1")
        assert worker.wait_exit() == 0
        assert systemd.states().index("READY") < systemd.states().index("STOPPING")
    finally:
        worker.kill()
