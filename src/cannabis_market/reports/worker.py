"""The per-run subprocess and its controls: what runs papermill for one job, in its own session.

Used by ``execute`` (cold runs) and ``kernels`` (warm workers); it imports neither, so the two never
import each other.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from cannabis_market.reports.results import write_json_atomic

CANCEL = threading.Event()  # set on Ctrl-C: supervisors stop their runs instead of waiting them out


def _worker_main() -> None:
    """Entry point of the per-run subprocess: run papermill, write status.json. Not a public API."""
    job = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    _prepare_worker()
    run_job(job)


def _prepare_worker() -> None:
    """Per-run subprocess set-up (also for warm workers, ``kernels``): SIGTERM interrupts, parent watch."""

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    _watch_parent(os.getppid())
    # jsonschema (via nbformat) optionally imports rfc3987_syntax, which builds a parser at import and
    # costs ~2 s per process; this process never validates URI formats, so skip it (ImportError is handled).
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def run_job(job: dict[str, Any], **engine: Any) -> None:
    """Run papermill for one job, write its status.json and exit; ``engine`` goes to nbclient (``km=``: a
    started, warmed kernel from ``kernels``)."""
    status_path = Path(job["status_path"])
    status: dict[str, Any] = {"status": "ok", "error": None}
    try:
        import papermill as pm

        pm.execute_notebook(
            job["input"],
            job["output"],
            parameters=job["parameters"],
            kernel_name=job["kernel_name"],
            progress_bar=False,
            log_output=False,
            request_save_on_cell_execute=True,
            cwd=job["cwd"],
            execution_timeout=job["cell_timeout"],
            start_timeout=120,
            **engine,
        )
    except BaseException as exc:  # noqa: BLE001 - everything must end up in status.json
        if isinstance(exc, TimeoutError) or type(exc).__name__ == "CellTimeoutError":
            status = {"status": "timeout", "error": str(exc)}
        elif type(exc).__name__ == "PapermillExecutionError":
            status = {"status": "failed", "error": f"{exc.ename}: {exc.evalue}", "cell": exc.exec_count}
        else:
            status = {"status": "failed", "error": f"{type(exc).__name__}: {exc}".strip(": ")}
        status["traceback"] = traceback.format_exc()[-4000:]
    if status["status"] == "ok":
        prerender(job)
    write_json_atomic(status_path, status)
    sys.exit(0 if status["status"] == "ok" else 1)


def prerender(job: dict[str, Any]) -> None:
    """Render a finished run's page here when the exporter is already loaded (a forked worker: nbconvert
    was imported once by the fork server), so pages of parallel runs are not rendered one after the
    other in the supervisor. Best effort: on any problem the supervisor renders it as before."""
    spec_path = job.get("spec_path")
    if not spec_path or "nbconvert" not in sys.modules:
        return
    try:
        import pickle

        from cannabis_market.reports.publish import run_status
        from cannabis_market.reports.render import PRERENDERED, render_page
        from cannabis_market.reports.results import RESULTS_FILE, read_json

        spec = pickle.loads(Path(spec_path).read_bytes())
        tmp = Path(job["output"]).parent
        page = render_page(spec, tmp, None, run_status(read_json(tmp / RESULTS_FILE), None))
        partial = tmp / f"{PRERENDERED}.partial"
        partial.write_text(page, encoding="utf-8")
        partial.replace(tmp / PRERENDERED)
    except Exception as exc:  # noqa: BLE001 - the supervisor renders it instead
        print(f"page not rendered in the worker ({type(exc).__name__}: {exc})", flush=True)


def _watch_parent(parent: int) -> None:
    """Exit when the supervising process dies (killed command): the kernel then follows its parent."""

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="cm-parent-watch", daemon=True).start()


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
