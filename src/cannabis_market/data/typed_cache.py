"""Read a dataset once per build: its validated, typed tables cached as Arrow IPC by content fingerprint.

The first load of a dataset (after validation) writes each table, already cast to the contract types,
to `$XDG_CACHE_HOME/cannabis_market/typed/<key>/<table>.arrow` (uncompressed IPC, written by a
streaming sink so memory stays bounded). Later loads of the same content -- every notebook kernel of a
build, every re-run -- memory-map those files instead of parsing CSV or decoding Parquet again. The key
is the content fingerprint plus the validator version, so an edited dataset never reads stale rows.
Only the most recent entries are kept; `CM_TYPED_CACHE=0` turns the cache off. Failures to write (a
read-only or full disk) only cost the speed-up.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import polars as pl

KEEP = 3
"""Datasets kept in the cache (most recently used first); older entries are removed once idle."""
IDLE_S = 3600.0
"""An entry used within this many seconds is never removed: a kernel of a running build may still be
reading its memory-mapped files (a build over several datasets must not evict its own inputs)."""
COMPLETE = ".complete"


def cache_root() -> Path:
    """`$XDG_CACHE_HOME/cannabis_market/typed` (default `~/.cache/...`)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cannabis_market" / "typed"


def enabled() -> bool:
    return os.environ.get("CM_TYPED_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


def scan_cached(key: str, names: list[str]) -> dict[str, pl.LazyFrame] | None:
    """Memory-mapped scans of the cached tables `names` under `key`, or None when not (fully) cached."""
    folder = cache_root() / key
    if not enabled() or not (folder / COMPLETE).is_file():
        return None
    files = {n: folder / f"{n}.arrow" for n in names}
    if not all(f.is_file() for f in files.values()):
        return None
    try:
        os.utime(folder / COMPLETE)  # most recently used
        return {n: pl.scan_ipc(f, glob=False) for n, f in files.items()}
    except (OSError, pl.exceptions.PolarsError):
        return None


def store(key: str, tables: dict[str, pl.LazyFrame]) -> bool:
    """Write `tables` under `key` (into a temporary folder, renamed when complete); True on success."""
    if not enabled():
        return False
    root = cache_root()
    final, tmp = root / key, root / f".tmp-{key}-{os.getpid()}"
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        for name, lf in tables.items():
            lf.sink_ipc(tmp / f"{name}.arrow", compression="uncompressed", engine="streaming")
        (tmp / COMPLETE).touch()
        if final.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _prune(root, keep=key)
        return True
    except (OSError, pl.exceptions.PolarsError):
        shutil.rmtree(tmp, ignore_errors=True)
        return False


DERIVED = "derived"


def read_derived(key: str, name: str) -> pl.DataFrame | None:
    """The derived frame `name` kept beside the complete entry `key` (memory-mapped), or None."""
    folder = cache_root() / key
    path = folder / DERIVED / f"{name}.arrow"
    if not enabled() or not (folder / COMPLETE).is_file() or not path.is_file():
        return None
    try:
        return pl.scan_ipc(path, glob=False).collect()
    except (OSError, pl.exceptions.PolarsError):
        return None


def write_derived(key: str, name: str, frame: pl.DataFrame) -> bool:
    """Keep `frame` as the derived frame `name` of the complete entry `key` (written to a temporary file,
    renamed when whole, so a concurrent reader sees all of it or nothing); True on success."""
    folder = cache_root() / key
    if not enabled() or not (folder / COMPLETE).is_file():
        return False
    path = folder / DERIVED / f"{name}.arrow"
    tmp = path.with_name(f".tmp-{name}-{os.getpid()}.arrow")
    try:
        path.parent.mkdir(exist_ok=True)
        frame.write_ipc(tmp, compression="uncompressed")
        os.replace(tmp, path)
        return True
    except (OSError, pl.exceptions.PolarsError):
        tmp.unlink(missing_ok=True)
        return False


def discard(key: str) -> None:
    """Remove the entry `key` (e.g. its source changed while it was written)."""
    shutil.rmtree(cache_root() / key, ignore_errors=True)


def _prune(root: Path, keep: str, now: float | None = None) -> None:
    """Remove complete entries beyond the KEEP most recently used ones that nobody used for IDLE_S
    seconds (never `keep`)."""
    now = time.time() if now is None else now
    entries = []
    for p in root.iterdir():
        try:
            if p.is_dir() and (p / COMPLETE).is_file():
                entries.append((p, (p / COMPLETE).stat().st_mtime))
        except OSError:
            continue
    entries.sort(key=lambda e: e[1], reverse=True)
    for old, used in entries[KEEP:]:
        if old.name != keep and now - used > IDLE_S:
            shutil.rmtree(old, ignore_errors=True)
