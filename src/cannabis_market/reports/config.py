"""reports.yml: find it, read it safely, validate every job (each problem names the file, job and key).

YAML is read with a loader that refuses anchors and aliases (a "billion laughs" file would otherwise
expand to gigabytes) and only from files up to ``MAX_YAML_BYTES``: a job list is a few kilobytes, so a
larger file is refused before it is parsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cannabis_market.errors import InputError

DEFAULT_CONFIG = "reports.yml"
MAX_YAML_BYTES = 1_000_000
JOB_KEYS = ("name", "notebook", "parameters", "grid", "pinned", "requires", "timeout", "description")
NAME_RULE = "letters, digits, '_', '-' or '.', starting with a letter or digit"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
MAX_GRID_RUNS = 1000


_RESERVED = {"index.html"}  # the output folder's own index page


def valid_name(name: object) -> bool:
    """True for a report/job name that is safe as one folder name (no separators, no dot-only names,
    not the index page's name)."""
    return isinstance(name, str) and bool(_NAME_RE.match(name)) and name.lower() not in _RESERVED


def load_yaml_file(path: Path, what: str, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """Parse a small YAML file with no anchors/aliases; InputError naming ``path`` on any problem."""
    import yaml

    class _NoAliasLoader(yaml.SafeLoader):
        """SafeLoader that refuses anchors and aliases, so nothing can expand exponentially."""

        def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D401 - PyYAML hook
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise InputError(
                    f"{path}: line {event.start_mark.line + 1}: YAML anchors and aliases (&name, *name) "
                    f"are not allowed in {what}; write the values out"
                )
            return super().compose_node(parent, index)

    try:
        size = path.stat().st_size
        if not path.is_file():
            raise InputError(f"{path}: {what} must be a file")
        if size > max_bytes:
            raise InputError(f"{path}: {what} is {size:,} bytes; the limit is {max_bytes:,} bytes")
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise InputError(f"{path}: {what} is larger than {max_bytes:,} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({exc})") from None
    except RecursionError:
        raise InputError(f"{path}: YAML nested too deeply") from None


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
    pinned: tuple[str, ...] = ()  # parameters `-p`/`-f` cannot override (e.g. a real-data job's window)


@dataclass(frozen=True)
class Config:
    """Parsed reports.yml: where it lives (its folder is the base for relative paths) and its jobs."""

    path: Path | None
    root: Path
    jobs: tuple[Job, ...] = ()

    def job(self, name: str) -> Job | None:
        """The job called ``name``, or None."""
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
    if path is None:
        return Config(None, Path.cwd().resolve())
    path = Path(path).resolve()
    where = str(path)
    raw = load_yaml_file(path, "a reports file")
    root = path.parent
    if raw is None:
        return Config(path, root)
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected a mapping with a 'jobs' list at the top level")
    extra = sorted(set(map(str, raw)) - {"jobs"})
    if extra:
        raise InputError(f"{where}: unknown top-level key(s) {', '.join(extra)} (allowed: jobs)")
    items = raw.get("jobs") or []
    if not isinstance(items, list):
        raise InputError(f"{where}: 'jobs' must be a list of jobs (each '- name: ...')")
    problems: list[str] = []
    jobs: list[Job] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        job = _parse_job(item, i, root, seen, problems)
        if job is not None:
            jobs.append(job)
    if problems:
        raise InputError(f"{where}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))
    return Config(path, root, tuple(jobs))


def _parse_job(item: Any, i: int, root: Path, seen: set[str], problems: list[str]) -> Job | None:
    """One job entry, or None (with the reasons appended to ``problems``)."""
    label = f"jobs[{i}]"
    if not isinstance(item, dict):
        problems.append(f"{label}: expected a mapping with name/notebook/parameters, got {item!r:.80}")
        return None
    name = item.get("name")
    if isinstance(name, str):
        label = f"job {name!r:.80} ({label})"
    bad = sorted(set(map(str, item)) - set(JOB_KEYS))
    if bad:
        problems.append(f"{label}: unknown key(s) {', '.join(bad)} (allowed: {', '.join(JOB_KEYS)})")
    if not valid_name(name):
        problems.append(f"{label}: key 'name' must be a name of {NAME_RULE} (at most 100), got {name!r:.80}")
        return None
    if name.lower() in seen:  # case-insensitive: two such folders are one folder on macOS/Windows
        problems.append(f"{label}: key 'name': the name '{name}' is used by another job")
    seen.add(name.lower())
    nb = item.get("notebook")
    if not isinstance(nb, str) or not nb.endswith(".ipynb"):
        problems.append(f"{label}: key 'notebook' must be the path of an .ipynb file, got {nb!r:.80}")
        return None
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
    n_runs = 1
    for values in grid.values():
        n_runs *= len(values)
    if n_runs > MAX_GRID_RUNS:
        problems.append(f"{label}: key 'grid' expands to {n_runs:,} runs; the limit is {MAX_GRID_RUNS:,}")
        grid = {}
    both = sorted(set(pars) & set(grid))
    if both:
        problems.append(f"{label}: parameter(s) {', '.join(both)} appear in both 'parameters' and 'grid'")
    pinned = item.get("pinned") or []
    if not isinstance(pinned, list) or not all(isinstance(p, str) and p in pars for p in pinned):
        problems.append(
            f"{label}: key 'pinned' must be a list of names from its 'parameters', got {pinned!r:.80}"
        )
        pinned = []
    req = item.get("requires")
    if req is not None and not isinstance(req, str):
        problems.append(f"{label}: key 'requires' must be a path, got {req!r:.80}")
        req = None
    timeout = item.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < 1e7
    ):
        problems.append(f"{label}: key 'timeout' must be a positive number of seconds, got {timeout!r:.80}")
        timeout = None
    desc = item.get("description") or ""
    return Job(
        name=name,
        notebook=(root / nb).resolve(),
        parameters=dict(pars),
        grid={k: list(v) for k, v in grid.items()},
        requires=(root / req).resolve() if req else None,
        timeout=float(timeout) if timeout is not None else None,
        description=str(desc),
        pinned=tuple(pinned),
    )


def load_params_file(path: str | Path) -> tuple[dict[str, Any], Path]:
    """``-f FILE``: a YAML (or JSON) mapping parameter -> value; returns it with the file's resolved path
    (relative path values in it are relative to its folder, as in reports.yml)."""
    file = Path(path).expanduser().resolve()
    raw = load_yaml_file(file, "a parameters file (-f)")
    if raw is None:
        return {}, file
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        raise InputError(f"-f {file}: expected a mapping of parameter -> value, e.g. 'end: 2022-12-31'")
    return dict(raw), file
