"""How long runs took before, so a parallel build starts the longest ones first.

With ``--jobs 2`` and runs started in the order they are listed, a long run listed last keeps one core
busy alone at the end of the build (the four default reports: 20 s with 02 and 04 listed late, 15.5 s
longest first). Every finished run's wall time is kept in ``$XDG_CACHE_HOME/cannabis_market/
durations.json`` under its notebook and slug (the last ``KEEP`` runs); the next build orders its runs
by those times, longest first. A run never seen before gets the mean of its notebook's other runs, and
a notebook never seen goes first (as it could be the longest). Nothing here changes what a run does or
produces, only when it starts; a missing or unreadable log only costs the ordering. ``CM_REPORT_ORDER=
listed`` keeps the listed order.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

KEEP = 500
_LOCK = threading.Lock()


class _Spec(Protocol):
    notebook: str
    slug: str


def log_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cannabis_market" / "durations.json"


def _key(spec: _Spec) -> tuple[str, str]:
    return str(Path(spec.notebook).resolve()), spec.slug


def _read() -> dict[str, float]:
    try:
        raw = json.loads(log_path().read_text(encoding="utf-8"))
        return {str(k): float(v) for k, v in dict(raw).items()}
    except (OSError, ValueError, TypeError):
        return {}


def record(spec: _Spec, seconds: float) -> None:
    """Keep ``seconds`` as the last wall time of ``spec``'s run (best effort; never raises)."""
    nb, slug = _key(spec)
    with _LOCK:
        log = _read()
        log.pop(f"{nb}\0{slug}", None)
        log[f"{nb}\0{slug}"] = round(float(seconds), 2)  # most recent last
        kept = dict(list(log.items())[-KEEP:])
        path = log_path()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(kept), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)


def expected(specs: Sequence[_Spec]) -> list[float | None]:
    """Each run's expected wall time from the log: its own last time, else the mean of its notebook's
    other runs, else None (never run here)."""
    by_nb: dict[str, list[float]] = {}
    times: dict[tuple[str, str], float] = {}
    for k, v in _read().items():
        nb, _, slug = k.partition("\0")
        times[nb, slug] = v
        by_nb.setdefault(nb, []).append(v)
    out: list[float | None] = []
    for spec in specs:
        nb, slug = _key(spec)
        own = times.get((nb, slug))
        others = by_nb.get(nb)
        out.append(own if own is not None else (sum(others) / len(others) if others else None))
    return out


def longest_first(specs: Sequence[_Spec]) -> list[int]:
    """Indices of ``specs`` in the order to start them: never-seen runs first (as listed), then by
    expected time, longest first (ties as listed)."""
    if os.environ.get("CM_REPORT_ORDER", "").strip().lower() == "listed":
        return list(range(len(specs)))
    times = expected(specs)
    return sorted(range(len(specs)), key=lambda i: (times[i] is not None, -(times[i] or 0.0), i))
