"""A process that attached to an embedded PostgreSQL another process started does not claim to
have stopped it."""

from __future__ import annotations

import os
from pathlib import Path

from structlog.testing import capture_logs

from financial.pkg.database.embedded import EmbeddedPostgres


class Handles:
    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    def get(self) -> list[int]:
        return list(self.pids)


class FakeServer:
    """pgserver's handle: a pid list in the data folder, and a cleanup that stops the server
    only when this process is the last one on it."""

    def __init__(self, pids: list[int]) -> None:
        self.global_process_id_list = Handles(pids)
        self.stopped = False

    def cleanup(self) -> None:
        self.stopped = self.global_process_id_list.pids == [os.getpid()]
        self.global_process_id_list.pids.remove(os.getpid())


def test_the_last_user_stops_the_server_and_says_so(tmp_path: Path) -> None:
    server = FakeServer([os.getpid()])
    embedded = EmbeddedPostgres(dsn="postgresql://x", data_dir=tmp_path, _server=server)
    with capture_logs() as logs:
        embedded.stop()
        embedded.stop()  # idempotent
    assert server.stopped
    assert [e["event"] for e in logs] == ["embedded_postgres_stopped"]


def test_a_process_attached_to_another_ones_server_says_it_left_it_running(
    tmp_path: Path,
) -> None:
    worker_pid = os.getpid() + 1
    server = FakeServer([worker_pid, os.getpid()])
    embedded = EmbeddedPostgres(dsn="postgresql://x", data_dir=tmp_path, _server=server)
    with capture_logs() as logs:
        embedded.stop()
    assert not server.stopped
    assert [e["event"] for e in logs] == ["embedded_postgres_detached"]
    assert logs[0]["still_used_by_pids"] == [worker_pid]
    assert logs[0]["log_level"] == "debug"
