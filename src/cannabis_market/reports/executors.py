"""Where runs execute: ``LocalExecutor`` (N threads here, each supervising one papermill process) or
``DaskExecutor`` (one task per run on a Dask distributed cluster). Both call ``execute.execute_run``."""

from __future__ import annotations

import concurrent.futures as cf
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from cannabis_market.errors import InputError
from cannabis_market.reports import durations
from cannabis_market.reports.execute import CANCEL, execute_run
from cannabis_market.reports.plan import RunResult, RunSpec

EventFn = Callable[[str, RunSpec, RunResult | None], None]


class Executor(Protocol):
    """Runs a batch of RunSpecs. ``on_event("start"|"end", spec, result)`` reports progress; the
    implementation decides where ``execute_run`` runs (local threads; a Dask cluster)."""

    def run(self, specs: Sequence[RunSpec], on_event: EventFn) -> list[RunResult]: ...


class LocalExecutor:
    """``jobs`` runs at a time on this machine (threads supervising one subprocess + kernel each)."""

    def __init__(self, jobs: int = 1, run_one: Callable[[RunSpec], RunResult] = execute_run) -> None:
        self.jobs = max(1, int(jobs))
        self.run_one = run_one

    def run(self, specs: Sequence[RunSpec], on_event: EventFn) -> list[RunResult]:
        """Run every spec, ``jobs`` at a time; Ctrl-C stops the running notebooks promptly."""

        def task(spec: RunSpec) -> RunResult:
            on_event("start", spec, None)
            res = self.run_one(spec)
            on_event("end", spec, res)
            return res

        if self.jobs == 1 or len(specs) <= 1:
            return [task(s) for s in specs]
        order = durations.longest_first(specs)  # a long run started last would finish alone
        pool = cf.ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="cm-report")
        try:
            done = dict(zip(order, pool.map(task, [specs[i] for i in order]), strict=True))
            return [done[i] for i in range(len(specs))]
        except BaseException:
            CANCEL.set()  # running supervisors kill their notebooks and return promptly
            pool.shutdown(wait=True, cancel_futures=True)
            CANCEL.clear()
            raise
        finally:
            pool.shutdown(wait=True)


class DaskExecutor:
    """Runs on a Dask distributed cluster: each run is one task calling ``execute_run`` on a worker.

    Planning (parameter checks, incremental skips) and the index stay on this machine, so results, index
    and skips behave exactly as locally. Workers must see the same paths as this machine (notebooks,
    dataset, output folder on a shared filesystem) and have the package and the ``cannabis-market``
    kernel installed. A task that dies with its worker is reported as a failed run, never lost.
    """

    def __init__(self, scheduler: Any, run_one: Callable[[RunSpec], RunResult] = execute_run) -> None:
        self.scheduler = scheduler
        self.run_one = run_one

    def _client(self) -> Any:
        try:
            from distributed import Client
        except ImportError as e:  # pragma: no cover - distributed is a pinned dependency
            raise InputError("--executor dask needs the 'distributed' package") from e
        if not isinstance(self.scheduler, str):
            return self.scheduler, False  # an existing Client
        try:
            return Client(self.scheduler, timeout="15s", set_as_default=False), True
        except (OSError, TimeoutError) as e:
            raise InputError(f"could not connect to the Dask scheduler at {self.scheduler}: {e}") from None

    def run(self, specs: Sequence[RunSpec], on_event: EventFn) -> list[RunResult]:
        """Submit every spec, report each as it finishes; a lost task becomes a failed run."""
        if not specs:
            return []
        from distributed import as_completed

        client, owned = self._client()
        try:
            futures = {}
            order = durations.longest_first(specs)
            for rank, i in enumerate(order):  # the scheduler starts higher priorities first
                spec = specs[i]
                key = f"cm-report-{spec.report}-{spec.slug}-{uuid.uuid4().hex[:6]}"
                fut = client.submit(self.run_one, spec, key=key, pure=False, priority=len(order) - rank)
                futures[fut] = spec
                on_event("start", spec, None)
            results: dict[int, RunResult] = {}
            with client.as_current():  # progress is reported as each run finishes
                for fut in as_completed(list(futures)):
                    spec = futures[fut]
                    try:
                        res = fut.result()
                    except Exception as e:  # the worker died or the task could not run
                        res = RunResult(
                            spec.report,
                            spec.slug,
                            "failed",
                            error=f"{type(e).__name__}: {e}",
                            message=f"failed on the cluster: {e}",
                        )
                    on_event("end", spec, res)
                    results[id(spec)] = res
            return [results[id(s)] for s in specs]
        finally:
            if owned:
                client.close()


def make_executor(kind: str = "local", jobs: int = 1, scheduler: Any = None) -> Executor:
    """The executor for ``--executor``: ``local`` (``jobs`` at a time here) or ``dask`` (a cluster at
    ``scheduler``, e.g. ``tcp://10.0.0.5:8786``, or a ``distributed.Client``)."""
    if kind == "local":
        return LocalExecutor(jobs)
    if kind == "dask":
        if not scheduler:
            raise InputError("--executor dask needs --scheduler ADDRESS (e.g. tcp://scheduler-host:8786)")
        return DaskExecutor(scheduler)
    raise InputError(f"executor {kind!r} is not available (available: local, dask)")
