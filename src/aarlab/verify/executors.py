"""Where verification jobs run: local worker threads (default) or a Ray cluster, behind one interface.

A job is a picklable top-level function plus its argument. Locally, threads suffice: every job spends its
time waiting on its own sandboxed child process. On Ray, each job is a task with ``num_cpus`` reserved
(and ``num_gpus`` when the method needs one), so a cluster schedules them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from aarlab.registry import Registry
from aarlab.testbed.errors import AarlabError


class Executor(Protocol):
    """Run ``fn(job)`` for every job and return the results in job order."""

    name: str

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> list[Any]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """A bounded pool of threads on this machine (each job runs its own confined subprocess)."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or min(4, os.cpu_count() or 1))
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="aarlab-verify")

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> list[Any]:
        return list(self._pool.map(fn, jobs))

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class RayExecutor:
    """Ray tasks on a cluster (``address``) or a local Ray instance started here."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        cpus_per_job: float = 1.0,
        gpus_per_job: float = 0.0,
    ) -> None:
        try:
            import ray
        except ImportError:
            raise AarlabError("the Ray executor needs `ray` (pip install 'ray==2.60.0')") from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "ignore_reinit_error": True,
            }
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
            ray.init(**kwargs)
            self._started = True
        self.cpus_per_job = cpus_per_job
        self.gpus_per_job = gpus_per_job

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> list[Any]:
        remote = self._ray.remote(num_cpus=self.cpus_per_job, num_gpus=self.gpus_per_job, max_retries=0)(fn)
        return list(self._ray.get([remote.remote(job) for job in jobs]))

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


#: Executor factories by name: each takes the caller's options and keeps those it understands.
EXECUTORS: Registry[Callable[..., Executor]] = Registry("executor")


@EXECUTORS.decorator("local")
def _local(workers: int | None = None, **_ignored: Any) -> Executor:
    return LocalExecutor(workers)


@EXECUTORS.decorator("ray")
def _ray(workers: int | None = None, **options: Any) -> Executor:
    return RayExecutor(**options)


def get_executor(name: str = "local", **options: Any) -> Executor:
    """``local`` (default; option: workers) or ``ray`` (options: address, num_cpus, cpus_per_job,
    gpus_per_job); an unknown name raises ``UnknownNameError`` listing the executors."""
    return EXECUTORS.get(name)(**options)
