"""Planning: which runs a ``cannabis-market report`` command makes, decided before any kernel starts.

``plan`` picks the jobs/notebooks, validates and converts every parameter (job, grid, ``-f`` file, ``-p``),
expands grids, checks that path parameters exist, that every report and run name is one safe folder name
inside ``--out`` and that nothing foreign sits where a run will be published, and decides incremental
skips. Every problem of every run is collected into one InputError (exit 2, nothing written).

Precedence of parameter values: notebook default < job ``parameters``/``grid`` < ``-f`` file < ``-p``,
except that names a job lists under ``pinned`` keep the job's value (the command prints a note that the
override was ignored): the real-data jobs pin the window their data cover.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cannabis_market.data.fingerprint import fingerprint as fingerprint_path
from cannabis_market.errors import InputError
from cannabis_market.reports import layout
from cannabis_market.reports import params as P
from cannabis_market.reports.config import DEFAULT_CONFIG, NAME_RULE, Config, Job, valid_name
from cannabis_market.reports.results import RESULTS_FILE, read_json

KERNEL_NAME = "cannabis-market"
DEFAULT_TIMEOUT = 900.0
_SLUG_MAX = 60


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
        return layout.run_dir(Path(self.out_root), self.report, self.slug)


@dataclass
class RunResult:
    """What happened to one run."""

    report: str
    slug: str
    status: str  # "ok" | "suppressed" | "failed" | "skipped"
    duration_s: float = 0.0
    error: str | None = None
    html: str | None = None
    message: str = ""

    @property
    def label(self) -> str:
        return f"{self.report}/{self.slug}" if self.slug else self.report


@dataclass
class Plan:
    """Runs to execute, those skipped while planning (unchanged, or `requires` missing), and notes."""

    runs: list[RunSpec] = field(default_factory=list)
    skipped: list[RunResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


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

    Characters outside ``[A-Za-z0-9._=+,-]`` become '-'; when that changes anything, or the name would be
    longer than 60 characters, an 8-character hash of the exact values is appended so that different
    parameter sets never share a folder. The result never contains a path separator.
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
class Target:
    """A report to build: its name (a folder in --out), notebook and job (None for a bare notebook)."""

    report: str
    notebook: Path
    job: Job | None


def resolve_targets(config: Config, names: Sequence[str]) -> list[Target]:
    """NAMEs -> jobs or notebooks. No names: every job. Unknown names: InputError listing what exists.

    A notebook's report name is its file stem, which must be one safe folder name (``...ipynb`` or
    ``../x`` are refused), so a report can never be written outside ``--out``.
    """
    if not names:
        if config.path is None:
            raise InputError(
                f"no {DEFAULT_CONFIG} found here or in a parent folder; pass --config or name a notebook"
            )
        if not config.jobs:
            raise InputError(f"{config.path}: has no jobs; add one or name a notebook")
        return [Target(j.name, j.notebook, j) for j in config.jobs]
    targets: list[Target] = []
    unknown: list[str] = []
    for name in names:
        job = config.job(name)
        if job is not None:
            targets.append(Target(job.name, job.notebook, job))
            continue
        as_path = Path(name)
        if name.endswith(".ipynb") and as_path.is_file():
            if not valid_name(as_path.stem):
                raise InputError(
                    f"notebook {name}: its file name {as_path.stem!r} cannot be a report name ({NAME_RULE}); "
                    "rename the file or add a job for it in reports.yml"
                )
            targets.append(Target(as_path.stem, as_path.resolve(), None))
            continue
        by_stem = None
        if valid_name(name):
            by_stem = next((j.notebook for j in config.jobs if j.notebook.stem == name), None)
            candidate = config.root / "notebooks" / f"{name}.ipynb"
            if by_stem is None and candidate.is_file():
                by_stem = candidate.resolve()
        if by_stem is not None:
            targets.append(Target(name, by_stem, None))
            continue
        unknown.append(name)
    if unknown:
        known = [j.name for j in config.jobs]
        notebooks = sorted({p.stem for p in (config.root / "notebooks").glob("*.ipynb")})
        raise InputError(
            f"unknown report name(s): {', '.join(unknown)} (a name is a job, a notebook stem "
            f"of {NAME_RULE}, or the path of an .ipynb file). "
            f"Jobs in {config.path or DEFAULT_CONFIG}: {', '.join(known) or 'none'}; "
            f"notebooks in {config.root / 'notebooks'}: {', '.join(notebooks) or 'none'}"
        )
    return targets


@dataclass
class _Given:
    """Values from outside the job: ``-f`` file (typed) and ``-p`` (strings), with where each came from."""

    overrides: dict[str, str]
    file_values: dict[str, Any]
    file_path: Path | None
    cwd: Path


def _validated_overrides(
    declared: dict[str, P.Param], given: _Given, nb_name: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(converted values, as written, source of each) for ``-f`` then ``-p`` (``-p`` wins)."""
    values: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    source: dict[str, str] = {}
    if given.file_values:
        assert given.file_path is not None
        where = f"-f {given.file_path}"
        values.update(
            P.validate(
                declared, given.file_values, where=nb_name, source=where, base_dir=given.file_path.parent
            )
        )
        raw.update(given.file_values)
        source.update({k: where for k in given.file_values})
    if given.overrides:
        values.update(
            P.validate(
                declared, given.overrides, where=nb_name, source="-p", from_strings=True, base_dir=given.cwd
            )
        )
        raw.update(given.overrides)
        source.update({k: "-p" for k in given.overrides})
    return values, raw, source


