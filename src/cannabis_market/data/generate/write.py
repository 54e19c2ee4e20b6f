"""Argument checks and the public entry point: simulate, write the tables, swap the folder into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import yaml

from cannabis_market.data.contract import FREQUENCIES
from cannabis_market.data.generate.calibration import (
    DEFAULT_STORES,
    LATEST_END,
    MARKET_START,
    MAX_STORES,
    MIN_STORES,
    PARAMS,
)
from cannabis_market.data.generate.simulate import _simulate
from cannabis_market.data.generate.tables import (
    _events_frame,
    _inventory_frame,
    _population_frame,
    _sales_frame,
    _store_ids,
    _stores_frame,
)
from cannabis_market.data.generate.truth import _manifest
from cannabis_market.errors import InputError

# ------------------------------------------------------------------------------------------ arguments


def _as_date(value: str | date, what: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise InputError(f"{what}: {value!r} is not a date in ISO format YYYY-MM-DD") from None
    raise InputError(f"{what}: expected a date or an ISO date string, got {type(value).__name__}")


def _is_generated(folder: Path) -> bool:
    m = folder / "manifest.yml"
    if not m.is_file():
        return False
    try:
        man = yaml.safe_load(m.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return False
    return (
        isinstance(man, dict) and man.get("source") == "synthetic" and isinstance(man.get("generator"), dict)
    )


def _check_args(
    out: str | Path, seed: int, stores: int | None, start: str | date, end: str | date, frequency: str
) -> tuple[Path, int, int, date, date, str]:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    if stores is None:
        stores = DEFAULT_STORES
    if isinstance(stores, bool) or not isinstance(stores, (int, np.integer)):
        raise InputError(f"stores must be an integer (or None for the province-wide default), got {stores!r}")
    if not MIN_STORES <= stores <= MAX_STORES:
        raise InputError(
            f"stores must be between {MIN_STORES} and {MAX_STORES} (peak number of open stores), got {stores}"
        )
    if frequency not in FREQUENCIES:
        raise InputError(f"frequency must be one of {', '.join(FREQUENCIES)}, got {frequency!r}")
    s, e = _as_date(start, "start"), _as_date(end, "end")
    if e <= s:
        raise InputError(f"end ({e}) must be after start ({s})")
    if s < MARKET_START:
        raise InputError(
            f"start ({s}) is before {MARKET_START}, the first day of private cannabis retail in Ontario"
        )
    if e > LATEST_END:
        raise InputError(f"end ({e}) is after {LATEST_END}, the latest date the generator extrapolates to")
    if frequency == "monthly":  # monthly datasets cover whole months
        s = s.replace(day=1)
        e = _month_end(e)
        e = min(e, LATEST_END)
    if out is None or (isinstance(out, str) and not out.strip()):
        raise InputError("out: an output folder is required")
    path = Path(out)
    if path.exists():
        if not path.is_dir():
            raise InputError(f"out: {path} exists and is a file; give a folder path for the dataset")
        if any(path.iterdir()) and not _is_generated(path):
            raise InputError(
                f"out: folder {path} is not empty and is not a previously generated dataset; "
                "refusing to overwrite it (choose another folder or empty it)"
            )
    return path, int(seed), int(stores), s, e, frequency


def _month_end(d: date) -> date:
    nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return nxt - timedelta(days=1)


# ------------------------------------------------------------------------------------------ public API


def generate_dataset(
    out: str | Path,
    seed: int = 2022,
    stores: int | None = None,
    start: str | date = "2019-04-01",
    end: str | date = "2024-12-31",
    frequency: str = "daily",
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write a synthetic Ontario-like dataset (manifest with ground truth + tables) to the folder `out`.

    `stores` is the peak number of open stores (None = Ontario's 1,758); smaller values scale the market
    down with fewer municipalities. The same arguments always give byte-identical files. The folder is
    written next to `out` and renamed into place; a previously generated dataset at `out` is replaced.
    Raises InputError for bad arguments.
    """
    path, seed, n_stores, s, e, frequency = _check_args(out, seed, stores, start, end, frequency)
    say = progress or (lambda _msg: None)
    p = PARAMS
    monthly = frequency == "monthly"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        sim = _simulate(seed, n_stores, s, e, p, say)
        ids = _store_ids(sim.n)
        stores_df, _ = _stores_frame(sim, ids, monthly)
        say(f"stores: {stores_df.height:,} ({sim.n:,} ever opened since {MARKET_START})")
        sales = _sales_frame(sim, ids, monthly)
        say(f"sales: {sales.height:,} rows")
        sales.write_parquet(tmp / "sales.parquet", compression="zstd", statistics=True)
        del sales
        stores_df.write_csv(tmp / "stores.csv")
        _population_frame(sim, s, e).write_csv(tmp / "population.csv")
        events = _events_frame(sim, p)
        if events.height:
            events.write_csv(tmp / "events.csv")
        inv = _inventory_frame(sim, ids, p, seed, monthly)
        if inv.height:
            inv.write_parquet(tmp / "inventory.parquet", compression="zstd", statistics=True)
        manifest = _manifest(sim, p, ids, seed, n_stores, s, e, frequency)
        (tmp / "manifest.yml").write_text(
            yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
        say("tables written")
        _swap_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _swap_into_place(tmp: Path, path: Path) -> None:
    """Rename the finished temporary folder to `path`, replacing an empty or previously generated folder."""
    if path.exists():
        if any(path.iterdir()):
            if not _is_generated(path):  # re-check: the folder may have changed while we were generating
                raise InputError(f"out: folder {path} is not empty and is not a previously generated dataset")
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.rmdir(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
            return
        os.rmdir(path)
    os.replace(tmp, path)
