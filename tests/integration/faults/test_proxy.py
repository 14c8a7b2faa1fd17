"""The fault suite's TCP proxy: forward, black hole (no answer, no reset), forward again."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.integration.faults.pg_control import FaultPostgres
from tests.integration.faults.records import run_sync
from tests.integration.faults.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


class _Echo(socketserver.BaseRequestHandler):
    """Sends back what it receives."""

    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    """A TCP echo server on a free loopback port."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    yield str(host), int(port)
    server.shutdown()
    server.server_close()


def connect(proxy: TcpProxy) -> socket.socket:
    """A client connection through the proxy, reads timing out after 0.5 s."""
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
    sock.settimeout(0.5)
    return sock


def echoes(sock: socket.socket, payload: bytes) -> bytes | None:
    """What comes back for `payload`: the bytes, or None when nothing answers in time."""
    sock.sendall(payload)
    try:
        return sock.recv(4096)
    except TimeoutError:
        return None


def test_the_proxy_forwards_then_answers_nothing_then_forwards_new_connections(
    echo_server: tuple[str, int],
) -> None:
    with TcpProxy(echo_server) as proxy:
        before = connect(proxy)
        assert echoes(before, b"ping") == b"ping"

        proxy.blackhole()
        # The old connection stays open and gets no answer; nor does a new one.
        assert echoes(before, b"lost") is None
        during = connect(proxy)
        assert echoes(during, b"lost too") is None
        assert proxy.open_connections == 2
        assert proxy.accepted == 2

        proxy.forward()
        after = connect(proxy)
        assert echoes(after, b"pong") == b"pong"
        # What lived through the black hole is closed: end of file or a reset, never an answer.
        for old in (before, during):
            with contextlib.suppress(ConnectionResetError):
                assert old.recv(4096) == b""
        for sock in (before, during, after):
            sock.close()


async def _pg_select_one(dsn: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=3)
    try:
        value: int = await conn.fetchval("SELECT 1", timeout=3)
        return value
    finally:
        await conn.close()


def test_the_proxy_reaches_postgresql_on_its_unix_socket(
    fault_postgres: FaultPostgres, fault_db: str
) -> None:
    socket_path: Path = fault_postgres.socket_path
    with TcpProxy(socket_path) as proxy:
        dsn = f"postgresql://postgres@{proxy.address}/{fault_db}"
        assert run_sync(_pg_select_one(dsn)) == 1
        proxy.blackhole()
        with pytest.raises(TimeoutError):
            run_sync(_pg_select_one(dsn))
        proxy.forward()
        assert run_sync(_pg_select_one(dsn)) == 1