def _abs_path(value: str, base: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _followed_requires(
    job: Job | None, fixed: Mapping[str, Any], resolved: Mapping[str, Any], nb_dir: Path
) -> Path | None:
    """The job's ``requires`` path, moved into the dataset actually used when it lives in the job's dataset."""
    if job is None or job.requires is None:
        return None
    pinned_ds, used_ds = fixed.get("dataset"), resolved.get("dataset")
    if isinstance(pinned_ds, str) and isinstance(used_ds, str) and pinned_ds != used_ds:
        try:
            rel = job.requires.relative_to(Path(pinned_ds).resolve())
        except ValueError:
            return job.requires
        return (_abs_path(used_ds, nb_dir) / rel).resolve()
    return job.requires


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
    file_values: Mapping[str, Any] | None = None,
    file_path: Path | None = None,
) -> Plan:
    """Decide every run: validate parameters for all of them first (InputError lists every problem)."""
    out_root = layout.check_out(Path(out))
    given = _Given(dict(overrides or {}), dict(file_values or {}), file_path, (cwd or Path.cwd()).resolve())
    result = Plan()
    problems: list[str] = []
    version = _package_version()
    seen: set[str] = set()
    for target in resolve_targets(config, names):
        job, nb_path = target.job, target.notebook
        if not nb_path.is_file():
            where = f"{config.path}: job '{job.name}'" if job else "notebook"
            problems.append(f"{where}: notebook {nb_path} does not exist")
            continue
        try:
            declared = P.read_parameters(nb_path)
            fixed: dict[str, Any] = {}
            grid: dict[str, list[tuple[Any, Any]]] = {}  # parameter -> [(converted, as written)]
            if job:
                src = f"{config.path}: job '{job.name}'"
                fixed = P.validate(
                    declared, job.parameters, where=nb_path.name, source=f"{src}, key 'parameters'",
                    base_dir=config.root,
                )  # fmt: skip
                for key, values in job.grid.items():
                    grid[key] = [
                        (
                            P.validate(
                                declared, {key: v}, where=nb_path.name, source=f"{src}, key 'grid'",
                                base_dir=config.root,
                            )[key],
                            P.to_literal(v),
                        )
                        for v in values
                    ]  # fmt: skip
            cli, cli_raw, cli_source = _validated_overrides(declared, given, nb_path.name)
        except InputError as exc:
            problems.append(str(exc))
            continue
        for key in sorted(set(cli) & set(job.pinned if job else ())):
            assert job is not None
            result.notes.append(
                f"{cli_source[key]} {key}={cli_raw[key]} ignored for job '{job.name}': reports.yml pins "
                f"{key}={job.parameters[key]} (its data cover that window)"
            )
            del cli[key]

        def shown(
            values: Mapping[str, Any], raw: Mapping[str, Any], declared: dict[str, P.Param] = declared
        ) -> dict[str, Any]:
            # canonical values (so 'yes' and True give one slug), but paths as the user wrote them
            return {
                k: P.to_literal(raw[k]) if declared[k].type == "path" and raw[k] is not None else v
                for k, v in values.items()
            }

        shown_fixed = shown(fixed, job.parameters if job else {})
        shown_cli = shown(cli, cli_raw)
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
            given_shown = {**shown_fixed, **combo_shown, **shown_cli}
            resolved = {**defaults, **injected}
            # a job's fixed parameters are part of the job (its folder name); only what varies between its
            # runs (grid values, -p overrides) names the run folder
            slug = make_slug({**combo_shown, **shown_cli})
            key = target.report if slug == "default" else f"{target.report} ({slug})"
            if key in seen:
                continue
            seen.add(key)
            missing = _missing_paths(declared, resolved, nb_path.parent, cli_source, fixed)
            from_cli = [m for k, m in missing if k in cli_source]
            if from_cli:
                problems.extend(f"{key}: {m}" for m in from_cli)
                continue
            requires = _followed_requires(job, fixed, resolved, nb_path.parent)
            if requires is not None and not requires.exists():
                result.skipped.append(
                    RunResult(
                        target.report, slug, "skipped", message=f"requires {requires}, which does not exist"
                    )
                )
                continue
            if missing:
                problems.extend(f"{key}: {m}" for _, m in missing)
                continue
            place = layout.check_run_place(out_root, target.report, slug)
            if place:
                problems.append(f"{key}: {place}")
                continue
            spec = _spec(target, slug, nb_path, injected, resolved, given_shown, out_root, run_timeout,
                         show_code, nb_sha, version)  # fmt: skip
            skip = None if force else _unchanged(spec)
            if skip:
                result.skipped.append(skip)
            else:
                result.runs.append(spec)
    if problems:
        raise InputError("\n".join(problems))
    return result


