"""The engine of ``cannabis-market report``: plan runs from reports.yml, execute notebooks, publish reports.

Flow: ``load_config`` (validate reports.yml) -> ``plan`` (pick jobs/notebooks, validate and convert
parameters *before* any kernel starts, expand grids, decide skips) -> an ``Executor`` runs the remaining
``RunSpec``s (``LocalExecutor``: N threads, each supervising one papermill subprocess) -> ``write_index``.

Decisions, so nobody has to guess:

* **Working directory.** A notebook executes with its own folder as the working directory -- the same as
  in JupyterLab -- so relative paths in notebook defaults (``dataset = "../data/sample"``) mean the same
  thing in both places. Relative ``path`` parameters given with ``-p`` are resolved against the directory
  the command runs in; relative paths in ``reports.yml`` against that file's folder.
* **One subprocess per run.** Each run executes papermill in a fresh Python process (started in its own
  session). That process sets ``CM_RESULTS_DIR``/``CM_REPORT`` for its kernel, gets a hard wall-clock
  limit (``--timeout`` plus a grace period for kernel start/stop; each cell is also limited to
  ``--timeout`` inside papermill) and can be killed without touching the others.
* **Nothing lost.** A run writes into ``<out>/<report>/.tmp-<slug>-<random>/`` and is moved into place by
  renames only when complete; a killed command leaves the previous report in place, and the next command
  cleans the leftovers. One ``filelock`` per output folder (``<out>/.cannabis-market-report.lock``) keeps
  two commands from writing the same folder; the second waits ``lock_timeout`` seconds, then gives up.
* **Incremental.** A run is skipped when its ``results.json`` says ``ok`` and the notebook's code, the
  resolved parameters, the dataset fingerprint, the package version and ``show_code`` are unchanged.

Output per run: ``<out>/<report>/<slug>/report.html`` and ``results.json``; ``executed.ipynb`` is kept
private in ``<out>/.private/<report>/<slug>/`` (see ``publish.keep_private``).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import datetime as dt
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cannabis_market.data.fingerprint import fingerprint as fingerprint_path
from cannabis_market.errors import InputError
from cannabis_market.reports import params as P
from cannabis_market.reports import publish as publish_boundary
from cannabis_market.reports.results import RESULTS_ENV, RESULTS_FILE, read_json, write_json_atomic

KERNEL_NAME = "cannabis-market"
DEFAULT_CONFIG = "reports.yml"
DEFAULT_TIMEOUT = 900.0
DEFAULT_LOCK_TIMEOUT = 10.0
KILL_GRACE = 30.0  # extra seconds over --timeout before the supervisor kills a run (kernel start/stop)
LOCK_NAME = ".cannabis-market-report.lock"
HTML_FILE, NOTEBOOK_FILE = "report.html", "executed.ipynb"
JOB_KEYS = ("name", "notebook", "parameters", "grid", "requires", "timeout", "description")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SLUG_MAX = 60


class LockBusy(RuntimeError):
    """Another ``cannabis-market report`` holds the output folder's lock."""


# ================================================================================= reports.yml


@dataclass(frozen=True)
class Job:
    """One entry of reports.yml."""

    name: str
    notebook: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    requires: Path | None = None
    timeout: float | None = None
    description: str = ""


@dataclass(frozen=True)
class Config:
    """Parsed reports.yml: where it lives (its folder is the base for relative paths) and its jobs."""

    path: Path | None
    root: Path
    jobs: tuple[Job, ...] = ()

    def job(self, name: str) -> Job | None:
        return next((j for j in self.jobs if j.name == name), None)


