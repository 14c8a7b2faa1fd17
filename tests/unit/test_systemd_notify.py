"""systemd's notify protocol against a real AF_UNIX datagram socket, as systemd listens on one."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from financial.pkg.observability.systemd import SystemdNotifier


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A bound datagram socket in tmp_path and the path to name in NOTIFY_SOCKET."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2.0)
        yield str(path), sock


@pytest.fixture
def abstract_socket() -> Iterator[tuple[str, socket.socket]]:
    """A socket in the abstract namespace; NOTIFY_SOCKET names it with a leading '@'."""
    name = f"financial-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        yield "@" + name, sock


def received(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_ready_stopping_and_watchdog_datagrams(notify_socket: tuple[str, socket.socket]) -> None:
    address, sock = notify_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000"})
    assert notifier.enabled

    assert notifier.ready("running 3 jobs")
    assert received(sock) == ["READY=1", "STATUS=running 3 jobs"]
    assert notifier.watchdog()
    assert received(sock) == ["WATCHDOG=1"]
    assert notifier.watchdog()
    assert received(sock) == ["WATCHDOG=1"]
    assert notifier.stopping()
    assert received(sock) == ["STOPPING=1"]


def test_ready_without_a_status_is_one_line(notify_socket: tuple[str, socket.socket]) -> None:
    address, sock = notify_socket
    assert SystemdNotifier({"NOTIFY_SOCKET": address}).ready()
    assert received(sock) == ["READY=1"]


def test_watchdog_interval_is_half_of_what_systemd_waits() -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": "/unused", "WATCHDOG_USEC": "2000000"})
    assert notifier.watchdog_interval == timedelta(seconds=1)


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, timedelta(seconds=15)),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_the_watchdog_is_ours_only_when_systemd_says_so(
    environ: dict[str, str], interval: timedelta | None
) -> None:
    assert SystemdNotifier({"NOTIFY_SOCKET": "/unused", **environ}).watchdog_interval == interval


def test_abstract_namespace_address(abstract_socket: tuple[str, socket.socket]) -> None:
    address, sock = abstract_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000"})
    assert notifier.ready("up")
    assert received(sock) == ["READY=1", "STATUS=up"]
    assert notifier.watchdog()
    assert received(sock) == ["WATCHDOG=1"]
    assert notifier.stopping()
    assert received(sock) == ["STOPPING=1"]


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert notifier.ready("x") is False
    assert notifier.stopping() is False
    assert notifier.watchdog() is False


def test_a_socket_that_is_gone_does_not_raise(tmp_path: Path) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.enabled
    assert notifier.ready() is False
