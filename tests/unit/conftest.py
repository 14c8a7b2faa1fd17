from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from financial.pkg.scheduler.clock import FakeClock
from tests.unit.scheduling import T0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


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
