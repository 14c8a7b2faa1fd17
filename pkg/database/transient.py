"""Transient database errors, and retrying a call through them with back-off (STYLE rule 7).

A transient error is one a later identical call may not meet: the connection dropped, the
server is restarting or shutting down, it refused a connection for now, a call timed out, a
transaction lost a serialization race. Anything else (a bad query, a constraint) is raised at
once. Only calls that are safe to repeat go through `retrying`: each of them either changes
nothing the second time or finds what its first try did.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import structlog

from financial.pkg.observability.dependencies import DATABASE, dependencies

log = structlog.get_logger("financial.database")

T = TypeVar("T")

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    # Refused, reset or unreachable (ConnectionError is an OSError), and connect/acquire timeouts.
    OSError,
    TimeoutError,
    # SQLSTATE class 08 (connection exception), including a connection that died mid-call.
    asyncpg.PostgresConnectionError,
    # 57P01 terminated by an administrator or a fast shutdown, 57P02 a crash of another backend,
    # 57P03 the server is starting up or shutting down.
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    # 53300: every connection slot is taken for now.
    asyncpg.TooManyConnectionsError,
    # 40001 / 40P01: a serialization failure or a deadlock; the transaction can be tried again.
    asyncpg.TransactionRollbackError,
    # A pooled connection whose backend was terminated while idle can fail its next call with
    # "cannot switch to state N; another operation is in progress" (MagicStack/asyncpg#1069):
    # the pool drops that connection, and the next try gets a fresh one.
    asyncpg.InternalClientError,
)

# asyncpg's InterfaceError also covers misuse of the driver; only these messages mean that the
# connection went away under us.
_CLOSED_CONNECTION_MESSAGES = ("connection is closed", "connection was closed")

FIRST_DELAY_S = 0.05
MAX_DELAY_S = 2.0
# The least time a call is given in all, whatever its retry budget (a budget of 0: one try).
MIN_CALL_S = 5.0


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is worth trying the same call again for."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        message = str(exc).lower()
        return any(text in message for text in _CLOSED_CONNECTION_MESSAGES)
    return False


def backoff_delays(budget_s: float) -> list[float]:
    """The waits between tries: doubling from 50 ms up to 2 s, within `budget_s` in total."""
    delays: list[float] = []
    delay, total = FIRST_DELAY_S, 0.0
    while total + delay <= budget_s:
        delays.append(delay)
        total += delay
        delay = min(delay * 2, MAX_DELAY_S)
    return delays


async def retrying(
    call: Callable[[], Awaitable[T]],
    *,
    budget_s: float,
    what: str,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    limit_s: float | None = None,
) -> T:
    """Await `call()`; on a transient error wait and try again, for about `budget_s` at most.

    The whole call is bounded in time, not only the waits between tries: a try that hangs (a
    frozen server, traffic black-holed, a pool with no free connection) is cancelled at
    `limit_s` (default: the budget, and at least `MIN_CALL_S`) and fails with TimeoutError, so
    a dead database is a failure within bounded time, never a hang. The last error propagates
    when the budget is spent; a non-transient one at once.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (max(budget_s, MIN_CALL_S) if limit_s is None else limit_s)
    delays = backoff_delays(budget_s)
    for tries, delay in enumerate([*delays, None], start=1):
        try:
            async with asyncio.timeout_at(deadline):
                return await call()
        except Exception as exc:
            if delay is None or not is_transient(exc) or loop.time() + delay >= deadline:
                raise
            if tries == 1:
                # Through an outage every call retries: `dependency_unavailable` said it once,
                # so each call's own line is for LOG_LEVEL=DEBUG.
                emit = log.debug if dependencies.is_away(DATABASE) else log.warning
                emit(
                    "database_call_retrying",
                    call=what,
                    error=f"{type(exc).__name__}: {exc}",
                    retry_for_s=budget_s,
                )
            # Spread the tries of many callers so they do not hit a restarting server together.
            await sleep(delay * (0.8 + 0.4 * random.random()))
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
