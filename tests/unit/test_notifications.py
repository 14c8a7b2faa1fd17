"""The notification hub on a fake clock and a fake connection: one connection LISTENing on every
channel subscribed, each payload handed to its channel's subscribers only, a lost connection
re-opened with back-off and every subscriber told, the outage logged once and its end once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from financial.pkg.database.notifications import Listening, NotificationHub
from financial.pkg.scheduler.clock import FakeClock

PING = timedelta(seconds=2)


class FakeServer:
    """Connections to a fake database: `notify` delivers to those listening, `broken` makes
    every connect and every call fail."""

    def __init__(self) -> None:
        self.listening: dict[str, list[Callable[[str], None]]] = {}
        self.broken = False
        self.opened = 0
        self.open_now = 0
        self.pings = 0

    def notify(self, channel: str, payload: str) -> None:
        for callback in self.listening.get(channel, []):
            callback(payload)

    async def listen(self, channel: str, on_notify: Callable[[str], None]) -> None:
        self._check()
        self.listening.setdefault(channel, []).append(on_notify)

    async def ping(self) -> None:
        self._check()
        self.pings += 1

    def _check(self) -> None:
        if self.broken:
            raise ConnectionResetError("connection lost")

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Listening]:
        self._check()
        self.opened += 1
        self.open_now += 1
        try:
            yield self
        finally:
            self.open_now -= 1
            self.listening.clear()


class Subscriber:
    def __init__(self) -> None:
        self.payloads: list[str] = []
        self.connected = 0

    def heard(self, payload: str) -> None:
        self.payloads.append(payload)

    def caught_up(self) -> None:
        self.connected += 1


async def started(clock: FakeClock, hub: NotificationHub) -> None:
    hub.start()
    await clock.settle()


async def test_one_connection_listens_on_every_channel_and_dispatches_per_channel(
    clock: FakeClock,
) -> None:
    server = FakeServer()
    hub = NotificationHub(server.connect, clock, ping_interval=PING)
    settings, requests, also_settings = Subscriber(), Subscriber(), Subscriber()
    hub.subscribe("settings", settings.heard, settings.caught_up)
    hub.subscribe("requests", requests.heard, requests.caught_up)
    hub.subscribe("settings", also_settings.heard, also_settings.caught_up)
    await started(clock, hub)
    assert hub.connected.is_set()
    assert (server.opened, server.open_now) == (1, 1)
    assert sorted(server.listening) == ["requests", "settings"]
    server.notify("settings", "probe")
    server.notify("requests", "report")
    server.notify("other", "nobody")
    assert settings.payloads == ["probe"] and also_settings.payloads == ["probe"]
    assert requests.payloads == ["report"]
    assert [s.connected for s in (settings, requests, also_settings)] == [1, 1, 1]
    await clock.advance(PING * 3)
    assert server.pings == 3
    await hub.close()
    assert server.open_now == 0
    assert not hub.connected.is_set()


async def test_a_lost_connection_is_logged_once_reopened_and_every_subscriber_told(
    clock: FakeClock,
) -> None:
    server = FakeServer()
    hub = NotificationHub(server.connect, clock, ping_interval=PING)
    settings, requests = Subscriber(), Subscriber()
    hub.subscribe("settings", settings.heard, settings.caught_up)
    hub.subscribe("requests", requests.heard, requests.caught_up)
    with capture_logs() as logs:
        await started(clock, hub)
        server.broken = True
        await clock.advance(PING)  # the ping finds the connection gone
        assert not hub.connected.is_set()
        for _ in range(6):  # reconnects keep failing, with back-off
            await clock.advance(timedelta(seconds=10))
        assert server.opened == 1
        server.broken = False
        await clock.advance(timedelta(seconds=10))
        assert hub.connected.is_set()
        server.notify("requests", "report")
        await hub.close()
    assert [settings.connected, requests.connected] == [2, 2]
    assert requests.payloads == ["report"]
    assert server.opened == 2
    events = [e["event"] for e in logs if e["log_level"] != "debug"]
    assert events == [
        "notification_listener_started",
        "notification_listener_lost",
        "notification_listener_started",
        "notification_listener_resumed",
    ]
    lost = next(e for e in logs if e["event"] == "notification_listener_lost")
    assert lost["error"] == "ConnectionResetError: connection lost"
    assert lost["retry_in_s"] == 0.5
    assert lost["channels"] == ["requests", "settings"]
    retries = [e["retry_in_s"] for e in logs if e["event"] == "notification_listener_retry"]
    assert retries == sorted(retries) and retries[-1] == 10.0


async def test_a_database_down_at_start_is_one_outage_and_subscribers_catch_up_once_up(
    clock: FakeClock,
) -> None:
    server = FakeServer()
    server.broken = True
    hub = NotificationHub(server.connect, clock, ping_interval=PING)
    settings = Subscriber()
    hub.subscribe("settings", settings.heard, settings.caught_up)
    with capture_logs() as logs:
        await started(clock, hub)
        await clock.advance(timedelta(seconds=5))
        assert settings.connected == 0
        server.broken = False
        await clock.advance(timedelta(seconds=10))
        await hub.close()
    assert settings.connected == 1
    events = [e["event"] for e in logs if e["log_level"] != "debug"]
    assert events == [
        "notification_listener_lost",
        "notification_listener_started",
        "notification_listener_resumed",
    ]


async def test_a_subscription_after_the_start_is_refused(clock: FakeClock) -> None:
    server = FakeServer()
    hub = NotificationHub(server.connect, clock, ping_interval=PING)
    await started(clock, hub)
    with pytest.raises(RuntimeError, match="subscribe\\('late'\\) after the hub started"):
        hub.subscribe("late", lambda _payload: None, lambda: None)
    await hub.close()


async def test_close_ends_a_hub_waiting_to_reconnect(clock: FakeClock) -> None:
    server = FakeServer()
    server.broken = True
    hub = NotificationHub(server.connect, clock, ping_interval=PING)
    await started(clock, hub)
    await asyncio.wait_for(hub.close(), 1)
    assert server.opened == 0
