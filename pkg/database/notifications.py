"""One LISTEN connection per worker, shared by every watcher that waits for a `pg_notify`.

`NotificationHub` holds one connection (its own, or one of the pool's for the embedded
database), LISTENs on every channel subscribed, hands each payload to that channel's
subscribers, pings the connection every `ping_interval` (a connection cut without a word shows
only when used) and re-opens a lost one with back-off. Each time it is listening again it tells
every subscriber (`on_connected`), so each catches up with what was sent while nobody listened:
a notification is never queued for a connection that is gone.

An outage is logged once when it starts (`notification_listener_lost`) and once when it ends
(`notification_listener_resumed`); each connection that starts listening logs
`notification_listener_started`. The connection is named `LISTENER_PREFIX` + the worker id,
which is how `jobs trigger` tells that a worker is running (`listeners`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import asyncpg
import structlog

from financial.pkg.database.pool import Connection, unavailable
from financial.pkg.observability.masking import mask_secrets
from financial.pkg.scheduler.clock import Clock

log = structlog.get_logger("financial.notifications")

# The application name of a worker's LISTEN connection, followed by its worker id. The name it
# had when only the request watcher listened, so a command line of either version finds it.
LISTENER_PREFIX = "financial-requests:"
PING_INTERVAL = timedelta(seconds=2)
RECONNECT_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0)
# A connect, a LISTEN or a ping that takes longer than this is treated as a lost connection.
CALL_TIMEOUT_S = 10.0
# PostgreSQL keeps at most this many bytes of an application name.
APPLICATION_NAME_MAX = 63


class Listening(Protocol):
    """What the hub needs of a connection: listen on a channel and check it is alive."""

    async def listen(self, channel: str, on_notify: Callable[[str], None]) -> None: ...

    async def ping(self) -> None: ...


Connect = Callable[[], AbstractAsyncContextManager[Listening]]


@dataclass(frozen=True)
class Subscriber:
    """`on_notify(payload)` for each notification on `channel`; `on_connected()` each time the
    hub listens again (and the first time), to catch up. Both are called on the event loop and
    must not block: set an event, note the payload."""

    channel: str
    on_notify: Callable[[str], None]
    on_connected: Callable[[], None]


class NotificationHub:
    """One LISTEN connection for every subscriber; `run()` until `stop()`."""

    def __init__(
        self,
        connect: Connect,
        clock: Clock,
        *,
        ping_interval: timedelta = PING_INTERVAL,
    ) -> None:
        self._connect = connect
        self._clock = clock
        self._ping_interval = ping_interval
        self._subscribers: list[Subscriber] = []
        self._started = False
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._down = False
        self.connected = asyncio.Event()  # set while listening on every channel

    @property
    def channels(self) -> list[str]:
        return sorted({s.channel for s in self._subscribers})

    def subscribe(
        self,
        channel: str,
        on_notify: Callable[[str], None],
        on_connected: Callable[[], None],
    ) -> None:
        """Subscribe before `run()`: the channels are LISTENed to as the connection opens."""
        if self._started:
            raise RuntimeError(f"subscribe({channel!r}) after the hub started: subscribe first")
        self._subscribers.append(Subscriber(channel, on_notify, on_connected))

    def start(self) -> None:
        """Run in a task of its own (subscribe first); `close()` ends it."""
        if self._task is None:
            self._task = asyncio.create_task(self.run())

    def stop(self) -> None:
        self._stop.set()

    async def close(self, timeout_s: float = CALL_TIMEOUT_S) -> None:
        """Stop and wait for the task `start()` made; one stuck in a call is cancelled after
        `timeout_s`."""
        self.stop()
        if self._task is not None:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._task, timeout_s)

    async def run(self) -> None:
        """Listen, ping and reconnect until `stop()`; never raises for a lost database."""
        self._started = True
        attempt = 0
        while not self._stop.is_set():
            try:
                async with AsyncExitStack() as held:
                    async with asyncio.timeout(CALL_TIMEOUT_S):
                        conn = await held.enter_async_context(self._connect())
                        for channel in self.channels:
                            await conn.listen(channel, self._dispatcher(channel))
                    attempt = 0
                    self._listening()
                    try:
                        await self._follow(conn)
                    finally:
                        self.connected.clear()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay_s = RECONNECT_BACKOFF_S[min(attempt, len(RECONNECT_BACKOFF_S) - 1)]
                attempt += 1
                self._lost(exc, delay_s)
                await self._clock.sleep_until(
                    self._clock.now() + timedelta(seconds=delay_s), self._stop
                )

    def _dispatcher(self, channel: str) -> Callable[[str], None]:
        subscribers = [s for s in self._subscribers if s.channel == channel]

        def dispatch(payload: str) -> None:
            for subscriber in subscribers:
                subscriber.on_notify(payload)

        return dispatch

    async def _follow(self, conn: Listening) -> None:
        """Ping `conn` every `ping_interval` until `stop()`; raises when it is lost."""
        while not self._stop.is_set():
            await self._clock.sleep_until(self._clock.now() + self._ping_interval, self._stop)
            if self._stop.is_set():
                return
            await asyncio.wait_for(conn.ping(), CALL_TIMEOUT_S)

    def _listening(self) -> None:
        log.info("notification_listener_started", channels=self.channels)
        if self._down:
            self._down = False
            log.info("notification_listener_resumed")
        self.connected.set()
        for subscriber in self._subscribers:
            subscriber.on_connected()

    def _lost(self, exc: Exception, delay_s: float) -> None:
        error = mask_secrets(f"{type(exc).__name__}: {exc}")
        if self._down:
            log.debug("notification_listener_retry", error=error, retry_in_s=delay_s)
            return
        self._down = True
        log.warning(
            "notification_listener_lost",
            error=error,
            retry_in_s=delay_s,
            channels=self.channels,
            hint="watchers poll meanwhile and catch up once the connection is back",
        )


class _Listener:
    """An asyncpg connection held for LISTEN."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._callbacks: list[tuple[str, Callable[[Connection, int, str, object], None]]] = []

    async def listen(self, channel: str, on_notify: Callable[[str], None]) -> None:
        def heard(_conn: Connection, _pid: int, _channel: str, payload: object) -> None:
            on_notify(str(payload))

        await self._conn.add_listener(channel, heard)
        self._callbacks.append((channel, heard))

    async def ping(self) -> None:
        await self._conn.execute("SELECT 1")

    async def close(self) -> None:
        # A connection already lost cannot unlisten.
        with suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            for channel, callback in self._callbacks:
                if not self._conn.is_closed():
                    await self._conn.remove_listener(channel, callback)


