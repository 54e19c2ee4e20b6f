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
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cannabis_market.reports import kernels, layout
from cannabis_market.reports import publish as publish_boundary
from cannabis_market.reports.page import add_furniture
from cannabis_market.reports.plan import RunResult, RunSpec
from cannabis_market.reports.results import RESULTS_ENV, RESULTS_FILE, read_json, write_json_atomic
from cannabis_market.reports.worker import CANCEL, _kill_group, _worker_main, run_job  # noqa: F401 - re-exported

KILL_GRACE = 30.0  # extra seconds over the timeout before the supervisor kills a run (kernel start/stop)


def _title(nb: Any, spec: RunSpec) -> str:
    """Browser-tab title: the notebook's first '# heading' (else the report name), plus the parameters."""
    name = spec.report
    for cell in nb.cells:
        if cell.get("cell_type") == "markdown":
            m = re.search(r"^#\s+(.+?)\s*#*\s*$", cell.get("source", ""), flags=re.M)
            if m:
                name = m.group(1)
                break
    return name if spec.slug == "default" else f"{name} ({spec.slug})"


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _supervise(spec: RunSpec, tmp: Path) -> tuple[str | None, bool]:
    """Run papermill for ``spec`` in a subprocess writing into ``tmp``; (error or None, timed out)."""
    job_file, status_path, log_path = tmp / ".job.json", tmp / ".status.json", tmp / "run.log"
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
    for name in (job_file, status_path):
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
    manifest = _manifest(spec)
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
        "finished_at": _now(),
        "duration_s": round(duration, 2),
        "html_bytes": html_bytes,
        "inputs": spec.inputs,
    }


def _manifest(spec: RunSpec) -> dict[str, Any]:
    """The run's dataset manifest ({} when there is none or it cannot be read: the page then has no banner)."""
    from cannabis_market.data.loader import read_manifest

    path = (spec.dataset or {}).get("path")
    if not path:
        return {}
    try:
        manifest, _problems = read_manifest(Path(path))
    except OSError:
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _render(spec: RunSpec, tmp: Path, error: str | None, status: str) -> str:
    """The offline HTML page of the executed notebook (a placeholder notebook when none was written)."""
    import nbformat

    from cannabis_market.reports import html as H

    nb_file = tmp / layout.NOTEBOOK_FILE
    try:
        nb = nbformat.read(nb_file, as_version=4)
    except (OSError, ValueError):
        nb = nbformat.v4.new_notebook()
        nb.cells.append(
            nbformat.v4.new_markdown_cell(
                f"# {spec.report}\n\nThe notebook did not produce any output (see the error above)."
            )
        )
        nbformat.write(nb, nb_file)
    meta = {
        "Report": spec.label,
        "Parameters": spec.given or "defaults",
        "Status": "FAILED" if error is not None else status,
        "Dataset fingerprint": (spec.dataset or {}).get("fingerprint", "n/a"),
        "Package version": spec.inputs.get("package_version"),
        "Generated": _now(),
    }
    banner = None
    if error is not None:
        banner = f"This report did not finish: {error}\nSections after the failing step are missing."
    nb = publish_boundary.for_export(nb, status)
    page = H.export_notebook(
        nb, show_code=spec.show_code, title=_title(nb, spec), banner=banner, meta=meta, params=spec.resolved
    )
    page = add_furniture(page, manifest=_manifest(spec), stem=spec.report)
    leftovers = H.external_refs(page)
    if leftovers:  # make_offline strips them; this is a guard against a template change
        raise RuntimeError(f"report still references the network: {leftovers[:3]}")
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
    started, t0 = _now(), time.monotonic()
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
        page = _render(spec, tmp, error, status)
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
