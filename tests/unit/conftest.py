from __future__ import annotations

import pytest

from financial.pkg.scheduler.clock import FakeClock
from tests.unit.scheduling import T0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)