def pool_connection(pool: asyncpg.Pool, application_name: str) -> Connect:
    """The hub's connection taken from `pool` (the embedded database), named
    `application_name` while held; given back to the pool (which resets the name) on exit."""

    @asynccontextmanager
    async def connect() -> AsyncIterator[Listening]:
        async with pool.acquire() as conn:
            await conn.execute(
                "SELECT set_config('application_name', $1, false)",
                application_name[:APPLICATION_NAME_MAX],
            )
            held = _Listener(conn)
            try:
                yield held
            finally:
                await held.close()

    return connect


def dedicated_connection(dsn: str, application_name: str, *, connect_timeout_s: float) -> Connect:
    """The hub's connection of its own to `dsn` (the pool's DSN), beside the pool so that a
    pool of one still serves the runs; closed on exit. A failure to connect is a
    `DatabaseUnavailable` whose message never shows the password."""

    @asynccontextmanager
    async def connect() -> AsyncIterator[Listening]:
        try:
            conn = await asyncpg.connect(
                dsn,
                timeout=connect_timeout_s,
                server_settings={"application_name": application_name[:APPLICATION_NAME_MAX]},
            )
        except Exception as exc:
            raise unavailable(dsn, exc, connect_timeout_s=connect_timeout_s) from None
        held = _Listener(conn)
        try:
            yield held
        finally:
            await held.close()
            conn.terminate()

    return connect
