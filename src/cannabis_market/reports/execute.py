"""One run, end to end: ``execute_run(spec)`` -- papermill in a fresh process, HTML export, results.json,
publish into place. Executors (local threads, Dask) only ever call ``execute_run``.

* **One subprocess per run.** papermill runs in a fresh Python process (its own session), which sets
  ``CM_RESULTS_DIR``/``CM_REPORT`` for its kernel, gets a hard wall-clock limit (``timeout`` plus a grace
  period for kernel start/stop; each cell is also limited inside papermill) and can be killed alone.
* **Nothing lost.** The run writes into ``<out>/.cannabis-market/tmp/<id>/`` and is moved into place by
  renames only when complete (``layout.publish``). A failed run never replaces the last good report of
  the same parameters: it is published beside it, in ``<run>/last-failure/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cannabis_market.reports import kernels, layout, render
from cannabis_market.reports import publish as publish_boundary
from cannabis_market.reports.plan import RunResult, RunSpec
from cannabis_market.reports.render import PRERENDERED, now, render_page
from cannabis_market.reports.results import RESULTS_ENV, RESULTS_FILE, read_json, write_json_atomic
from cannabis_market.reports.worker import CANCEL, _kill_group, _worker_main, run_job  # noqa: F401 - re-exported

KILL_GRACE = 30.0  # extra seconds over the timeout before the supervisor kills a run (kernel start/stop)


def _supervise(spec: RunSpec, tmp: Path) -> tuple[str | None, bool]:
    """Run papermill for ``spec`` in a subprocess writing into ``tmp``; (error or None, timed out)."""
    job_file, status_path, log_path = tmp / ".job.json", tmp / ".status.json", tmp / "run.log"
    spec_path = tmp / ".spec.pickle"
    spec_path.write_bytes(pickle.dumps(spec))  # for a worker that renders the page itself (render.py)
    run_env = {
        RESULTS_ENV: str(tmp),
        "CM_REPORT": "1",
        "CM_REPORT_NAME": spec.report,
        "CM_REPORT_SLUG": spec.slug,
    }
    job_file.write_text(
        json.dumps(
            {
                "input": spec.notebook,
                "output": str(tmp / layout.NOTEBOOK_FILE),
                "parameters": spec.parameters,
                "kernel_name": spec.kernel_name,
                "cwd": spec.cwd,
                "cell_timeout": max(1, int(round(spec.timeout))),
                "status_path": str(status_path),
                "log_path": str(log_path),
                "spec_path": str(spec_path),
                "env": run_env,
            }
        ),
        encoding="utf-8",
    )
    env = {**os.environ, **run_env}
    code = "from cannabis_market.reports.worker import _worker_main; _worker_main()"
    timed_out = False
    warm = kernels.take(spec)  # a pre-started worker with a warmed kernel, or None: start cold
    with open(log_path, "wb") as log, contextlib.ExitStack() as after:
        if warm is not None:
            after.callback(warm.reap)
        proc = (warm.hand_over(job_file) if warm is not None else None) or subprocess.Popen(
            [sys.executable, "-c", code, str(job_file)],
            cwd=spec.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + spec.timeout + KILL_GRACE
        try:
            while proc.poll() is None:
                if CANCEL.is_set():
                    raise KeyboardInterrupt
                if time.monotonic() > deadline:
                    _kill_group(proc)
                    timed_out = True
                    break
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.25)
        except BaseException:
            _kill_group(proc)
            raise
    status = read_json(status_path)
    for name in (job_file, status_path, spec_path):
        name.unlink(missing_ok=True)
    if timed_out or status.get("status") == "timeout":
        return f"timed out after {spec.timeout:g} s", True
    if status.get("status") == "ok" and proc.returncode == 0:
        log_path.unlink(missing_ok=True)
        return None, False
    error = status.get("error") or f"notebook process exited with code {proc.returncode}"
    if not status:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-1500:].strip()
        error += f"\n{tail}" if tail else ""
    return error, False


def results_record(
    spec: RunSpec,
    *,
    error: str | None,
    timed_out: bool,
    figures: dict[str, Any],
    started: str,
    duration: float,
    html_bytes: int | None = None,
) -> dict[str, Any]:
    """The one results.json of a run (built here only): status, parameters, figures, dataset, timings."""
    manifest = render.manifest(spec)
    return {
        "report": spec.report,
        "slug": spec.slug,
        "notebook": spec.notebook,
        "status": "ok" if error is None else "failed",
        "error": error,
        "timed_out": timed_out,
        "parameters": spec.resolved,
        "given": spec.given,
        "figures": figures,
        "dataset": spec.dataset,
        **{
            k: manifest.get(v)
            for k, v in (("currency", "currency"), ("market", "region"), ("source", "source"))
        },
        "package_version": spec.inputs.get("package_version"),
        "started_at": started,
        "finished_at": now(),
        "duration_s": round(duration, 2),
        "html_bytes": html_bytes,
        "inputs": spec.inputs,
    }


def _prerendered(tmp: Path, error: str | None) -> str | None:
    """The page the run's worker rendered (only for a run that finished without error), taken once."""
    path = tmp / PRERENDERED
    if error is not None or not path.is_file():
        path.unlink(missing_ok=True)
        return None
    page = path.read_text(encoding="utf-8")
    path.unlink()
    return page


