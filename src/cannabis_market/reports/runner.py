"""The engine of ``cannabis-market report`` (a thin front kept for existing imports).

Flow: ``config.load_config`` (validate reports.yml) -> ``plan.plan`` (pick jobs/notebooks, validate and
convert parameters *before* any kernel starts, expand grids, decide skips) -> an executor
(``executors``) calls ``execute.execute_run`` for each ``RunSpec`` -> ``build.run_reports`` writes the
index. ``layout`` owns every file name and the rule that the runner only touches what it created.

Decisions, so nobody has to guess:

* **Working directory.** A notebook executes with its own folder as the working directory -- the same as
  in JupyterLab -- so relative paths in notebook defaults (``dataset = "../data/sample"``) mean the same
  thing in both places. Relative ``path`` parameters given with ``-p`` are resolved against the directory
  the command runs in; relative paths in ``reports.yml`` (and a ``-f`` file) against that file's folder.
* **Nothing lost.** See ``layout`` (owned folders, markers, publish by renames, recovery) and ``execute``
  (a failed re-run is shown beside the last good report, never over it).
* **Incremental.** A run is skipped when its last good ``results.json`` has the same notebook code,
  resolved parameters, dataset fingerprint, package version and ``show_code``, and no failure was shown
  since.
"""

from __future__ import annotations

from cannabis_market.data.fingerprint import fingerprint as fingerprint_path
from cannabis_market.reports.build import (
    DEFAULT_LOCK_TIMEOUT,
    LockBusy,
    Summary,
    check_kernel,
    prune_reports,
    run_reports,
)
from cannabis_market.reports.config import (
    DEFAULT_CONFIG,
    JOB_KEYS,
    Config,
    Job,
    find_config,
    load_config,
    load_params_file,
)
from cannabis_market.reports.execute import KILL_GRACE, execute_run
from cannabis_market.reports.executors import DaskExecutor, EventFn, Executor, LocalExecutor, make_executor
from cannabis_market.reports.layout import (
    HTML_FILE,
    LOCK_NAME,
    NOTEBOOK_FILE,
    iter_results,
    publish,
    recover,
)
from cannabis_market.reports.plan import (
    DEFAULT_TIMEOUT,
    KERNEL_NAME,
    Plan,
    RunResult,
    RunSpec,
    describe_plan,
    make_slug,
    notebook_hash,
    plan,
    resolve_targets,
)

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_LOCK_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "HTML_FILE",
    "JOB_KEYS",
    "KERNEL_NAME",
    "KILL_GRACE",
    "LOCK_NAME",
    "NOTEBOOK_FILE",
    "Config",
    "DaskExecutor",
    "EventFn",
    "Executor",
    "Job",
    "LocalExecutor",
    "LockBusy",
    "Plan",
    "RunResult",
    "RunSpec",
    "Summary",
    "check_kernel",
    "describe_plan",
    "execute_run",
    "find_config",
    "fingerprint_path",
    "iter_results",
    "load_config",
    "load_params_file",
    "make_executor",
    "make_slug",
    "notebook_hash",
    "plan",
    "prune_reports",
    "publish",
    "recover",
    "resolve_targets",
    "run_reports",
]
