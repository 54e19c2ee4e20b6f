"""Where a notebook's relative paths point, so the notebooks run from any working directory.

The report notebooks default to ``dataset = "../data/sample"``: right when the kernel starts in
``notebooks/`` (JupyterLab, ``cannabis-market report``), wrong for ``papermill notebooks/04_….ipynb out.ipynb``
run from the repository root. ``dataset_path`` tries the working directory first and then the
repository's ``notebooks/`` folder, and names the parameter when neither holds the path.
"""

from __future__ import annotations

import os
from pathlib import Path

from cannabis_market.errors import InputError

REPO_MARKER = "reports.yml"


def _repo_root(start: Path) -> Path | None:
    """The nearest folder at or above `start` that holds reports.yml and a notebooks/ folder."""
    for folder in (start, *start.parents):
        if (folder / REPO_MARKER).is_file() and (folder / "notebooks").is_dir():
            return folder
    return None


def notebooks_dir() -> Path | None:
    """The repository's ``notebooks/`` folder: found from the package's location (a source checkout or
    an editable install), else from the working directory upwards; None when neither is in a checkout."""
    here = Path(__file__).resolve().parent
    root = _repo_root(here) or _repo_root(Path.cwd().resolve())
    return root / "notebooks" if root else None


def dataset_path(path: str | os.PathLike[str], parameter: str = "dataset") -> Path:
    """Resolve a notebook's dataset parameter to an existing folder.

    Absolute paths are used as given. A relative path is tried against the working directory, then
    against the repository's ``notebooks/`` folder (where the notebooks' defaults are written from).
    Raises InputError naming `parameter` and every place looked at when the path is nowhere.
    """
    if path is None or str(path).strip() == "":
        raise InputError(
            f"parameter {parameter!r}: empty; give the dataset folder (e.g. -p {parameter} data/sample)"
        )
    p = Path(os.path.expanduser(str(path).strip()))
    tried = [p] if p.is_absolute() else [Path.cwd() / p]
    nbdir = None if p.is_absolute() else notebooks_dir()
    if nbdir is not None:
        tried.append(nbdir / p)
    for candidate in tried:
        if candidate.exists():
            return candidate.resolve()
    where = " or ".join(str(t) for t in dict.fromkeys(c.resolve() for c in tried))
    raise InputError(
        f"parameter {parameter!r} = {str(path)!r}: no such folder (looked at {where}); relative paths are "
        "read from the working directory, then from the repository's notebooks/ folder"
    )