def _place(spec: RunSpec, status: str) -> Path:
    """Where a finished run goes: its run folder, or ``last-failure`` beside a last good report."""
    dest = spec.out_dir
    if status in layout.SUCCESS or not layout.last_good(dest):
        return dest
    return dest / layout.FAILURE_DIR


def execute_run(spec: RunSpec) -> RunResult:
    """Execute one run end to end (never raises for a run's own problems): papermill subprocess, HTML
    export, results.json, publish. The one entry point every executor calls."""
    started, t0 = now(), time.monotonic()
    out_root = Path(spec.out_root)
    tmp: Path | None = None
    try:
        layout.claim_out(out_root)
        tmp = layout.new_tmp(out_root)
        error, timed_out = _supervise(spec, tmp)
        # The publish boundary: what the kernel recorded is rounded and checked, a suppressed selection
        # publishes only its notice, and the executed notebook (raw outputs) never sits in a shared folder.
        kernel = read_json(tmp / RESULTS_FILE)
        status = publish_boundary.run_status(kernel, error)
        page = _prerendered(tmp, error) or render_page(spec, tmp, error, status)
        (tmp / layout.HTML_FILE).write_text(page, encoding="utf-8")
        figures = publish_boundary.publish_figures(kernel.get("figures", {}))
        duration = time.monotonic() - t0
        results = results_record(
            spec, error=error, timed_out=timed_out, figures=figures, started=started, duration=duration,
            html_bytes=len(page.encode("utf-8")),
        )  # fmt: skip
        results["status"] = status
        dest = _place(spec, status)
        publish_boundary.keep_private(tmp / layout.NOTEBOOK_FILE, layout.private_for(dest, out_root))
        write_json_atomic(tmp / RESULTS_FILE, results)
        layout.publish(tmp, dest, out_root)
        return RunResult(
            spec.report, spec.slug, results["status"], duration, error, str(dest / layout.HTML_FILE)
        )
    except Exception as exc:  # a bug or an I/O error in one run must not stop the others
        error = f"runner error: {type(exc).__name__}: {exc}"
        duration = time.monotonic() - t0
        if tmp is not None:
            layout.discard(tmp)
        html = _publish_error_page(spec, error, started, duration)
        return RunResult(spec.report, spec.slug, "failed", duration, error, html)
    except BaseException:
        if tmp is not None:
            layout.discard(tmp)
        raise


def _publish_error_page(spec: RunSpec, error: str, started: str, duration: float) -> str | None:
    """Last resort when exporting failed: a minimal page and results.json saying so (never raises)."""
    import html as html_mod

    out_root = Path(spec.out_root)
    tmp = None
    try:
        tmp = layout.new_tmp(out_root)
        label = html_mod.escape(spec.label)
        page = (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{label}</title></head><body>'
            f"<h1>{label}</h1><p>This report could not be produced.</p><pre>{html_mod.escape(error)}</pre>"
            "</body></html>\n"
        )
        (tmp / layout.HTML_FILE).write_text(page, encoding="utf-8")
        results = results_record(
            spec, error=error, timed_out=False, figures={}, started=started, duration=duration
        )
        write_json_atomic(tmp / RESULTS_FILE, results)
        dest = _place(spec, "failed")
        layout.publish(tmp, dest, out_root)
        return str(dest / layout.HTML_FILE)
    except Exception:
        if tmp is not None:
            layout.discard(tmp)
        return None
