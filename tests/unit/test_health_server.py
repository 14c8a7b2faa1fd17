"""The health server over loopback HTTP: probes, metrics, the page's headers, binding errors."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import aiohttp
import pytest

from financial.pkg.health import (
    Check,
    HealthServer,
    HealthServerError,
    MetricsExposition,
    start_health_server,
)
from financial.pkg.health import server as server_module
from financial.pkg.observability.metrics import Metrics
from tests.unit.health_fakes import NOW, FakeSource, sample_jobs

Get = Callable[[str], Awaitable[tuple[int, dict[str, str], str]]]


@pytest.fixture
def source() -> FakeSource:
    return FakeSource(job_list=sample_jobs())


@pytest.fixture
async def server(source: FakeSource, metrics: Metrics) -> AsyncIterator[HealthServer]:
    server = await start_health_server(
        "127.0.0.1", 0, source, metrics=metrics, stall_after=timedelta(seconds=15)
    )
    yield server
    await server.close()


@pytest.fixture
async def get(server: HealthServer) -> AsyncIterator[Get]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:

        async def fetch(path: str) -> tuple[int, dict[str, str], str]:
            async with session.get(server.url + path) as response:
                return response.status, dict(response.headers), await response.text()

        yield fetch


async def test_livez_is_ok_with_a_fresh_heartbeat(get: Get, source: FakeSource) -> None:
    source.heartbeat = NOW - timedelta(seconds=4)
    status, headers, body = await get("/livez")
    assert status == 200
    assert body == "ok\n[+]scheduler_loop ok: heartbeat 4.0 s ago\n"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Cache-Control"] == "no-store"


async def test_livez_fails_when_the_loop_stalled(get: Get, source: FakeSource) -> None:
    source.heartbeat = NOW - timedelta(seconds=16)
    status, _, body = await get("/livez")
    assert status == 503
    assert "stalled: last heartbeat 16.0 s ago, limit 15 s" in body


async def test_livez_ignores_the_database_entirely(get: Get, source: FakeSource) -> None:
    source.checks = [Check("database", False, "connection refused")]
    source.readiness_error = ConnectionError("down")
    assert (await get("/livez"))[0] == 200


@pytest.mark.parametrize("case", ["starting", "draining"])
async def test_livez_is_ok_before_the_loop_starts_and_while_draining(
    get: Get, source: FakeSource, case: str
) -> None:
    if case == "starting":
        source.heartbeat = None
    else:
        source.heartbeat = NOW - timedelta(minutes=5)
        source.is_draining = True
    status, _, body = await get("/livez")
    assert status == 200
    assert case in body


async def test_readyz_lists_every_check(get: Get, source: FakeSource) -> None:
    source.checks = [Check("database", True), Check("migrations", True)]
    status, _, body = await get("/readyz")
    assert (status, body) == (200, "ok\n[+]database ok\n[+]migrations ok\n")
    source.checks = [Check("database", False, "ConnectionRefusedError: [Errno 111]")]
    status, _, body = await get("/readyz")
    assert status == 503
    assert body == "not ok\n[-]database failed: ConnectionRefusedError: [Errno 111]\n"


async def test_readyz_fails_when_the_checks_raise_or_hang(
    get: Get, source: FakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    source.readiness_error = RuntimeError("postgresql://app:hunter2@db:5432/x is gone")
    status, _, body = await get("/readyz")
    assert status == 503
    assert "RuntimeError" in body and "hunter2" not in body

    monkeypatch.setattr(server_module, "SOURCE_TIMEOUT_S", 0.01)
    source.readiness_error, source.hang = None, True
    status, _, body = await get("/readyz")
    assert status == 503
    assert "took longer than 0.01 s" in body


async def test_metrics_in_prometheus_text_format(get: Get, metrics: Metrics) -> None:
    metrics.known_jobs(["outbox_relay"])
    status, headers, body = await get("/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=")
    assert "# TYPE financial_worker_runs_total counter" in body
    assert 'financial_worker_runs_total{job="outbox_relay",status="succeeded"} 0.0' in body


async def test_the_status_page_is_html_that_allows_nothing_external(get: Get) -> None:
    status, headers, body = await get("/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "outbox_relay" in body and "report_generator" in body
    assert "<script>" not in body


async def test_the_status_page_renders_when_the_jobs_cannot_be_read(
    get: Get, source: FakeSource
) -> None:
    source.jobs_error = ConnectionError("amqp://guest:s3cret@broker/ unreachable")
    status, _, body = await get("/")
    assert status == 200
    assert "Jobs unavailable" in body and "s3cret" not in body


async def test_without_metrics_the_endpoint_is_404(source: FakeSource) -> None:
    server = await start_health_server("127.0.0.1", 0, source)
    try:
        async with aiohttp.ClientSession() as session, session.get(server.url + "/metrics") as r:
            assert r.status == 404
    finally:
        await server.close()


async def test_an_address_in_use_is_a_clear_error(source: FakeSource) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(HealthServerError, match=f"cannot listen on 127.0.0.1:{port}"):
            await start_health_server("127.0.0.1", port, source)


async def test_close_releases_the_port(source: FakeSource) -> None:
    server = await start_health_server("127.0.0.1", 0, source)
    port = server.port
    await server.close()
    again = await start_health_server("127.0.0.1", port, source)
    await again.close()


def test_metrics_fit_the_exposition_protocol(metrics: Metrics) -> None:
    exposition: MetricsExposition = metrics
    assert exposition.content_type == metrics.content_type
