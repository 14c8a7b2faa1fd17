"""The health server's job pages and its read-only rule, over loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from financial.pkg.health import HealthServer, start_health_server
from tests.unit.health_fakes import FakeSource, sample_jobs


@pytest.fixture
def source() -> FakeSource:
    return FakeSource(job_list=sample_jobs())


@pytest.fixture
async def server(source: FakeSource) -> AsyncIterator[HealthServer]:
    server = await start_health_server("127.0.0.1", 0, source)
    yield server
    await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def test_a_jobs_page_is_served_with_the_pages_headers(
    server: HealthServer, session: aiohttp.ClientSession
) -> None:
    async with session.get(server.url + "/jobs/outbox_relay") as response:
        body = await response.text()
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "<h1>outbox_relay</h1>" in body
    assert "History (9 runs, newest first)" in body
    assert "<script" not in body


async def test_an_unknown_job_is_404_naming_it_as_plain_text(
    server: HealthServer, session: aiohttp.ClientSession
) -> None:
    async with session.get(server.url + "/jobs/%3Cb%3Enope%3C%2Fb%3E") as response:
        assert response.status == 404
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert await response.text() == (
            "no job named '<b>nope</b>': see / for every registered job\n"
        )


async def test_a_job_that_cannot_be_read_is_503_without_secrets(
    server: HealthServer, session: aiohttp.ClientSession, source: FakeSource
) -> None:
    source.jobs_error = ConnectionError("postgresql://app:hunter2@db/x refused")
    async with session.get(server.url + "/jobs/outbox_relay") as response:
        text = await response.text()
        assert response.status == 503
    assert "ConnectionError" in text and "hunter2" not in text


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("path", ["/", "/jobs/outbox_relay", "/readyz", "/no/such/path"])
async def test_only_get_and_head_are_allowed_anywhere(
    server: HealthServer, session: aiohttp.ClientSession, method: str, path: str
) -> None:
    async with session.request(method, server.url + path, data=b"{}") as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET, HEAD"
        assert "read-only" in await response.text()


async def test_head_is_answered(server: HealthServer, session: aiohttp.ClientSession) -> None:
    async with session.head(server.url + "/jobs/outbox_relay") as response:
        assert response.status == 200
