"""Start real `financial worker` processes and read their JSON log lines."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FINANCIAL = str(Path(sys.executable).with_name("financial"))


class WorkerProcess:
    """A `financial` subprocess whose stdout JSON lines are collected by a reader thread."""

    def __init__(self, *args: str, env: Mapping[str, str], cwd: Path) -> None:
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(REPO),
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "WORKER_HEALTH_ADDR": "",
            **env,
        }
        self.proc = subprocess.Popen(
            [FINANCIAL, *args],
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self.other_lines: list[str] = []
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                self.other_lines.append(line)
                continue
            self.events.append(event)
            self._lines.put(event)

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 20.0
    ) -> dict[str, Any]:
        """The first log event (already seen or coming) matching `predicate`, within a bound."""
        for event in list(self.events):
            if predicate(event):
                return event
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                event = self._lines.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                if self.proc.poll() is not None and self._lines.empty():
                    break
                continue
            if predicate(event):
                return event
        raise AssertionError(
            f"no matching log event within {timeout_s}s; exit={self.proc.poll()}; "
            f"events={[e.get('event') for e in self.events][-30:]}; stderr={self.stderr()[-2000:]}"
        )

    def wait_event(self, name: str, timeout_s: float = 20.0, **fields: Any) -> dict[str, Any]:
        return self.wait_for(
            lambda e: e.get("event") == name and all(e.get(k) == v for k, v in fields.items()),
            timeout_s,
        )

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout_s: float = 30.0) -> int:
        code = self.proc.wait(timeout=timeout_s)
        self._reader.join(timeout=5)
        return code

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