def find_config(start: Path | None = None) -> Path | None:
    """reports.yml in ``start`` (default: cwd) or the nearest parent folder that has one."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / DEFAULT_CONFIG
        if candidate.is_file():
            return candidate
    return None


def load_config(path: str | Path | None) -> Config:
    """Read and validate reports.yml; every problem names the file, the job and the key."""
    import yaml

    if path is None:
        return Config(None, Path.cwd().resolve())
    path = Path(path).resolve()
    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{where}: file not found") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{where}: not valid YAML ({exc})") from None
    root = path.parent
    if raw is None:
        return Config(path, root)
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected a mapping with a 'jobs' list at the top level")
    extra = sorted(set(raw) - {"jobs"})
    if extra:
        raise InputError(f"{where}: unknown top-level key(s) {', '.join(map(str, extra))} (allowed: jobs)")
    items = raw.get("jobs") or []
    if not isinstance(items, list):
        raise InputError(f"{where}: 'jobs' must be a list of jobs (each '- name: ...')")
    problems: list[str] = []
    jobs: list[Job] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        label = f"jobs[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{label}: expected a mapping with name/notebook/parameters, got {item!r}")
            continue
        name = item.get("name")
        if isinstance(name, str):
            label = f"job '{name}' ({label})"
        bad = sorted(set(map(str, item)) - set(JOB_KEYS))
        if bad:
            problems.append(f"{label}: unknown key(s) {', '.join(bad)} (allowed: {', '.join(JOB_KEYS)})")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            problems.append(
                f"{label}: key 'name' must be a name of letters, digits, '_', '-' or '.', got {name!r}"
            )
            continue
        if name in seen:
            problems.append(f"{label}: key 'name': the name '{name}' is used by another job")
        seen.add(name)
        nb = item.get("notebook")
        if not isinstance(nb, str) or not nb.endswith(".ipynb"):
            problems.append(f"{label}: key 'notebook' must be the path of an .ipynb file, got {nb!r}")
            continue
        pars = item.get("parameters") or {}
        if not isinstance(pars, dict) or not all(isinstance(k, str) for k in pars):
            problems.append(f"{label}: key 'parameters' must be a mapping of parameter -> value")
            pars = {}
        grid = item.get("grid") or {}
        if not isinstance(grid, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and v for k, v in grid.items()
        ):
            problems.append(f"{label}: key 'grid' must be a mapping of parameter -> non-empty list of values")
            grid = {}
        both = sorted(set(pars) & set(grid))
        if both:
            problems.append(f"{label}: parameter(s) {', '.join(both)} appear in both 'parameters' and 'grid'")
        req = item.get("requires")
        if req is not None and not isinstance(req, str):
            problems.append(f"{label}: key 'requires' must be a path, got {req!r}")
            req = None
        timeout = item.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            problems.append(f"{label}: key 'timeout' must be a positive number of seconds, got {timeout!r}")
            timeout = None
        desc = item.get("description") or ""
        jobs.append(
            Job(
                name=name,
                notebook=(root / nb).resolve(),
                parameters=dict(pars),
                grid={k: list(v) for k, v in grid.items()},
                requires=(root / req).resolve() if req else None,
                timeout=float(timeout) if timeout is not None else None,
                description=str(desc),
            )
        )
    if problems:
        raise InputError(f"{where}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))
    return Config(path, root, tuple(jobs))


# ================================================================================= planning


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs; plain data, so any executor (threads, processes, Dask) can take it."""

    report: str
    slug: str
    notebook: str
    parameters: dict[str, Any]  # the values injected into the notebook (given ones only)
    resolved: dict[str, Any]  # defaults + given: what the notebook actually runs with
    given: dict[str, Any]  # as written by the user (for the index and the slug)
    out_root: str
    cwd: str
    timeout: float
    show_code: bool
    inputs: dict[str, Any]  # the incremental key, compared with the previous results.json
    dataset: dict[str, Any] | None = None
    kernel_name: str = KERNEL_NAME

    @property
    def label(self) -> str:
        return f"{self.report}/{self.slug}"

    @property
    def out_dir(self) -> Path:
        return Path(self.out_root) / self.report / self.slug


