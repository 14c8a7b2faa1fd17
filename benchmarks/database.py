"""The database scenario: 1 and 3 worker processes on one PostgreSQL, 500 jobs every second.

`run` (one process) starts an embedded PostgreSQL on a fresh data folder, migrates it, puts a
counting proxy in front of it, and for each worker count starts that many `worker` processes on
the same ticks. Each worker is wired as `financial worker` is: the PostgreSQL run store on a pool
of the production size (1..10 connections), the production concurrency cap, heartbeat and
tracing wrapper. Jobs record their start; `run` merges the records of every worker.

Round trips are counted by the proxy (a Unix socket in front of the server's): each time a
client starts sending after the server last spoke on that connection is one round trip, so a
pipelined batch counts once and the pool's reset query after each use counts too. Only the
measured window counts. The proxy runs in this process, not in the workers, so its CPU is not
in theirs, but it adds a hop (tens of microseconds) to every round trip.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from benchmarks.common import (
    Result,
    Usage,
    bench_logging,
    lateness_summary,
    peak_rss_mb,
    sleep_until_epoch,
)
from financial.pkg.observability.logging import configure_logging

SOCKET_NAME = ".s.PGSQL.5432"
_connecting: set[asyncio.Task[None]] = set()
# Time for a worker process to start (imports, pool, registry) before its first measured tick.
STARTUP_S = 6


class _Counter:
    def __init__(self) -> None:
        self.round_trips = 0


class _Pipe(asyncio.Protocol):
    """One direction of a proxied connection; `client_side` marks the worker's socket."""

    def __init__(self, counter: _Counter, state: dict[str, bool], client_side: bool) -> None:
        self._counter = counter
        self._state = state
        self._client_side = client_side
        self.peer: asyncio.Transport | None = None
        self.transport: asyncio.Transport | None = None
        self._pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._client_side:
            if not self._state["client_spoke_last"]:
                self._counter.round_trips += 1
                self._state["client_spoke_last"] = True
        else:
            self._state["client_spoke_last"] = False
        if self.peer is None:
            self._pending.append(data)
        else:
            self.peer.write(data)

    def attach(self, peer: asyncio.Transport) -> None:
        self.peer = peer
        for chunk in self._pending:
            peer.write(chunk)
        self._pending.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self.peer.close()


async def start_proxy(
    server_dir: str, proxy_dir: Path, counter: _Counter
) -> asyncio.AbstractServer:
    """A Unix-socket proxy in `proxy_dir` onto the server's socket in `server_dir`."""
    loop = asyncio.get_running_loop()
    target = os.path.join(server_dir, SOCKET_NAME)

    def client_protocol() -> _Pipe:
        state = {"client_spoke_last": False}
        client = _Pipe(counter, state, client_side=True)

        async def connect() -> None:
            server_transport, server = await loop.create_unix_connection(
                lambda: _Pipe(counter, state, client_side=False), target
            )
            assert client.transport is not None
            server.attach(client.transport)
            client.attach(server_transport)

        # The task is kept until it ends: the loop holds only a weak reference to it.
        task = loop.create_task(connect())
        _connecting.add(task)
        task.add_done_callback(_connecting.discard)
        return client

    return await loop.create_unix_server(client_protocol, str(proxy_dir / SOCKET_NAME))


def _with_host(dsn: str, host_dir: str) -> str:
    parts = urlsplit(dsn)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["host"] = host_dir
    return urlunsplit(parts._replace(query=urlencode(query)))


def _server_dir(dsn: str) -> str:
    return parse_qs(urlsplit(dsn).query)["host"][0]


