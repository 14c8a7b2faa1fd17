"""Third-party log records (asyncpg, aio-pika, aiormq) through a filter that keeps them short.

During an outage the drivers' reconnect loops log on every attempt: asyncpg's pool writes
"Failed to restore the pool connection floor; retrying" with a full traceback (every 1 s, then
doubling to 60 s), aio-pika's robust connection and aiormq an ERROR or WARNING line every
`reconnect_interval`. The worker reports an outage itself, once when it starts and once when it
ends (`dependency_unavailable` / `dependency_restored`, see `dependencies.py`), so these lines
add nothing after the first.

The filter chosen: for a third-party record at WARNING or above,

- a record of a dependency's driver (asyncpg for PostgreSQL; aio-pika and aiormq for RabbitMQ)
  is dropped while the worker has reported that dependency away: `dependency_unavailable` said
  it, and `dependency_restored` will say when it ends;
- a reconnect loop's record loses its traceback: the exception's type and message are appended
  to the line instead;
- of a run of identical records (same logger, same message template, same level) the first one
  passes; the repeats are dropped while they keep coming less than `quiet_s` apart, and one
  passes every `remind_s` with how many were dropped, so a reconnect loop that never ends stays
  visible without being a line every second.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from financial.pkg.observability.dependencies import BROKER, DATABASE

__all__ = ["DRIVERS", "RECONNECT_LOGGERS", "ThirdPartyNoiseFilter"]

RECONNECT_LOGGERS = frozenset(
    {"asyncpg.pool", "aio_pika.robust_connection", "aio_pika.connection", "aiormq.connection"}
)
"""Loggers of the drivers' reconnect loops: their tracebacks repeat on every attempt."""

OWN_LOGGER_PREFIX = "financial"

DRIVERS = {"asyncpg": DATABASE, "aio_pika": BROKER, "aiormq": BROKER}
"""The top-level logger of each driver, and the dependency it talks to."""


@dataclass(slots=True)
class _Run:
    last_s: float
    reminded_s: float
    dropped: int = 0


class ThirdPartyNoiseFilter(logging.Filter):
    """A `logging.Filter` for the handler that renders standard-library records; see the module.

    Times are the records' own `created` (seconds since the epoch), so the filter reads no clock.
    `is_away(dependency)` says whether the worker has reported that dependency away.
    """

    def __init__(
        self,
        *,
        is_away: Callable[[str], bool] = lambda _dependency: False,
        quiet_s: float = 60.0,
        remind_s: float = 600.0,
    ) -> None:
        super().__init__()
        self._is_away = is_away
        self._quiet_s = quiet_s
        self._remind_s = remind_s
        self._runs: dict[tuple[str, str, int], _Run] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or record.name.startswith(OWN_LOGGER_PREFIX):
            return True
        dependency = DRIVERS.get(record.name.partition(".")[0])
        if dependency is not None and self._is_away(dependency):
            return False
        # The template, not the text: each attempt's error text differs a little.
        key = (record.name, str(record.msg), record.levelno)
        if record.name in RECONNECT_LOGGERS:
            _drop_traceback(record)
        run = self._runs.get(key)
        now = record.created
        if run is None or now - run.last_s >= self._quiet_s:
            self._runs[key] = _Run(last_s=now, reminded_s=now)
            return True
        run.last_s = now
        if now - run.reminded_s < self._remind_s:
            run.dropped += 1
            return False
        # A loop that has gone on for `remind_s`: one line, saying how many were left out.
        record.msg = f"{record.getMessage()} (repeated {run.dropped + 1} times since the first)"
        record.args = ()
        run.reminded_s, run.dropped = now, 0
        return True


def _drop_traceback(record: logging.LogRecord) -> None:
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        detail = str(exc).strip()
        error = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        record.msg = f"{record.getMessage()} ({error})"
        record.args = ()
    record.exc_info = None
    record.exc_text = None
    record.stack_info = None