@dataclass
class RunResult:
    """What happened to one run."""

    report: str
    slug: str
    status: str  # "ok" | "failed" | "skipped"
    duration_s: float = 0.0
    error: str | None = None
    html: str | None = None
    message: str = ""

    @property
    def label(self) -> str:
        return f"{self.report}/{self.slug}" if self.slug else self.report


@dataclass
class Plan:
    """Runs to execute plus those skipped while planning (unchanged, or `requires` missing)."""

    runs: list[RunSpec] = field(default_factory=list)
    skipped: list[RunResult] = field(default_factory=list)


def notebook_hash(path: str | Path) -> str:
    """SHA-256 of a notebook's cell types and sources (outputs, counts and metadata don't matter)."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    cells = []
    for c in nb.get("cells", []):
        src = c.get("source", "")
        cells.append([c.get("cell_type"), "".join(src) if isinstance(src, list) else src])
    return hashlib.sha256(json.dumps(cells, ensure_ascii=False).encode()).hexdigest()


def _slug_value(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(_slug_value(v) for v in value) or "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    return str(value)


def make_slug(given: Mapping[str, Any]) -> str:
    """Readable, stable folder name for a parameter set: ``default``, ``region=Toronto,weeks=4``.

    Characters outside ``[A-Za-z0-9._=+-]`` become '-'; when that changes anything, or the name would be
    longer than 60 characters, an 8-character hash of the exact values is appended so that different
    parameter sets never share a folder.
    """
    if not given:
        return "default"
    readable = ",".join(f"{k}={_slug_value(given[k])}" for k in sorted(given))
    safe = re.sub(r"[^A-Za-z0-9._=+,-]+", "-", readable).strip("-.") or "params"
    if safe == readable and len(safe) <= _SLUG_MAX:
        return safe
    digest = hashlib.sha256(
        json.dumps({k: given[k] for k in sorted(given)}, default=str, ensure_ascii=False).encode()
    ).hexdigest()[:8]
    return f"{safe[: _SLUG_MAX - 9].rstrip('-.,')}-{digest}"


def _package_version() -> str:
    """Version plus a hash of the package's source, so a code change (e.g. an editable install being
    worked on) counts as a new version for incremental rebuilds."""
    import cannabis_market
    from cannabis_market import __version__

    root = Path(cannabis_market.__file__).parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return f"{__version__}+src.{h.hexdigest()[:10]}"


@dataclass(frozen=True)
class _Target:
    report: str
    notebook: Path
    job: Job | None


def resolve_targets(config: Config, names: Sequence[str]) -> list[_Target]:
    """NAMEs -> jobs or notebooks. No names: every job. Unknown names: InputError listing what exists."""
    if not names:
        if config.path is None:
            raise InputError(
                f"no {DEFAULT_CONFIG} found here or in a parent folder; pass --config or name a notebook"
            )
        if not config.jobs:
            raise InputError(f"{config.path}: has no jobs; add one or name a notebook")
        return [_Target(j.name, j.notebook, j) for j in config.jobs]
    targets: list[_Target] = []
    unknown: list[str] = []
    for name in names:
        job = config.job(name)
        if job is not None:
            targets.append(_Target(job.name, job.notebook, job))
            continue
        as_path = Path(name)
        if name.endswith(".ipynb") and as_path.is_file():
            targets.append(_Target(as_path.stem, as_path.resolve(), None))
            continue
        by_stem = next((j.notebook for j in config.jobs if j.notebook.stem == name), None)
        if by_stem is None:
            candidate = config.root / "notebooks" / f"{name}.ipynb"
            by_stem = candidate.resolve() if candidate.is_file() else None
        if by_stem is not None:
            targets.append(_Target(name, by_stem, None))
            continue
        unknown.append(name)
    if unknown:
        known = [j.name for j in config.jobs]
        notebooks = sorted({p.stem for p in (config.root / "notebooks").glob("*.ipynb")})
        raise InputError(
            f"unknown report name(s): {', '.join(unknown)}. "
            f"Jobs in {config.path or DEFAULT_CONFIG}: {', '.join(known) or 'none'}; "
            f"notebooks in {config.root / 'notebooks'}: {', '.join(notebooks) or 'none'}"
        )
    return targets


def plan(
    config: Config,
    names: Sequence[str] = (),
    overrides: Mapping[str, str] | None = None,
    *,
    out: str | Path,
    timeout: float | None = None,
    show_code: bool = False,
    force: bool = False,
    cwd: Path | None = None,
) -> Plan:
    """Decide every run: validate parameters for all of them first (InputError lists every problem)."""
    overrides = dict(overrides or {})
    cwd = (cwd or Path.cwd()).resolve()
    out_root = Path(out).resolve()
    result = Plan()
    problems: list[str] = []
    version = _package_version()
    seen: set[str] = set()
    for target in resolve_targets(config, names):
        job = target.job
        nb_path = target.notebook
        if not nb_path.is_file():
            where = f"{config.path}: job '{job.name}'" if job else "notebook"
            problems.append(f"{where}: notebook {nb_path} does not exist")
            continue
        if job and job.requires is not None and not job.requires.exists():
            result.skipped.append(
                RunResult(
                    target.report, "", "skipped", message=f"requires {job.requires}, which does not exist"
                )
            )
            continue
        try:
            declared = P.read_parameters(nb_path)
            fixed: dict[str, Any] = {}
            grid: dict[str, list[tuple[Any, Any]]] = {}  # parameter -> [(converted, as written)]
            if job:
                src = f"{config.path}: job '{job.name}'"
                fixed = P.validate(
                    declared,
                    job.parameters,
                    where=nb_path.name,
                    source=f"{src}, key 'parameters'",
                    base_dir=config.root,
                )
                for key, values in job.grid.items():
                    grid[key] = [
                        (
                            P.validate(
                                declared,
                                {key: v},
                                where=nb_path.name,
                                source=f"{src}, key 'grid'",
                                base_dir=config.root,
                            )[key],
                            P.to_literal(v),
                        )
                        for v in values
                    ]
            cli = P.validate(
                declared, overrides, where=nb_path.name, source="-p", from_strings=True, base_dir=cwd
            )
        except InputError as exc:
            problems.append(str(exc))
            continue

        def shown(
            values: Mapping[str, Any], raw: Mapping[str, Any], declared: dict[str, P.Param] = declared
        ) -> dict[str, Any]:
            # canonical values (so 'yes' and True give one slug), but paths as the user wrote them
            return {
                k: P.to_literal(raw[k]) if declared[k].type == "path" and raw[k] is not None else v
                for k, v in values.items()
            }

        shown_fixed = shown(fixed, job.parameters if job else {})
        shown_cli = shown(cli, overrides)
        for k in cli:
            grid.pop(k, None)
        keys = list(grid)
        defaults = {name: p.default for name, p in declared.items()}
        nb_sha = notebook_hash(nb_path)
        run_timeout = float(timeout or (job.timeout if job and job.timeout else None) or DEFAULT_TIMEOUT)
        for combo in itertools.product(*(grid[k] for k in keys)) if keys else [()]:
            combo_values = {k: pair[0] for k, pair in zip(keys, combo, strict=True)}
            combo_shown = shown(combo_values, {k: pair[1] for k, pair in zip(keys, combo, strict=True)})
            injected = {**fixed, **combo_values, **cli}
            given = {**shown_fixed, **combo_shown, **shown_cli}
            given = {k: v for k, v in given.items() if k in injected}
            resolved = {**defaults, **injected}
            # a job's fixed parameters are part of the job (its folder name); only what varies between its
            # runs (grid values, -p overrides) names the run folder
            slug = make_slug({k: v for k, v in {**combo_shown, **shown_cli}.items() if k in injected})
            key = f"{target.report}/{slug}"
            if key in seen:
                continue
            seen.add(key)
            dataset = None
            if "dataset" in resolved and isinstance(resolved["dataset"], str):
                ds_path = Path(resolved["dataset"]).expanduser()
                ds_path = ds_path if ds_path.is_absolute() else (nb_path.parent / ds_path)
                dataset = {"path": str(ds_path.resolve()), "fingerprint": fingerprint_path(ds_path)}
            inputs = {
                "notebook_sha256": nb_sha,
                "parameters": resolved,
                "dataset_fingerprint": dataset["fingerprint"] if dataset else None,
                "package_version": version,
                "show_code": bool(show_code),
            }
            spec = RunSpec(
                report=target.report,
                slug=slug,
                notebook=str(nb_path),
                parameters=injected,
                resolved=resolved,
                given=given,
                out_root=str(out_root),
                cwd=str(nb_path.parent),
                timeout=run_timeout,
                show_code=bool(show_code),
                inputs=inputs,
                dataset=dataset,
            )
            previous = read_json(spec.out_dir / RESULTS_FILE)
            if (
                not force
                and previous.get("status") in ("ok", "suppressed")
                and previous.get("inputs") == json.loads(json.dumps(inputs))
                and (spec.out_dir / HTML_FILE).is_file()
            ):
                when = previous.get("finished_at", "?")
                result.skipped.append(
                    RunResult(
                        target.report,
                        slug,
                        "skipped",
                        html=str(spec.out_dir / HTML_FILE),
                        message=f"unchanged since {when} (use --force to re-run)",
                    )
                )
                continue
            result.runs.append(spec)
    if problems:
        raise InputError("\n".join(problems))
    return result


# ================================================================================= executing one run


def _worker_main() -> None:
    """Entry point of the per-run subprocess: run papermill, write status.json. Not a public API."""
    job = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    status_path = Path(job["status_path"])

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    _watch_parent(os.getppid())
    status: dict[str, Any] = {"status": "ok", "error": None}
    # jsonschema (via nbformat) optionally imports rfc3987_syntax, which builds a parser at import and
    # costs ~2 s per process; this process never validates URI formats, so skip it (ImportError is handled).
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
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
        )
    except BaseException as exc:  # noqa: BLE001 - everything must end up in status.json
        if isinstance(exc, TimeoutError) or type(exc).__name__ == "CellTimeoutError":
            status = {"status": "timeout", "error": str(exc)}
        elif type(exc).__name__ == "PapermillExecutionError":
            status = {"status": "failed", "error": f"{exc.ename}: {exc.evalue}", "cell": exc.exec_count}
        else:
            status = {"status": "failed", "error": f"{type(exc).__name__}: {exc}".strip(": ")}
        status["traceback"] = traceback.format_exc()[-4000:]
    write_json_atomic(status_path, status)
    sys.exit(0 if status["status"] == "ok" else 1)


def _watch_parent(parent: int) -> None:
    """Exit when the supervising process dies (killed command): the kernel then follows its parent."""

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="cm-parent-watch", daemon=True).start()


_CANCEL = threading.Event()  # set on Ctrl-C: supervisors stop their runs instead of waiting them out


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


def _placeholder_notebook(spec: RunSpec) -> Any:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells.append(
        nbformat.v4.new_markdown_cell(
            f"# {spec.report}\n\nThe notebook did not produce any output (see the error above)."
        )
    )
    return nb


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


def execute_run(spec: RunSpec) -> RunResult:
    """Execute one run end to end (never raises): papermill subprocess, HTML export, results.json, publish."""
    import nbformat

    from cannabis_market.reports import html as H

    started, t0 = _now(), time.monotonic()
    dest = spec.out_dir
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{spec.slug}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    error: str | None = None
    timed_out = False
    try:
        job_file = tmp / ".job.json"
        status_path = tmp / ".status.json"
        log_path = tmp / "run.log"
        job_file.write_text(
            json.dumps(
                {
                    "input": spec.notebook,
                    "output": str(tmp / NOTEBOOK_FILE),
                    "parameters": spec.parameters,
                    "kernel_name": spec.kernel_name,
                    "cwd": spec.cwd,
                    "cell_timeout": max(1, int(round(spec.timeout))),
                    "status_path": str(status_path),
                }
            ),
            encoding="utf-8",
        )
        env = dict(os.environ)
        env.update(
            {
                RESULTS_ENV: str(tmp),
                "CM_REPORT": "1",
                "CM_REPORT_NAME": spec.report,
                "CM_REPORT_SLUG": spec.slug,
            }
        )
        code = "from cannabis_market.reports.runner import _worker_main; _worker_main()"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
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
                    if _CANCEL.is_set():
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
        if timed_out or status.get("status") == "timeout":
            timed_out = True
            error = f"timed out after {spec.timeout:g} s"
        elif status.get("status") == "ok" and proc.returncode == 0:
            error = None
        else:
            error = status.get("error") or f"notebook process exited with code {proc.returncode}"
            if not status:
                tail = log_path.read_text(encoding="utf-8", errors="replace")[-1500:].strip()
                error += f"\n{tail}" if tail else ""
        nb_file = tmp / NOTEBOOK_FILE
        try:
            nb = nbformat.read(nb_file, as_version=4)
        except (OSError, ValueError):
            nb = _placeholder_notebook(spec)
            nbformat.write(nb, nb_file)
        duration = time.monotonic() - t0
        kernel = read_json(tmp / RESULTS_FILE)  # the publish boundary: rounded figures, suppressed status
        run_status = publish_boundary.run_status(kernel, error)
        figures = publish_boundary.publish_figures(kernel.get("figures", {}))
        nb = publish_boundary.for_export(nb, run_status)
        meta = {
            "Report": spec.label,
            "Parameters": spec.given or "defaults",
            "Status": "FAILED" if error is not None else run_status,
            "Dataset fingerprint": (spec.dataset or {}).get("fingerprint", "n/a"),
            "Package version": spec.inputs.get("package_version"),
            "Generated": _now(),
        }
        banner = None
        if error is not None:
            banner = f"This report did not finish: {error}\nSections after the failing step are missing."
        page = H.export_notebook(
            nb, show_code=spec.show_code, title=_title(nb, spec), banner=banner, meta=meta
        )
        leftovers = H.external_refs(page)
        if leftovers:  # make_offline strips them; this is a guard against a template change
            raise RuntimeError(f"report still references the network: {leftovers[:3]}")
        (tmp / HTML_FILE).write_text(page, encoding="utf-8")
        results = {
            "report": spec.report,
            "slug": spec.slug,
            "notebook": spec.notebook,
            "status": run_status,
            "error": error,
            "timed_out": timed_out,
            "parameters": spec.resolved,
            "given": spec.given,
            "figures": figures,
            "dataset": spec.dataset,
            "package_version": spec.inputs.get("package_version"),
            "started_at": started,
            "finished_at": _now(),
            "duration_s": round(duration, 2),
            "html_bytes": len(page.encode("utf-8")),
            "inputs": spec.inputs,
        }
        write_json_atomic(tmp / RESULTS_FILE, results)
        for name in (".job.json", ".status.json"):
            (tmp / name).unlink(missing_ok=True)
        if error is None:
            log_path.unlink(missing_ok=True)
        publish_boundary.keep_private(tmp / NOTEBOOK_FILE, dest.parent.parent, spec.report, spec.slug)
        publish(tmp, dest)
        return RunResult(spec.report, spec.slug, results["status"], duration, error, str(dest / HTML_FILE))
    except Exception as exc:  # a bug or an I/O error in one run must not stop the others
        error = f"runner error: {type(exc).__name__}: {exc}"
        duration = time.monotonic() - t0
        _publish_error_page(spec, tmp, dest, error, started, duration)
        return RunResult(spec.report, spec.slug, "failed", duration, error, str(dest / HTML_FILE))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _publish_error_page(
    spec: RunSpec, tmp: Path, dest: Path, error: str, started: str, duration: float
) -> None:
    """Last resort when exporting failed: a minimal page and results.json saying so (never raises)."""
    import html as html_mod

    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        page = (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{html_mod.escape(spec.label)}</title></head><body><h1>{html_mod.escape(spec.label)}</h1>"
            f"<p>This report could not be produced.</p><pre>{html_mod.escape(error)}</pre></body></html>\n"
        )
        (tmp / HTML_FILE).write_text(page, encoding="utf-8")
        write_json_atomic(
            tmp / RESULTS_FILE,
            {
                "report": spec.report,
                "slug": spec.slug,
                "notebook": spec.notebook,
                "status": "failed",
                "error": error,
                "timed_out": False,
                "parameters": spec.resolved,
                "given": spec.given,
                "figures": {},
                "dataset": spec.dataset,
                "package_version": spec.inputs.get("package_version"),
                "started_at": started,
                "finished_at": _now(),
                "duration_s": round(duration, 2),
                "inputs": spec.inputs,
            },
        )
        publish(tmp, dest)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)


def publish(tmp: Path, dest: Path) -> None:
    """Move a finished run folder into place with renames; the old one is removed only afterwards."""
    old = dest.parent / f".old-{dest.name}-{uuid.uuid4().hex[:8]}"
    if dest.exists():
        os.rename(dest, old)
    os.rename(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def recover(out_root: Path) -> None:
    """Clean up after a killed command: drop half-written runs, restore a report caught mid-swap."""
    if not out_root.is_dir():
        return
    for report_dir in out_root.iterdir():
        if not report_dir.is_dir() or report_dir.name.startswith("."):
            continue
        for entry in report_dir.iterdir():
            if entry.name.startswith(".tmp-"):
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.startswith(".old-"):
                slug = entry.name[len(".old-") : -9]
                target = report_dir / slug
                if slug and not target.exists():
                    os.rename(entry, target)
                else:
                    shutil.rmtree(entry, ignore_errors=True)


# ================================================================================= executors

EventFn = Callable[[str, RunSpec, RunResult | None], None]


class Executor(Protocol):
    """Runs a batch of RunSpecs. ``on_event("start"|"end", spec, result)`` reports progress; the
    implementation decides where ``execute_run`` runs (local threads now; a Dask cluster later)."""

    def run(self, specs: Sequence[RunSpec], on_event: EventFn) -> list[RunResult]: ...


class LocalExecutor:
    """``jobs`` runs at a time on this machine (threads supervising one subprocess + kernel each)."""

    def __init__(self, jobs: int = 1, run_one: Callable[[RunSpec], RunResult] = execute_run) -> None:
        self.jobs = max(1, int(jobs))
        self.run_one = run_one

    def run(self, specs: Sequence[RunSpec], on_event: EventFn) -> list[RunResult]:
        def task(spec: RunSpec) -> RunResult:
            on_event("start", spec, None)
            res = self.run_one(spec)
            on_event("end", spec, res)
            return res

        if self.jobs == 1 or len(specs) <= 1:
            return [task(s) for s in specs]
        pool = cf.ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="cm-report")
        try:
            return list(pool.map(task, specs))
        except BaseException:
            _CANCEL.set()  # running supervisors kill their notebooks and return promptly
            pool.shutdown(wait=True, cancel_futures=True)
            _CANCEL.clear()
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
        if not specs:
            return []
        from distributed import as_completed

        client, owned = self._client()
        try:
            futures = {}
            for spec in specs:
                key = f"cm-report-{spec.report}-{spec.slug}-{uuid.uuid4().hex[:6]}"
                fut = client.submit(self.run_one, spec, key=key, pure=False)
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


# ================================================================================= the command


@dataclass
class Summary:
    results: list[RunResult]
    seconds: float
    index: Path | None

    @property
    def counts(self) -> dict[str, int]:
        out = {"ok": 0, "skipped": 0, "failed": 0}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
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


def run_reports(
    plan_: Plan,
    out: str | Path,
    *,
    executor: Executor | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    echo: Callable[[str], None] = print,
) -> Summary:
    """Execute a plan under the output folder's lock, print progress, write the index."""
    from filelock import FileLock, Timeout

    from cannabis_market.reports.index import write_index

    out_root = Path(out).resolve()
    out_root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out_root / LOCK_NAME))
    try:
        lock.acquire(timeout=lock_timeout)
    except Timeout:
        raise LockBusy(
            f"another `cannabis-market report` is writing to {out_root} (lock {out_root / LOCK_NAME}); "
            f"waited {lock_timeout:g} s. Try again when it has finished."
        ) from None
    t0 = time.monotonic()
    try:
        recover(out_root)
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
            if res.status in ("ok", "suppressed"):
                say(f"[{n}/{total}] {res.status:<7} {spec.label} ({_fmt_s(res.duration_s)})")
            else:
                first = (res.error or "").strip().splitlines()[0] if res.error else "unknown error"
                say(f"[{n}/{total}] FAILED  {spec.label} ({_fmt_s(res.duration_s)}): {first}")

        results += (executor or LocalExecutor(1)).run(plan_.runs, on_event)
        index = write_index(out_root)
        summary = Summary(results, time.monotonic() - t0, index)
        c = summary.counts
        say(
            f"done: {c['ok']} ok, "
            + (f"{c['suppressed']} suppressed, " if c.get("suppressed") else "")
            + f"{c['skipped']} skipped, {c['failed']} failed in {_fmt_s(summary.seconds)}"
            f" -> {index}"
        )
        return summary
    finally:
        lock.release()


