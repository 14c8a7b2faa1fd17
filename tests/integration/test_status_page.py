"""The status page in a real browser and from real workers.

First, headless Chromium at a phone's width, as a person sees it: the health server runs on
loopback with a fake source; Chromium (Debian's package, installed by
`scripts/ensure-test-tools.sh`) renders `/` and a job's page. `--dump-dom` gives the page after
layout, from which the text a person can see is taken (not what sits in a closed `<details>`);
`--screenshot` gives the picture, whose pixels must show the coloured run squares.

Then two real `financial worker` replicas on one PostgreSQL: each one's page shows the runs of
both (read from the database, in one batched query), and neither accepts a write.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import struct
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import asyncpg
import pytest

from financial.pkg.health import HealthServer, start_health_server
from financial.pkg.health.status_page import STATUS_COLOURS
from financial.pkg.jobs.model import RunStatus
from tests.integration.services import free_port
from tests.integration.worker_process import WorkerProcess
from tests.unit.health_fakes import FakeSource, sample_jobs

pytestmark = pytest.mark.integration

PHONE = (375, 800)
CHROMIUM_TIMEOUT_S = 90.0


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: run scripts/ensure-test-tools.sh (make test does)")
    return path


async def run_chromium(tmp: Path, url: str, *args: str) -> bytes:
    """Run headless Chromium on `url`; its stdout. The loop keeps serving meanwhile."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={tmp / 'profile'}",
        f"--window-size={PHONE[0]},{PHONE[1]}",
        *args,
        url,
    ]
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CHROMIUM_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"chromium did not finish within {CHROMIUM_TIMEOUT_S:g} s")
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {err.decode()[-2000:]}"
    return out


@pytest.fixture
async def server() -> AsyncIterator[HealthServer]:
    source = FakeSource(job_list=sample_jobs())
    server = await start_health_server("127.0.0.1", 0, source, title="financial-worker · w-1")
    yield server
    await server.close()


class VisibleText(HTMLParser):
    """Text a person sees: no <head>, no <style>, nothing in a closed <details> but its summary."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0  # depth inside hidden elements
        self._stack: list[tuple[str, bool]] = []
        self._closed_details = 0
        self.titles: list[tuple[str, str]] = []  # (class, title) of elements with a tooltip

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("meta", "link", "br", "img", "input"):
            return
        hides = tag in ("head", "style", "script", "title")
        if tag == "details" and "open" not in values:
            self._closed_details += 1
        elif self._closed_details and tag != "summary" and not self._in("summary"):
            hides = True
        self._stack.append((tag, hides))
        self._hidden += hides
        if values.get("title"):
            self.titles.append((values.get("class") or "", values["title"] or ""))

    def _in(self, tag: str) -> bool:
        return any(name == tag for name, _ in self._stack)

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            name, hides = self._stack.pop()
            self._hidden -= hides
            if name == "details" and self._closed_details:
                self._closed_details -= 1
            if name == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self._hidden and data.strip():
            self.parts.append(" ".join(data.split()))

    @property
    def text(self) -> str:
        return " ".join(self.parts)


def png_pixels(path: Path) -> tuple[int, int, set[tuple[int, int, int]]]:
    """Width, height and the set of RGB colours of an 8-bit, non-interlaced PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and interlace == 0 and colour_type in (2, 6), header
    channels = 4 if colour_type == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    colours: set[tuple[int, int, int]] = set()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        for x in range(0, stride, channels):
            colours.add((line[x], line[x + 1], line[x + 2]))
        previous = line
    return width, height, colours


def rgb(hex_colour: str) -> tuple[int, int, int]:
    value = hex_colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


async def test_a_person_on_a_phone_sees_every_job_its_state_and_the_legend(
    server: HealthServer, tmp_path: Path
) -> None:
    dom = (await run_chromium(tmp_path, server.url + "/", "--dump-dom")).decode()
    page = VisibleText()
    page.feed(dom)
    text = page.text

    for name in ("database_cleanup", "outbox_relay", "report_generator"):
        assert name in text
    assert "financial-worker · w-1" in text
    assert "live" in text and "ready" in text
    assert "CRON_TZ=America/Sao_Paulo 0 8 * * 1" in text
    assert "Mon 2026-03-09 08:00:00 -03" in text and "2026-03-09 11:00:00 UTC" in text
    assert "paused" in text
    assert any(t == "maintenance window" for _, t in page.titles)  # the badge's tooltip
    # Failing first (its last run failed), the paused job last.
    assert text.index("report_generator") < text.index("outbox_relay")
    assert text.index("outbox_relay") < text.index("database_cleanup")
    # The overview shows no run's details but in its squares' tooltips.
    assert "error ConnectionError: broker down" not in text
    tooltips = [title for cls, title in page.titles if cls.startswith("run ")]
    assert any("error ConnectionError: broker down" in t for t in tooltips)
    assert any("ValueError: <script>alert('x')</script> bad & worse" in t for t in tooltips)
    legend = text[text.index("Legend") :]
    for status in RunStatus:
        assert f"{status.value} (" in legend
    # Escaped text stayed text: the browser built no script element from it.
    assert "<script" not in dom.split("</head>", 1)[1].replace("&lt;script", "")


