"""Shared pieces of the benchmarks: isolated subprocess runs, memory readings, comparison records.

Only the standard library is imported here, so a subprocess that measures pandas never loads polars
(and the other way round) just because it went through this module.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORKER = HERE / "_worker.py"


class BenchError(RuntimeError):
    """A benchmark step failed (its subprocess crashed or its results are wrong)."""


def _status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (VmHWM; ru_maxrss where /proc is missing)."""
    kb = _status_kb("VmHWM")
    if kb is None:
        import resource

        kb = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return round(kb / 1024, 1)


def rss_mb() -> float:
    """Current resident set size of this process (VmRSS), 0 where /proc is missing."""
    return round((_status_kb("VmRSS") or 0.0) / 1024, 1)


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all threads)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run_isolated(func_ref: str, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Call ``module:function(**kwargs)`` in a fresh Python process and return its dict result.

    The module is imported from ``benchmarks/``. The result gains ``_proc``: the child's own peak RSS
    (VmHWM, read by the child after the call), the peak of the child and everything it waited for
    (``wait4`` rusage), and the wall time of the whole process (interpreter start and imports included).
    """
    with tempfile.TemporaryDirectory(prefix="cm-bench-") as td:
        args_file, out_file, log_file = Path(td, "args.json"), Path(td, "out.json"), Path(td, "log.txt")
        args_file.write_text(json.dumps(kwargs or {}))
        cmd = [sys.executable, str(WORKER), func_ref, str(args_file), str(out_file)]
        t0 = time.perf_counter()
        with open(log_file, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=HERE)
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        text = log_file.read_text(errors="replace")
        if proc.returncode != 0 or not out_file.is_file():
            tail = "\n".join(text.strip().splitlines()[-25:])
            raise BenchError(f"{func_ref} failed (exit status {proc.returncode}):\n{tail}")
        result = json.loads(out_file.read_text())
    result["_proc"] = {
        "peak_rss_mb": result.pop("_peak_rss_mb", None),
        "tree_peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "process_seconds": round(wall, 2),
        "log": text[-4000:],
    }
    return result


def call_bench(module: str, quick: bool = False) -> dict[str, Any]:
    """Run ``<module>.run`` the way the harness does: pass ``quick`` only when ``run`` accepts it."""
    run = importlib.import_module(module).run
    params = inspect.signature(run).parameters
    out = run(quick=quick) if "quick" in params else run()
    return dict(out)


def comparison(
    name: str,
    ours: float,
    baseline: float | None,
    ratio: float,
    target: str,
    passed: bool | None,
    unit: str = "",
    baseline_label: str = "",
) -> dict[str, Any]:
    """One row of the results table. ``passed`` None means informational (no target at this size)."""
    return {
        "name": name,
        "ours": ours,
        "baseline": baseline,
        "baseline_label": baseline_label,
        "unit": unit,
        "ratio": ratio,
        "target": target,
        "passed": passed,
    }


def median(values: list[float]) -> float:
    return float(statistics.median(values))
