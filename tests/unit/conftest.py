from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path

import pytest
import structlog

from financial.configs import Settings
from financial.pkg.observability.metrics import Metrics, setup_metrics
from financial.pkg.scheduler.clock import FakeClock
from tests.unit.scheduling import T0

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

# The loops each async unit test runs on (comma-separated), both by default: the worker runs on
# uvloop where it installs (WORKER_EVENT_LOOP=auto) and on asyncio's loop elsewhere.
LOOPS_VARIABLE = "TEST_EVENT_LOOPS"


def _loop_factories(names: str) -> dict[str, LoopFactory]:
    factories: dict[str, LoopFactory] = {}
    for name in (part.strip() for part in names.split(",") if part.strip()):
        if name == "asyncio":
            factories[name] = asyncio.new_event_loop
        elif name == "uvloop":
            try:
                import uvloop
            except ImportError as exc:
                raise pytest.UsageError(
                    f"{LOOPS_VARIABLE}={names!r}: uvloop does not import ({exc}); "
                    f"set {LOOPS_VARIABLE}=asyncio to run on asyncio's loop alone"
                ) from None
            factories[name] = uvloop.new_event_loop
        else:
            raise pytest.UsageError(f"{LOOPS_VARIABLE}={names!r}: expected asyncio, uvloop or both")
    if not factories:
        raise pytest.UsageError(f"{LOOPS_VARIABLE}={names!r}: expected asyncio, uvloop or both")
    return factories


LOOP_FACTORIES = _loop_factories(os.environ.get(LOOPS_VARIABLE, "asyncio,uvloop"))


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, LoopFactory]:
    """Every async test of the unit suite once per loop: `test_x[asyncio]`, `test_x[uvloop]`."""
    return LOOP_FACTORIES


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting leaks in from the machine running the tests, nor a stray .env: every variable
    a setting reads (the per-job, OTel and credentials ones too) is removed and the test runs in
    an empty folder. A module asks for it with `pytestmark = pytest.mark.usefixtures(...)`."""
    names = {name.upper() for name in Settings.model_fields} | {"CREDENTIALS_DIRECTORY"}
    for name in list(os.environ):
        upper = name.upper()
        if upper in names or upper.startswith(("WORKER_JOBS", "OTEL_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
async def metrics() -> AsyncIterator[Metrics]:
    """The worker's instruments on a registry of their own (see tests/unit/metrics_scrape.py)."""
    metrics = setup_metrics("financial-worker", instance_id="worker-1")
    yield metrics
    await metrics.shutdown()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Leave structlog, the root logger and the contextvars as the test found them."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)
