"""The health server (aiohttp): `/livez`, `/readyz`, `/metrics` and the status page at `/`.

It runs on the worker's own event loop, on purpose: a job that blocks the loop blocks the probes
too, the kubelet's probe times out, and that counts as the failure it is. Every answer is
uncached; the page also carries a Content-Security-Policy that allows no script and nothing from
elsewhere, so even a job name or error message that escaped escaping could not run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import structlog
from aiohttp import web

from financial.pkg.health.model import Check, HealthSource, JobStatus, MetricsExposition
from financial.pkg.health.probes import liveness, probe_body
from financial.pkg.health.status_page import (
    JobReport,
    StatusReport,
    render_job_page,
    render_overview,
)
from financial.pkg.observability.logging import mask_secrets

__all__ = [
    "DEFAULT_STALL_AFTER",
    "HealthServer",
    "HealthServerError",
    "start_health_server",
]

log = structlog.get_logger("financial.health")

DEFAULT_STALL_AFTER = timedelta(seconds=15)
"""A heartbeat older than this is a stalled loop: three beats of the worker's 5 s heartbeat."""

SOURCE_TIMEOUT_S = 5.0
"""Bound on one call into the source, below the kubelet's usual probe timeout budget."""

SHUTDOWN_TIMEOUT_S = 1.0
"""How long closing waits for open requests (a scrape, a probe) before dropping them."""

_TEXT = "text/plain; charset=utf-8"
_HTML = "text/html; charset=utf-8"
_COMMON_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
}


class HealthServerError(RuntimeError):
    """The server could not listen on its address (in use, not local, no permission)."""


@dataclass(slots=True)
class HealthServer:
    """A running health server; `close()` goes on the worker's `AsyncExitStack`."""

    host: str
    port: int
    _runner: web.AppRunner = field(repr=False)

    @property
    def url(self) -> str:
        """Base URL of the server (the first address it listens on)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        """Stop listening, give open requests `SHUTDOWN_TIMEOUT_S`, release the socket."""
        await self._runner.cleanup()


async def start_health_server(
    host: str,
    port: int,
    source: HealthSource,
    *,
    metrics: MetricsExposition | None = None,
    stall_after: timedelta = DEFAULT_STALL_AFTER,
    title: str = "financial worker",
) -> HealthServer:
    """Listen on `host:port` (port 0 picks a free one; an empty host means every interface).

    `/livez` is 200 unless the scheduler loop's heartbeat is older than `stall_after`;
    `/readyz` is 200 when every check of `source.readiness()` passes, else 503 with the
    failing ones; `/metrics` renders `metrics` (404 without); `/` is the status page's
    overview and `/jobs/<name>` a job's page (404 for a name no job has). The server is
    read-only: any method but GET and HEAD is 405 on every path, so reaching the page never
    means being able to change a job. Raises `HealthServerError` when the address cannot be
    bound.
    """
    handlers = _Handlers(source, metrics, stall_after, title)
    app = web.Application(middlewares=[_common_headers, _read_only])
    app.router.add_get("/livez", handlers.livez)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/", handlers.status_page)
    app.router.add_get("/jobs/{name:.+}", handlers.job_page)
    # No access log: probes and scrapes every few seconds would drown the worker's own events.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    site = web.TCPSite(runner, host or None, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise HealthServerError(
            f"health server cannot listen on {host or '*'}:{port}: {exc.strerror or exc}"
        ) from exc
    bound = runner.addresses[0]
    server = HealthServer(host=str(bound[0]), port=int(bound[1]), _runner=runner)
    log.info("health_server_started", url=server.url, stall_after_s=stall_after.total_seconds())
    return server


@web.middleware
async def _common_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    response.headers.update(_COMMON_HEADERS)
    return response


_READ_METHODS = frozenset({"GET", "HEAD"})


@web.middleware
async def _read_only(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    # Before routing's own answer, so an unknown path is refused alike: nothing here writes.
    if request.method not in _READ_METHODS:
        return web.Response(
            text=f"{request.method} is not allowed: this server is read-only (GET, HEAD)\n",
            status=405,
            headers={"Content-Type": _TEXT, "Allow": "GET, HEAD"},
        )
    return await handler(request)


class _Handlers:
    def __init__(
        self,
        source: HealthSource,
        metrics: MetricsExposition | None,
        stall_after: timedelta,
        title: str,
    ) -> None:
        self._source = source
        self._metrics = metrics
        self._stall_after = stall_after
        self._title = title

    def _liveness(self) -> Check:
        return liveness(
            last_heartbeat=self._source.last_heartbeat(),
            now=self._source.now(),
            stall_after=self._stall_after,
            draining=self._source.draining(),
        )

    async def _readiness(self) -> Sequence[Check]:
        try:
            async with asyncio.timeout(SOURCE_TIMEOUT_S):
                return await self._source.readiness()
        except TimeoutError:
            return [Check("readiness", False, f"checks took longer than {SOURCE_TIMEOUT_S:g} s")]
        except Exception as exc:
            log.warning("readiness_check_crashed", error=_error_text(exc))
            return [Check("readiness", False, f"checks raised {_error_text(exc)}")]

    async def _jobs(self) -> tuple[Sequence[JobStatus], str | None]:
        try:
            async with asyncio.timeout(SOURCE_TIMEOUT_S):
                return await self._source.jobs(), None
        except TimeoutError:
            return [], f"reading the jobs took longer than {SOURCE_TIMEOUT_S:g} s"
        except Exception as exc:
            log.warning("status_jobs_crashed", error=_error_text(exc))
            return [], _error_text(exc)

    async def livez(self, request: web.Request) -> web.Response:
        ok, body = probe_body([self._liveness()])
        return _text(body, 200 if ok else 503)

    async def readyz(self, request: web.Request) -> web.Response:
        ok, body = probe_body(await self._readiness())
        return _text(body, 200 if ok else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        if self._metrics is None:
            return _text("metrics are not enabled\n", 404)
        body = await self._metrics.render()
        return web.Response(body=body, headers={"Content-Type": self._metrics.content_type})

    async def status_page(self, request: web.Request) -> web.Response:
        readiness, (jobs, jobs_error) = await asyncio.gather(self._readiness(), self._jobs())
        report = StatusReport(
            title=self._title,
            now=self._source.now(),
            liveness=self._liveness(),
            readiness=readiness,
            jobs=jobs,
            jobs_error=jobs_error,
        )
        return _html(render_overview(report), 200)

    async def job_page(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            async with asyncio.timeout(SOURCE_TIMEOUT_S):
                job = await self._source.job(name)
        except TimeoutError:
            return _text(f"reading job {name!r} took longer than {SOURCE_TIMEOUT_S:g} s\n", 503)
        except Exception as exc:
            log.warning("status_job_crashed", job=name, error=_error_text(exc))
            return _text(f"job {name!r} unavailable: {_error_text(exc)}\n", 503)
        if job is None:
            # Plain text: the name is never interpreted, whatever it holds.
            return _text(f"no job named {name!r}: see / for every registered job\n", 404)
        report = JobReport(
            title=self._title,
            now=self._source.now(),
            liveness=self._liveness(),
            readiness=await self._readiness(),
            job=job,
        )
        return _html(render_job_page(report), 200)


def _html(body: str, status: int) -> web.Response:
    return web.Response(text=body, status=status, headers={"Content-Type": _HTML, **_PAGE_HEADERS})


def _text(body: str, status: int) -> web.Response:
    return web.Response(text=body, status=status, headers={"Content-Type": _TEXT})


def _error_text(exc: BaseException) -> str:
    return mask_secrets(f"{type(exc).__name__}: {exc}")