def _missing_paths(
    declared: Mapping[str, P.Param],
    resolved: Mapping[str, Any],
    nb_dir: Path,
    cli_source: Mapping[str, str],
    fixed: Mapping[str, Any],
) -> list[tuple[str, str]]:
    """(name, message) for each ``path`` parameter whose value does not exist (checked before any kernel)."""
    out = []
    for name, p in declared.items():
        value = resolved.get(name)
        if p.type != "path" or not isinstance(value, str) or not value:
            continue
        full = _abs_path(value, nb_dir)
        if not full.exists():
            where = cli_source.get(name) or ("reports.yml" if name in fixed else "the notebook's default")
            shown = value if Path(value).is_absolute() else f"{value} (that is {full.resolve()})"
            out.append((name, f"parameter '{name}' (path, from {where}): {shown} does not exist"))
    return out


def _spec(
    target: Target, slug: str, nb_path: Path, injected: dict[str, Any], resolved: dict[str, Any],
    given: dict[str, Any], out_root: Path, run_timeout: float, show_code: bool, nb_sha: str, version: str,
) -> RunSpec:  # fmt: skip
    """The RunSpec of one run, with the dataset fingerprinted once (it is part of the incremental key)."""
    dataset = None
    if isinstance(resolved.get("dataset"), str):
        ds_path = _abs_path(resolved["dataset"], nb_path.parent)
        dataset = {"path": str(ds_path.resolve()), "fingerprint": fingerprint_path(ds_path)}
    inputs = {
        "notebook_sha256": nb_sha,
        "parameters": resolved,
        "dataset_fingerprint": dataset["fingerprint"] if dataset else None,
        "package_version": version,
        "show_code": bool(show_code),
    }
    return RunSpec(
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


def _unchanged(spec: RunSpec) -> RunResult | None:
    """A skip result when the last good run had the same inputs and no failure was shown since."""
    dest = spec.out_dir
    previous = read_json(dest / RESULTS_FILE)
    if (
        layout.last_good(dest)
        and previous.get("inputs") == json.loads(json.dumps(spec.inputs))
        and not (dest / layout.FAILURE_DIR).exists()
    ):
        when = previous.get("finished_at", "?")
        return RunResult(
            spec.report,
            spec.slug,
            "skipped",
            html=str(dest / layout.HTML_FILE),
            message=f"unchanged since {when} (use --force to re-run)",
        )
    return None


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
            if job.pinned:
                lines.append(f"    pinned (not overridden by -p/-f): {', '.join(job.pinned)}")
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