async def test_the_screenshot_at_phone_width_shows_the_coloured_runs(
    server: HealthServer, tmp_path: Path
) -> None:
    shot = tmp_path / "status-375.png"
    await run_chromium(tmp_path, server.url + "/", f"--screenshot={shot}")
    assert shot.exists(), "chromium wrote no screenshot"
    width, height, colours = png_pixels(shot)
    assert (width, height) == PHONE
    # The squares of the outbox relay's strip are on the first screen: each status's colour
    # is in the picture (the failing report generator's row comes first, with two runs).
    for status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.MISSED):
        colour = rgb(STATUS_COLOURS[status][0])
        assert colour in colours, f"{status.value} {colour} not on screen; see {shot}"


async def test_a_jobs_page_on_a_phone_shows_its_chart_and_history(
    server: HealthServer, tmp_path: Path
) -> None:
    url = server.url + "/jobs/outbox_relay"
    dom = (await run_chromium(tmp_path, url, "--dump-dom")).decode()
    page = VisibleText()
    page.feed(dom)
    assert "History (9 runs, newest first)" in page.text
    assert "error ConnectionError: broker down" in page.text
    assert "<svg" in dom and "<circle" in dom
    shot = tmp_path / "job-375.png"
    await run_chromium(tmp_path, url, f"--screenshot={shot}")
    width, _, colours = png_pixels(shot)
    assert width == PHONE[0]
    # The chart's dots are drawn: the failed run's red is on the first screen.
    assert rgb(STATUS_COLOURS[RunStatus.FAILED][0]) in colours


# -- real workers ---------------------------------------------------------------------------------


def http(method: str, url: str) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, data=b"{}" if method != "GET" else None)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def final_run_ids(dsn: str) -> set[str]:
    async def query() -> set[str]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT run_id FROM job_runs WHERE job = 'tick' AND status = 'succeeded'"
            )
        finally:
            await conn.close()
        return {str(row["run_id"]) for row in rows}

    return asyncio.run(query())


def test_two_replicas_each_show_every_run_and_refuse_writes(
    database_dsn: str, open_tmp_path: Path
) -> None:
    ports = [free_port(), free_port()]
    workers = [
        WorkerProcess(
            "worker",
            cwd=open_tmp_path,
            env={
                "DATABASE_URL": database_dsn,
                "WORKER_JOB_MODULES": "tests.fixtures.worker_jobs",
                "WORKER_ID": f"replica-{n}",
                "WORKER_HEALTH_ADDR": f"127.0.0.1:{port}",
                "WORKER_SHUTDOWN_TIMEOUT_SECONDS": "5",
            },
        )
        for n, port in enumerate(ports)
    ]
    try:
        for worker in workers:
            worker.wait_event("worker_started", timeout_s=60)
        deadline = time.monotonic() + 30
        while len(ran := final_run_ids(database_dsn)) < 4 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(ran) >= 4, ran
        base = f"http://127.0.0.1:{ports[0]}"
        status, overview = http("GET", base + "/")
        assert status == 200
        # Enabled jobs first; the disabled ones badged; each row links to the job's page.
        assert overview.index('id="job-tick"') < overview.index('id="job-batches"')
        assert '<a href="/jobs/batches">batches</a> <span class="badge">disabled</span>' in overview
        assert 'class="run s-succeeded"' in overview
        assert "<script" not in overview

        status, job_page = http("GET", base + "/jobs/tick")
        assert status == 200
        # Every run that had succeeded before the request is listed, whichever replica ran it.
        shown = set(re.findall(r'<li id="run-([0-9a-f-]+)">', job_page))
        assert ran <= shown
        runners = set(re.findall(r'<span class="sub">on (replica-[01])</span>', job_page))
        assert runners and runners <= {"replica-0", "replica-1"}
        assert '<svg class="chart"' in job_page and job_page.count("<circle ") >= len(ran)

        status, missing = http("GET", base + "/jobs/no_such_job")
        assert (status, missing) == (
            404,
            "no job named 'no_such_job': see / for every registered job\n",
        )
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            for path in ("/", "/jobs/tick", "/metrics"):
                assert http(method, base + path)[0] == 405, (method, path)
        for worker in workers:
            worker.signal(signal.SIGTERM)
        assert [worker.wait_exit() for worker in workers] == [0, 0]
    finally:
        for worker in workers:
            worker.kill()
