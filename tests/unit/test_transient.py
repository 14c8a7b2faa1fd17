"""Which database errors are worth another try, and the back-off between tries."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from financial.pkg.database.transient import backoff_delays, is_transient, retrying


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        ConnectionResetError(),
        FileNotFoundError(2, "No such file or directory"),  # a Unix socket not there yet
        TimeoutError(),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.SerializationError("could not serialize access"),
        asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed"),
        asyncpg.InternalClientError(
            "cannot switch to state 11; another operation (2) is in progress"
        ),
    ],
)
def test_connection_level_errors_are_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.UndefinedTableError('relation "job_runs" does not exist'),
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        ValueError("bad argument"),
    ],
)
def test_errors_of_the_call_itself_are_not(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_backoff_doubles_up_to_two_seconds_within_the_budget() -> None:
    assert backoff_delays(1.0) == [0.05, 0.1, 0.2, 0.4]
    delays = backoff_delays(30.0)
    assert max(delays) == 2.0 and sum(delays) <= 30.0
    assert backoff_delays(0) == []


async def test_retrying_goes_through_transient_errors_and_stops_at_others() -> None:
    waits: list[float] = []

    async def no_sleep(delay: float) -> None:
        waits.append(delay)

    outcomes: list[BaseException | str] = [ConnectionResetError(), TimeoutError(), "done"]

    async def flaky() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    assert await retrying(flaky, budget_s=10, what="probe", sleep=no_sleep) == "done"
    assert len(waits) == 2

    async def broken() -> str:
        raise asyncpg.UndefinedTableError("no table")

    with pytest.raises(asyncpg.UndefinedTableError):
        await retrying(broken, budget_s=10, what="probe", sleep=no_sleep)
    assert len(waits) == 2

    async def down() -> str:
        raise ConnectionRefusedError()

    with pytest.raises(ConnectionRefusedError):
        await retrying(down, budget_s=1.0, what="probe", sleep=no_sleep)
    assert len(waits) == 2 + len(backoff_delays(1.0))


async def test_a_call_that_never_answers_fails_when_the_budget_is_spent() -> None:
    # A frozen server or black-holed traffic: the call hangs rather than failing. The budget
    # bounds it in time, so the caller gets an error instead of waiting forever.
    answered = asyncio.Event()

    async def hangs() -> str:
        await answered.wait()
        return "never"

    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(TimeoutError):
        await retrying(hangs, budget_s=0, what="probe", limit_s=0.05)
    assert loop.time() - began < 1.0
