"""The worker's setting of the garbage collector (`collector.py`)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from financial.cmd.collector import YOUNG_THRESHOLD, tune_collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_start_up_objects_are_frozen_and_the_young_generation_collected_less_often() -> None:
    _, middle, old = gc.get_threshold()
    kept_from_start_up: list[list[int]] = [
        [] for _ in range(10)
    ]  # lists are tracked by the collector
    tune_collector()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)
    assert gc.get_freeze_count() >= len(kept_from_start_up)


@pytest.mark.usefixtures("restored_collector")
def test_a_threshold_below_one_is_refused() -> None:
    before = gc.get_threshold()
    with pytest.raises(ValueError, match="young generation threshold 0: expected >= 1"):
        tune_collector(0)
    assert gc.get_threshold() == before