async def run(workers: list[int], jobs: int, duration_s: int, log_levels: list[str]) -> Result:
    """Every (worker count, log level) pair on one embedded PostgreSQL; a result for each."""
    try:
        from financial.pkg.database.embedded import start_embedded
        from financial.pkg.database.migrator import migrate
        from financial.pkg.database.pool import create_pool
        from financial.pkg.scheduler.store.postgres import (  # noqa: F401 - checked to be there
            PostgresRunStore,
        )
    except ImportError as exc:
        return {"unavailable": f"the PostgreSQL run store is not importable: {exc}"}
    results: list[Result] = []
    # This process only coordinates: its own log lines are not part of any figure.
    configure_logging("WARNING", "json", stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
        os.chmod(tmp, 0o755)  # under root the server runs as the `pgserver` user
        embedded = await asyncio.to_thread(start_embedded, Path(tmp) / "pgdata")
        try:
            pool = await create_pool(embedded.dsn, min_size=1, max_size=2)
            await migrate(pool)
            counter = _Counter()
            proxy_dir = Path(tmp) / "proxy"
            proxy_dir.mkdir()
            proxy = await start_proxy(_server_dir(embedded.dsn), proxy_dir, counter)
            dsn = _with_host(embedded.dsn, str(proxy_dir))
            for level in log_levels:
                for count in workers:
                    await pool.execute("TRUNCATE job_runs, job_state")
                    result = await _round(dsn, count, jobs, duration_s, level, counter, Path(tmp))
                    rows = await pool.fetch(
                        "SELECT status, count(*) AS n FROM job_runs GROUP BY status"
                    )
                    result["statuses"] = {row["status"]: row["n"] for row in rows}
                    results.append({"workers": count, "log_level": level, **result})
            proxy.close()
            await pool.close()
        finally:
            await asyncio.to_thread(embedded.stop)
    return {"rounds": results}


async def _round(
    dsn: str, count: int, jobs: int, duration_s: int, level: str, counter: _Counter, tmp: Path
) -> Result:
    first_tick = math.floor(time.time()) + STARTUP_S
    last_tick = first_tick + duration_s - 1
    params = {
        "dsn": dsn,
        "jobs": jobs,
        "first_tick": first_tick,
        "last_tick": last_tick,
        "log_level": level,
    }
    procs: list[tuple[asyncio.subprocess.Process, Path]] = []
    for i in range(count):
        out = tmp / f"worker-{count}-{level}-{i}.json"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.child",
            "database.worker",
            json.dumps({**params, "worker_id": f"bench-{i}"}),
            str(out),
            stdout=asyncio.subprocess.DEVNULL,
        )
        procs.append((proc, out))
    await sleep_until_epoch(first_tick - 0.5)  # round trips of the window only
    trips_before = counter.round_trips
    await sleep_until_epoch(last_tick + 1.0)
    trips_after = counter.round_trips
    outputs: list[Result] = []
    for proc, out in procs:
        if await proc.wait() != 0:
            return {"error": f"a worker exited with {proc.returncode}"}
        outputs.append(json.loads(out.read_text(encoding="utf-8")))
    starts = [
        (str(job), float(at), float(began)) for o in outputs for job, at, began in o["starts"]
    ]
    summary = lateness_summary(starts, first_tick, last_tick, jobs)
    runs = summary["observed"]
    return {
        **summary,
        "runs_per_s": runs / duration_s,
        "round_trips": trips_after - trips_before,
        "round_trips_per_run": (trips_after - trips_before) / runs if runs else math.nan,
        "cpu_per_s": sum(o["cpu_per_s"] for o in outputs) / len(outputs),
        "rss_mb": max(o["rss_mb"] for o in outputs),
    }


async def worker(
    dsn: str, jobs: int, first_tick: int, last_tick: int, log_level: str, worker_id: str
) -> Result:
    """One worker process on the PostgreSQL store, from now until just after `last_tick`."""
    from benchmarks.ours import Start, build_scheduler, recording_job, stop
    from financial.pkg.database.pool import create_pool
    from financial.pkg.scheduler.registry import JobRegistry
    from financial.pkg.scheduler.store.postgres import PostgresRunStore

    starts: list[Start] = []
    registry = JobRegistry()
    for i in range(jobs):
        registry.add(recording_job(f"j{i}", "* * * * * *", starts.append))
    with tempfile.TemporaryDirectory() as tmp, bench_logging(log_level, Path(tmp)):
        pool = await create_pool(dsn, min_size=1, max_size=10)
        store: Any = PostgresRunStore(pool)
        scheduler = build_scheduler(registry, store=store, worker_id=worker_id)
        await sleep_until_epoch(first_tick - 1.5)  # every worker starts on the same tick
        before = Usage.now()
        loop_task = asyncio.create_task(scheduler.run())
        await sleep_until_epoch(last_tick + 0.5)
        await stop(scheduler, loop_task)
        after = Usage.now()
        await pool.close()
    return {
        "starts": starts,
        "cpu_per_s": (after.cpu_s - before.cpu_s) / (after.wall_s - before.wall_s),
        "rss_mb": peak_rss_mb(),
    }