def describe_plan(config: Config, names: Sequence[str]) -> str:
    """Text for ``--list``: jobs (or the named ones) with their notebook, grid size and parameters."""
    lines: list[str] = []
    targets = resolve_targets(config, names) if (names or config.jobs) else []
    if not targets:
        return f"no jobs in {config.path or DEFAULT_CONFIG}"
    for t in targets:
        job = t.job
        head = f"{t.report}: {t.notebook}"
        if not t.notebook.is_file():
            lines.append(f"{head}  (notebook missing)")
            continue
        lines.append(head)
        if job:
            if job.description:
                lines.append(f"    {job.description}")
            if job.parameters:
                lines.append(f"    job parameters: {json.dumps(job.parameters, default=str)}")
            if job.grid:
                n = 1
                for v in job.grid.values():
                    n *= len(v)
                lines.append(f"    grid: {json.dumps(job.grid, default=str)} ({n} runs)")
            if job.requires:
                ok = "present" if job.requires.exists() else "MISSING -> skipped"
                lines.append(f"    requires: {job.requires} ({ok})")
        try:
            declared = P.read_parameters(t.notebook)
        except InputError as exc:
            lines.append(f"    parameters: cannot be read: {exc}")
            continue
        lines.extend("    " + line for line in P.describe_parameters(declared).splitlines())
    return "\n".join(lines)


def as_dict(spec: RunSpec) -> dict[str, Any]:
    """RunSpec as plain JSON-able data (for a remote executor or debugging)."""
    return asdict(spec)


def iter_results(out_root: str | Path) -> Iterable[tuple[Path, dict[str, Any]]]:
    """Every ``<out>/<report>/<slug>/results.json`` (hidden folders skipped), sorted."""
    root = Path(out_root)
    if not root.is_dir():
        return []
    found = []
    for report_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for run_dir in sorted(p for p in report_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            data = read_json(run_dir / RESULTS_FILE)
            if data:
                found.append((run_dir, data))
    return found
