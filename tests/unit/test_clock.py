"""The clocks: the real one never wakes early and notices wall-clock steps; the fake one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from financial.pkg.scheduler.clock import FakeClock, SystemClock


class SteppedClock(SystemClock):
    """A real clock whose wall time is stepped forward by the test (an NTP step, a resume)."""

    def __init__(self) -> None:
        super().__init__(max_sleep=timedelta(milliseconds=5))
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return super().now() + self.offset


async def test_system_clock_notices_a_wall_clock_step_within_its_slice() -> None:
    clock = SteppedClock()
    deadline = clock.now() + timedelta(hours=1)
    sleeper = asyncio.create_task(clock.sleep_until(deadline))
    await asyncio.sleep(0.01)
    assert not sleeper.done()
    clock.offset = timedelta(hours=2)  # the wall clock jumps past the deadline
    assert await asyncio.wait_for(sleeper, timeout=1.0) is True


async def test_system_clock_never_returns_before_the_deadline() -> None:
    clock = SystemClock()
    deadline = clock.now() + timedelta(milliseconds=20)
    assert await clock.sleep_until(deadline) is True
    assert clock.now() >= deadline


async def test_system_clock_sleep_is_woken_by_its_event() -> None:
    clock = SystemClock()
    wake = asyncio.Event()
    sleeper = asyncio.create_task(clock.sleep_until(clock.now() + timedelta(hours=1), wake))
    await asyncio.sleep(0)
    wake.set()
    assert await asyncio.wait_for(sleeper, timeout=1.0) is False


class LeadClock(SteppedClock):
    """A stepped clock whose precise finish starts an hour before any deadline, so a test can
    act while a sleeper is in its last stretch (yielding to the loop, not on a timer)."""

    def __init__(self) -> None:
        SystemClock.__init__(
            self, max_sleep=timedelta(milliseconds=5), precise_lead=timedelta(hours=1)
        )
        self.offset = timedelta(0)


async def yield_to_loop(times: int = 20) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


async def test_system_clock_without_a_precise_lead_never_returns_before_the_deadline() -> None:
    clock = SystemClock(precise_lead=timedelta(0))
    deadline = clock.now() + timedelta(milliseconds=20)
    assert await clock.sleep_until(deadline) is True
    assert clock.now() >= deadline


async def test_system_clock_in_its_last_stretch_lets_other_tasks_run() -> None:
    clock = LeadClock()
    wake = asyncio.Event()
    sleeper = asyncio.create_task(clock.sleep_until(clock.now() + timedelta(minutes=30), wake))
    steps = 0
    for _ in range(10):
        await asyncio.sleep(0)
        steps += 1
    assert steps == 10
    assert not sleeper.done()
    wake.set()
    assert await asyncio.wait_for(sleeper, timeout=1.0) is False


async def test_system_clock_in_its_last_stretch_is_woken_by_its_event() -> None:
    clock = LeadClock()
    wake = asyncio.Event()
    sleeper = asyncio.create_task(clock.sleep_until(clock.now() + timedelta(minutes=30), wake))
    await yield_to_loop()
    wake.set()
    assert await asyncio.wait_for(sleeper, timeout=1.0) is False


async def test_system_clock_in_its_last_stretch_notices_a_forward_step() -> None:
    clock = LeadClock()
    sleeper = asyncio.create_task(clock.sleep_until(clock.now() + timedelta(minutes=30)))
    await yield_to_loop()
    assert not sleeper.done()
    clock.offset = timedelta(hours=2)
    assert await asyncio.wait_for(sleeper, timeout=1.0) is True


async def test_system_clock_in_its_last_stretch_sleeps_on_after_a_backward_step() -> None:
    clock = LeadClock()
    deadline = clock.now() + timedelta(minutes=30)
    sleeper = asyncio.create_task(clock.sleep_until(deadline))
    await yield_to_loop()
    clock.offset = -timedelta(hours=3)  # the deadline is now 3.5 h away: back to the timer
    await asyncio.sleep(0.02)
    assert not sleeper.done()
    clock.offset = timedelta(hours=1)
    assert await asyncio.wait_for(sleeper, timeout=1.0) is True
    assert clock.now() >= deadline


async def test_system_clock_woken_after_its_deadline_reports_the_deadline_reached() -> None:
    clock = SystemClock()
    wake = asyncio.Event()
    wake.set()
    assert await clock.sleep_until(clock.now() - timedelta(seconds=1), wake) is True


async def test_fake_clock_wakes_sleepers_in_deadline_order() -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    woke: list[int] = []

    async def sleep(seconds: int) -> None:
        await clock.sleep(timedelta(seconds=seconds))
        woke.append(seconds)

    tasks = [asyncio.create_task(sleep(s)) for s in (30, 10, 20)]
    await clock.advance(25)
    assert woke == [10, 20]
    await clock.advance(5)
    assert woke == [10, 20, 30]
    await asyncio.gather(*tasks)


async def test_fake_timeout_expires_at_the_fake_deadline() -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    scope = clock.timeout_at(clock.now() + timedelta(seconds=5))

    async def body() -> None:
        async with scope:
            await clock.sleep(timedelta(minutes=1))

    task = asyncio.create_task(body())
    await clock.advance(4)
    assert not task.done()
    await clock.advance(1)
    with pytest.raises(TimeoutError):
        await task
    assert scope.expired()


@pytest.mark.parametrize("clock", [SystemClock(), FakeClock()], ids=["system", "fake"])
async def test_a_wait_on_a_past_deadline_still_yields_to_the_loop(clock: SystemClock) -> None:
    # A loop waiting on a past deadline must let the work it waits for go on (STYLE 12): a
    # wait that returns without yielding spins the event loop and starves everything else.
    ran = asyncio.Event()

    async def other() -> None:
        ran.set()

    passes = 0
    asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(other()))
    while not ran.is_set() and passes < 100:
        passes += 1
        await clock.sleep_until(clock.now() - timedelta(seconds=1))
    assert ran.is_set()
    assert passes <= 3


async def test_a_woken_wait_still_yields_to_the_loop() -> None:
    clock = SystemClock()
    wake = asyncio.Event()
    wake.set()
    order: list[str] = []
    asyncio.get_running_loop().call_soon(lambda: order.append("other"))
    await clock.sleep_until(clock.now() + timedelta(hours=1), wake)
    order.append("waiter")
    assert order == ["other", "waiter"]
