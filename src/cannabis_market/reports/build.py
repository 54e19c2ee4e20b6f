"""The command: run a plan under the output folder's lock, print progress, write the index; and prune.

One ``filelock`` per output folder (``<out>/.cannabis-market/lock``) keeps two commands from writing the
same folder; the second waits ``lock_timeout`` seconds, then gives up (``LockBusy``, exit 3).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cannabis_market.errors import InputError
from cannabis_market.reports import durations, kernels, layout
from cannabis_market.reports.config import Config
from cannabis_market.reports.execute import execute_run
from cannabis_market.reports.executors import Executor, LocalExecutor
from cannabis_market.reports.index import write_index
from cannabis_market.reports.plan import KERNEL_NAME, Plan, RunResult, RunSpec, plan

DEFAULT_LOCK_TIMEOUT = 10.0


class LockBusy(RuntimeError):
    """Another ``cannabis-market report`` holds the output folder's lock."""


@dataclass
class Summary:
    """What a command did: every run's result, how long it took, and the index it wrote."""

    results: list[RunResult]
    seconds: float
    index: Path | None

    @property
    def counts(self) -> dict[str, int]:
        out = {"ok": 0, "skipped": 0, "failed": 0}
        for r in self.results:
            status = "ok" if r.status in layout.SUCCESS else r.status
            out[status] = out.get(status, 0) + 1
        return out

    @property
    def exit_code(self) -> int:
        return 1 if self.counts.get("failed") else 0


def check_kernel(name: str = KERNEL_NAME) -> None:
    """InputError when the Jupyter kernel the reports run on is not registered."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise InputError(
            f"Jupyter kernel '{name}' is not registered; run `make kernel` "
            f"(python -m ipykernel install --sys-prefix --name {name})"
        ) from None


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


@contextmanager
def locked_out(out: str | Path, lock_timeout: float) -> Iterator[Path]:
    """Claim the output folder (marker), hold its lock and clean up after a killed command."""
    from filelock import FileLock, Timeout

    out_root = layout.claim_out(Path(out))
    lock_path = out_root / layout.LOCK_NAME
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=lock_timeout)
    except Timeout:
        raise LockBusy(
            f"another `cannabis-market report` is writing to {out_root} (lock {lock_path}); "
            f"waited {lock_timeout:g} s. Try again when it has finished."
        ) from None
    try:
        layout.recover(out_root)
        yield out_root
    finally:
        lock.release()


def run_reports(
    plan_: Plan,
    out: str | Path,
    *,
    executor: Executor | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    echo: Callable[[str], None] = print,
    descriptions: dict[str, str] | None = None,
    warm: bool | None = None,
) -> Summary:
    """Execute a plan under the output folder's lock, print progress, write the index (with the jobs'
    ``descriptions`` and the jobs skipped for missing data, with their reason). ``warm``: start kernels
    ahead with the imports done (``kernels``; None: ``CM_REPORT_WARM``, default on)."""
    with locked_out(out, lock_timeout) as out_root:
        t0 = time.monotonic()
        total = len(plan_.runs) + len(plan_.skipped)
        counter = itertools.count(1)
        out_lock = threading.Lock()

        def say(text: str) -> None:
            with out_lock:
                echo(text)

        results: list[RunResult] = []
        for r in plan_.skipped:
            say(f"[{next(counter)}/{total}] skip    {r.label}: {r.message}")
            results.append(r)
        numbers: dict[str, int] = {}

        def on_event(kind: str, spec: RunSpec, res: RunResult | None) -> None:
            if kind == "start":
                numbers[spec.label] = next(counter)
                say(f"[{numbers[spec.label]}/{total}] start   {spec.label}")
                return
            assert res is not None
            n = numbers.get(spec.label, 0)
            if res.status in layout.SUCCESS:
                durations.record(spec, res.duration_s)  # the next build starts the longest runs first
                say(f"[{n}/{total}] {res.status:<7} {spec.label} ({_fmt_s(res.duration_s)})")
            else:
                first = (res.error or "").strip().splitlines()[0] if res.error else "unknown error"
                kept = (
                    " (last good report kept)"
                    if res.html and layout.FAILURE_DIR in Path(res.html).parts
                    else ""
                )
                say(f"[{n}/{total}] FAILED  {spec.label} ({_fmt_s(res.duration_s)}): {first}{kept}")

        executor = executor or LocalExecutor(1)
        jobs = pool_jobs(executor)
        with kernels.thread_limits(jobs), kernels.warm_pool(plan_.runs, jobs, warm=warm):
            results += executor.run(plan_.runs, on_event)
        missing = [{"report": r.report, "reason": r.message} for r in plan_.skipped if not r.html]
        index = write_index(out_root, descriptions, missing)
        summary = Summary(results, time.monotonic() - t0, index)
        c = summary.counts
        say(
            f"done: {c['ok']} ok, {c['skipped']} skipped, {c['failed']} failed in {_fmt_s(summary.seconds)}"
            f" -> {index}"
        )
        return summary


def prune_reports(
    config: Config,
    out: str | Path,
    *,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    echo: Callable[[str], None] = print,
) -> list[str]:
    """``report --prune``: remove runs of reports that are no longer jobs, and failed runs older than
    their report's last good run that the job no longer plans (only runner-made folders); rewrite the
    index."""
    out_root = layout.check_out(Path(out))
    if not out_root.exists():
        echo(f"nothing to prune: {out_root} does not exist")
        return []
    planned: dict[str, set[str]] = {}
    for job in config.jobs:
        try:
            p = plan(config, [job.name], out=out_root, force=True)
            planned[job.name] = {r.slug for r in p.runs} | {r.slug for r in p.skipped}
        except InputError:
            planned[job.name] = set()  # a broken job plans nothing; its runs still belong to it
    with locked_out(out_root, lock_timeout):
        removed = layout.prune(out_root, planned)
        for rel in removed:
            echo(f"removed {rel}")
        index = write_index(out_root, {j.name: j.description for j in config.jobs if j.description})
        echo(f"pruned {len(removed)} run(s) -> {index}")
        return removed


def pool_jobs(executor: Any) -> int:
    """How many runs ``executor`` runs at once here with the standard ``execute_run`` (0: not local)."""
    if isinstance(executor, LocalExecutor) and executor.run_one is execute_run:
        return executor.jobs
    return 0
