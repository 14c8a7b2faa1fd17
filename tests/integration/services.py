"""The services the integration tests start on loopback: a private RabbitMQ node and the
embedded PostgreSQL. `conftest.py` holds the fixtures that start them once per session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from financial.pkg.database import EmbeddedPostgres, start_embedded


def dsn_with_database(dsn: str, database: str) -> str:
    """The same server DSN pointing at another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


# --- RabbitMQ ---------------------------------------------------------------------------------

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
RABBITMQ_START_TIMEOUT_S = 60.0
RABBITMQ_STOP_TIMEOUT_S = 30.0
# Low enough that a nearly full CI disk does not raise the alarm that blocks every publisher.
RABBITMQ_CONF = "loopback_users.guest = true\ndisk_free_limit.absolute = 1MB\n"


class ServiceStartError(RuntimeError):
    """A service of the test harness did not come up."""


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _amqp_answers(port: int) -> bool:
    """True when an AMQP 0-9-1 server answers the protocol header with a frame."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            return sock.recv(1) == b"\x01"  # frame type 1: Connection.Start
    except OSError:
        return False


class RabbitBroker:
    """A private RabbitMQ node: own data folder, node name, AMQP/dist/epmd ports, loopback only.

    Debian's server refuses to boot as root with a data folder it does not own
    (failed_to_create_feature_flags_file_directory), so under root the folder is given to the
    `rabbitmq` user and the server runs as that user. An epmd of our own on a free port keeps
    the node away from any system epmd and leaves no daemon behind.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self._epmd_port = free_port()
        self._dist_port = free_port()
        self._node = f"financial-it-{os.getpid()}-{uuid.uuid4().hex[:6]}@localhost"
        self._server: subprocess.Popen[bytes] | None = None
        self._epmd: subprocess.Popen[bytes] | None = None
        self.start_duration_s = 0.0

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.poll() is None

    def _prepare(self) -> dict[str, str]:
        for sub in ("mnesia", "log", "home"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq-env.conf").write_text("")
        (self.base / "rabbitmq.conf").write_text(RABBITMQ_CONF)
        if os.geteuid() == 0:
            self.base.chmod(0o755)
            for path in [self.base, *self.base.rglob("*")]:
                shutil.chown(path, "rabbitmq", "rabbitmq")
        return {
            "HOME": str(self.base / "home"),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_PID_FILE": str(self.base / "rabbitmq.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_NODENAME": self._node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self._dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self._epmd_port),
            # Keep the distribution listener on loopback too (it binds to all interfaces else).
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def start(self) -> None:
        """Start the node and wait (bounded) until it answers AMQP; raise with its log tail."""
        if self.running:
            return
        server = RABBITMQ_SERVER if RABBITMQ_SERVER.exists() else shutil.which("rabbitmq-server")
        epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
        if server is None:
            raise ServiceStartError(
                "rabbitmq-server is not installed; run scripts/ensure-services.sh (make test does)"
            )
        env = self._prepare()
        if self._epmd is None or self._epmd.poll() is not None:
            self._epmd = subprocess.Popen(
                [epmd, "-address", "127.0.0.1", "-port", str(self._epmd_port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        command = [str(server)]
        if os.geteuid() == 0:
            # runuser may reset HOME and friends: pass the environment explicitly through env(1).
            command = [
                "runuser",
                "-u",
                "rabbitmq",
                "--",
                "env",
                *(f"{k}={v}" for k, v in env.items()),
                *command,
            ]
        started = time.monotonic()
        with open(self.base / "console.log", "ab") as console:
            self._server = subprocess.Popen(
                command,
                env={**os.environ, **env},
                cwd=self.base,
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        while time.monotonic() - started < RABBITMQ_START_TIMEOUT_S:
            if _amqp_answers(self.port):
                self.start_duration_s = time.monotonic() - started
                return
            if self._server.poll() is not None:
                break
            time.sleep(0.1)
        self.stop(kill=True)
        raise ServiceStartError(
            f"RabbitMQ did not answer on 127.0.0.1:{self.port} within "
            f"{RABBITMQ_START_TIMEOUT_S:g} s; last lines of its logs:\n{self.log_tail()}"
        )

    def stop(self, *, kill: bool = False) -> None:
        """Stop the node: graceful (SIGTERM to the VM), or `kill=True` for a crash (SIGKILL)."""
        server, self._server = self._server, None
        if server is None or server.poll() is not None:
            return
        pid_file = self.base / "rabbitmq.pid"
        try:
            vm_pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            vm_pid = None
        # Signal the VM alone when its pid is known: the launcher script then reaps it and exits,
        # which leaves no zombie behind even where PID 1 does not reap orphans.
        sig = signal.SIGKILL if kill else signal.SIGTERM
        with contextlib.suppress(ProcessLookupError):
            if vm_pid is not None:
                os.kill(vm_pid, sig)
            else:
                os.killpg(server.pid, sig)
        try:
            server.wait(timeout=RABBITMQ_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        # The port must be closed before a restart can bind it again.
        deadline = time.monotonic() + 10
        while _amqp_answers(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        pid_file.unlink(missing_ok=True)

    def close(self) -> None:
        """Stop the node and our epmd."""
        self.stop()
        epmd, self._epmd = self._epmd, None
        if epmd is not None and epmd.poll() is None:
            epmd.terminate()
            epmd.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for path in [self.base / "console.log", *sorted((self.base / "log").glob("*.log"))]:
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts) or "(no log written)"


class PostgresService:
    """The session's embedded PostgreSQL; `stop()`/`start()` let a test take it away."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: EmbeddedPostgres | None = None
        self._dsn: str | None = None

    @property
    def dsn(self) -> str:
        """DSN of the server's `postgres` database (administration, creating test databases)."""
        if self._dsn is None:
            raise RuntimeError("PostgreSQL was never started")
        return self._dsn

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        if self._server is None:
            self._server = start_embedded(self.data_dir)
            self._dsn = self._server.dsn

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def dsn_for(self, database: str) -> str:
        return dsn_with_database(self.dsn, database)
