"""The records of the run store: runs, their errors, claims, job summaries, and the reasons
written for ticks refused at claim time. `financial.pkg.scheduler.store` re-exports them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from financial.pkg.jobs.model import Overlap, RunStatus, Trigger
from financial.pkg.observability.masking import mask_secrets

# How long a claimed run stays live without a renewal. Its worker renews it every third of this,
# and a replica that dies leaves its runs to be marked `abandoned` about this long afterwards.
DEFAULT_LEASE = timedelta(seconds=30)
LIVE_STATUSES = (RunStatus.PENDING, RunStatus.RUNNING)

OVERLAP_SKIP_REASON = "overlap: the previous run is still running"
OVERLAP_REPLACED_REASON = "overlap: replaced by a newer tick"


# An error message is cut to this many characters before it is stored.
ERROR_MESSAGE_CHARS = 2000


@dataclass(frozen=True, slots=True)
class RunError:
    """Why a run did not succeed: the exception's type name and message (never a traceback)."""

    type: str
    message: str

    @classmethod
    def of(cls, exc: BaseException) -> RunError:
        """The error of a run that raised `exc`, its message masked as log lines are.

        This is where a job's words enter the run history, the `job.failed` event and every page
        that shows them: a password or token in the message never gets further than here.
        Masked before it is cut, so a cut cannot split a secret from the key that names it.
        """
        return cls(type=type(exc).__name__, message=mask_secrets(str(exc))[:ERROR_MESSAGE_CHARS])


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of one job for one tick and attempt."""

    run_id: str
    job: str
    scheduled_at: datetime
    attempt: int
    trigger: Trigger
    status: RunStatus
    worker_id: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: RunError | None = None
    trace_id: str | None = None
    fence: int = 0
    lease_expires_at: datetime | None = None
    # The job's own time, as its worker measured it; for a run ended by another (abandoned,
    # replaced), from its start to its end.
    duration_ms: float | None = None


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """One tick to claim; `overlap` is the job's policy towards its other live runs."""

    job: str
    scheduled_at: datetime
    attempt: int
    trigger: Trigger
    overlap: Overlap = Overlap.ALLOW


@dataclass(frozen=True, slots=True)
class StartRequest:
    """One claimed run to mark `running`, by the worker holding `fence`."""

    run_id: str
    fence: int
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class FinishRequest:
    """One live run to give its final `status`, by the worker holding `fence`."""

    run_id: str
    status: RunStatus
    fence: int
    error: RunError | None = None
    # The job's own time; None: from the run's start to now.
    duration_ms: float | None = None


@dataclass(frozen=True, slots=True)
class JobSummary:
    """What `financial jobs list` shows of a job's history: its last run, last success, pause."""

    job: str
    last_status: RunStatus | None = None
    last_scheduled_at: datetime | None = None
    last_worker_id: str | None = None
    last_success_at: datetime | None = None
    paused: bool = False
    paused_reason: str | None = None


class RunNotFound(LookupError):
    """A run id the store does not hold."""


class RunStoreUnavailable(ConnectionError):
    """The store could not be reached, even after retrying for its whole retry budget."""


def paused_reason(reason: str | None) -> str:
    """The error message of a tick skipped because its job is paused."""
    return f"paused: {reason}" if reason else "paused"


def skipped_for_pause(record: RunRecord) -> bool:
    """Whether a run was skipped because its job is paused (an operator's choice, not a fault)."""
    message = record.error.message if record.error is not None else ""
    return record.status is RunStatus.SKIPPED and (
        message == "paused" or message.startswith("paused: ")
    )


def overlap_reason(worker_id: str) -> str:
    return f"{OVERLAP_SKIP_REASON} (on worker {worker_id})"


def honours_pause(trigger: Trigger) -> bool:
    """Pause holds back every tick; a run an operator asks for by hand still runs."""
    return trigger is not Trigger.MANUAL


def describe(exc: BaseException) -> str:
    """`Type: message` of an exception (just `Type` when it has no message), for a log field."""
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def require_final(run_id: str, status: RunStatus) -> None:
    """`finish` takes final statuses only."""
    if not status.is_final:
        raise ValueError(f"finish({run_id!r}) with status {status}: expected a final status")
