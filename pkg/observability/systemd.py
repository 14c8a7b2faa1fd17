"""systemd's notify protocol: READY=1, STOPPING=1, WATCHDOG=1 over `$NOTIFY_SOCKET`.

A no-op when the variable is unset, so the same binary runs under systemd, in a container and
in a terminal.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from datetime import timedelta


class SystemdNotifier:
    """Sends state lines to the socket systemd names in `NOTIFY_SOCKET` (abstract or path)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        watchdog_usec = env.get("WATCHDOG_USEC", "")
        watchdog_pid = env.get("WATCHDOG_PID", "")
        self.watchdog_interval: timedelta | None = None
        if watchdog_usec.isdigit() and (not watchdog_pid or watchdog_pid == str(os.getpid())):
            # Ping at half the interval systemd waits for, as sd_watchdog_enabled(3) advises.
            self.watchdog_interval = timedelta(microseconds=int(watchdog_usec) / 2)

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, *states: str) -> bool:
        """Send `states` (e.g. "READY=1") in one datagram; False when not under systemd."""
        if not self._address:
            return False
        payload = "\n".join(states).encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.sendto(payload, self._address)
            except OSError:
                return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")
