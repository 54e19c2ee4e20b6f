"""Headline figures recorded by a notebook, saved to ``results.json`` next to its report.

In a notebook::

    from cannabis_market.reports import nb
    nb.record("lost_revenue_cad", lost)             # one figure
    nb.record_many({"stores": n, "share": s})       # several

Under ``cannabis-market report`` the runner sets ``CM_RESULTS_DIR`` for the kernel and the figures land in
``<that dir>/results.json`` under ``"figures"``; the runner then adds parameters, fingerprint, timings.
Run interactively (JupyterLab) there is no such variable: ``record`` does nothing but print a one-line
note the first time. Both functions return None, so a ``record(...)`` on a cell's last line prints nothing
into the report.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RESULTS_ENV = "CM_RESULTS_DIR"
RESULTS_FILE = "results.json"

_noted = False


def results_dir() -> Path | None:
    """Folder the runner asked figures to be written to, or None when running interactively."""
    value = os.environ.get(RESULTS_ENV, "").strip()
    return Path(value) if value else None


def jsonable(value: Any) -> Any:
    """Plain JSON form of a figure: numpy/polars scalars to Python, dates to ISO, NaN/inf to None."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    to_list = getattr(value, "to_list", None)  # polars Series
    if callable(to_list):
        return jsonable(to_list())
    ndim = getattr(value, "ndim", None)  # numpy scalar (ndim 0) or array
    if ndim == 0 and callable(getattr(value, "item", None)):
        return jsonable(value.item())
    if ndim and callable(getattr(value, "tolist", None)):
        return jsonable(value.tolist())
    raise TypeError(
        f"cannot record a value of type {type(value).__name__}; record numbers, strings, dates, "
        "booleans or lists/dicts of them"
    )


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object; a missing or unreadable file reads as {}."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON to a temp file in the same folder, then rename over ``path`` (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False, sort_keys=False)
            fh.write("\n")
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record_many(figures: Mapping[str, Any]) -> None:
    """Record several headline figures at once (name -> value); a name recorded again is replaced."""
    clean = {}
    for name, value in figures.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"figure names must be non-empty strings, got {name!r}")
        clean[name] = jsonable(value)
    folder = results_dir()
    if folder is None:
        global _noted
        if not _noted:
            print(
                "note: record() only saves figures when run by `cannabis-market report`; "
                "nothing was written (this is fine when working interactively).",
                file=sys.stderr,
            )
            _noted = True
        return
    path = folder / RESULTS_FILE
    data = read_json(path)
    data.setdefault("figures", {}).update(clean)
    write_json_atomic(path, data)


def set_status(status: str) -> None:
    """Tell the runner how the notebook ended (e.g. ``suppressed``: the selection may not be published;
    figures recorded so far are dropped). Interactively a no-op."""
    folder = results_dir()
    if folder is None:
        return
    path = folder / RESULTS_FILE
    data = read_json(path)
    data.update(status=str(status), figures={})
    write_json_atomic(path, data)


def record(name: str, value: Any) -> None:
    """Record one headline figure under ``name`` (replacing an earlier value)."""
    record_many({name: value})


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import (os.umask can only be read by setting it)
