"""The `executor` option: validation, defaults, and jobs refused at registration."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from financial.cmd.wiring import ConfigError, build_registry
from financial.configs import load_settings
from financial.pkg.jobs import ExecutorKind, JobContext, JobDefinitionError, JobOptions, cron_job
from financial.pkg.scheduler.registry import Defaults, JobRegistry
from tests.fixtures import executor_jobs
from tests.fixtures.executor_jobs import PidJob


class AsyncJob:
    name = "async_job"
    schedule = "* * * * *"

    async def run(self, ctx: JobContext) -> None:
        return None


class BlockingJob:
    name = "blocking_job"
    schedule = "* * * * *"

    def run(self, ctx: JobContext) -> None:
        return None


@dataclass
class HoldsALock:
    """A job holding what cannot cross a process boundary (a lock, as a pool would)."""

    name: str = "holds_a_lock"
    schedule: str = "* * * * *"
    executor: str = "process"
    lock: object = field(default_factory=threading.Lock)

    def run(self, ctx: JobContext) -> None:
        return None


@dataclass
class HoldsALambda:
    name: str = "holds_a_lambda"
    schedule: str = "* * * * *"
    executor: str = "process"
    convert: Callable[[int], int] = field(default=lambda x: x)

    def run(self, ctx: JobContext) -> None:
        return None


def test_the_option_takes_a_name_or_the_enum_and_refuses_anything_else() -> None:
    assert JobOptions(executor="process").executor is ExecutorKind.PROCESS  # type: ignore[arg-type]
    assert cron_job("* * * * *", executor="thread")(BlockingJob().run).options.executor == "thread"
    with pytest.raises(JobDefinitionError, match=r"executor='fork': expected one of loop, thread"):
        cron_job("* * * * *", executor="fork")(BlockingJob().run)


def test_defaults_the_loop_for_async_jobs_and_the_setting_for_blocking_ones() -> None:
    registry = JobRegistry(Defaults(executor=ExecutorKind.PROCESS))
    assert registry.add(AsyncJob()).options.executor is ExecutorKind.LOOP
    assert registry.add(executor_jobs.quick_blocking).options.executor is ExecutorKind.PROCESS
    assert JobRegistry().add(BlockingJob()).options.executor is ExecutorKind.THREAD


class InProcess(AsyncJob):
    executor = "process"


def test_a_class_attribute_chooses_the_executor() -> None:
    assert JobRegistry().add(InProcess()).options.executor is ExecutorKind.PROCESS


def test_a_class_defined_in_a_function_cannot_go_to_a_process() -> None:
    class Local(AsyncJob):
        executor = "process"

    with pytest.raises(
        JobDefinitionError, match=r"job 'async_job': .*Can't (pickle|get) local object"
    ):
        JobRegistry().add(Local())


def test_an_async_job_on_a_thread_and_a_blocking_one_on_the_loop_are_refused() -> None:
    class AsyncOnThread(AsyncJob):
        executor = "thread"

    class BlockingOnLoop(BlockingJob):
        executor = "loop"

    with pytest.raises(JobDefinitionError, match=r"job 'async_job': executor='thread' runs"):
        JobRegistry().add(AsyncOnThread())
    with pytest.raises(JobDefinitionError, match=r"job 'blocking_job': executor='loop' runs"):
        JobRegistry().add(BlockingOnLoop())


@pytest.mark.parametrize(
    ("job", "why"),
    [
        (HoldsALock(), "cannot pickle '_thread.lock' object"),
        (HoldsALambda(), "Can't pickle"),
    ],
)
def test_a_job_that_cannot_be_sent_to_a_process_is_refused_when_registered(
    job: object, why: str
) -> None:
    with pytest.raises(JobDefinitionError) as caught:
        JobRegistry().add(job)  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith(f"job {job.name!r}: executor='process': ")  # type: ignore[attr-defined]
    assert why in message


def test_a_closure_made_a_job_cannot_go_to_a_process() -> None:
    factor = 3

    @cron_job("* * * * *", name="closure", executor="process")
    def closure(ctx: JobContext) -> None:
        print(factor)

    with pytest.raises(JobDefinitionError, match=r"job 'closure': executor='process': .*module"):
        JobRegistry().add(closure)


def test_module_level_jobs_and_picklable_instances_are_accepted() -> None:
    registry = JobRegistry()
    for job in (executor_jobs.process_quick, executor_jobs.process_async, PidJob(marks=None)):  # type: ignore[arg-type]
        assert registry.add(job).options.executor is ExecutorKind.PROCESS


def test_the_worker_default_applies_to_blocking_jobs_and_refusal_is_a_config_error() -> None:
    settings = load_settings(env_file=None, secrets_dirs=[], worker_default_executor="process")
    factor = 2

    @cron_job("* * * * *", name="local_blocking")
    def local_blocking(ctx: JobContext) -> None:
        print(factor)

    with pytest.raises(ConfigError, match=r"job 'local_blocking': executor='process'"):
        build_registry(settings, [local_blocking])
    # An async job is not moved by the default: it stays on the loop.
    assert build_registry(settings, [AsyncJob()]).get("async_job").options.executor == "loop"
