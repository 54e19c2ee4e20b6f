"""Synthetic store-day x category sales panels for the benchmarks, written once to Parquet.

The generator is plain numpy with a fixed seed; rows are produced a block of stores at a time and
appended to the Parquet file as row groups, so generating a table far larger than memory stays within
a few hundred MB. A finished panel is a folder under ``benchmarks/_data/`` holding ``sales.parquet``,
``stores.parquet`` and ``meta.json`` (written last: a folder without it is incomplete and rebuilt).

Shape: ``DAYS`` days from ``START`` (24 whole months), all seven contract categories every day a store
is open. Most stores open before the window starts, the rest during it, and some close; so store
counts per month vary and opening/closing months are partial, as in the real market.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
# CM_BENCH_DATA moves the generated files elsewhere (the smoke test uses a temporary folder).
DATA_DIR = Path(os.environ.get("CM_BENCH_DATA") or HERE / "_data")
GENERATOR_VERSION = 2
START = dt.date(2022, 1, 1)
DAYS = 730
CATEGORIES = ("dried_flower", "pre_rolls", "vapes", "edibles", "beverages", "extracts", "other")
CAT_SHARE = np.array([0.38, 0.22, 0.18, 0.08, 0.04, 0.07, 0.03])
CAT_PRICE = np.array([6.5, 9.0, 22.0, 30.0, 12.0, 25.0, 15.0])  # CAD per gram (gram-equivalent)
REGIONS = ("Toronto", "Central", "East", "West", "North")
N_MUNICIPALITIES = 60
SALES_SCHEMA = pa.schema(
    [
        ("date", pa.date32()),
        ("store_id", pa.string()),
        ("category", pa.string()),
        ("revenue", pa.float64()),
        ("grams", pa.float64()),
    ]
)


def panel_dir(target_rows: int, seed: int) -> Path:
    return DATA_DIR / f"panel_{target_rows}_s{seed}_v{GENERATOR_VERSION}"


def _stores(n_stores: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Store ids, municipality/region and open/close day offsets (relative to START)."""
    muni_region = rng.integers(0, len(REGIONS), N_MUNICIPALITIES)
    muni = rng.integers(0, N_MUNICIPALITIES, n_stores)
    early = rng.random(n_stores) < 0.75
    opened = np.where(early, -rng.integers(1, 900, n_stores), rng.integers(0, DAYS - 30, n_stores))
    closes = rng.random(n_stores) < 0.08
    close_day = np.maximum(opened, 0) + rng.integers(30, DAYS, n_stores)
    closed = np.where(closes & (close_day < DAYS - 1), close_day, -1)  # -1: still open
    return {
        "store_id": np.array([f"S{i:06d}" for i in range(n_stores)]),
        "municipality": np.array([f"M{m:02d}" for m in muni]),
        "region": np.array([REGIONS[muni_region[m]] for m in muni]),
        "opened": opened.astype(np.int64),
        "closed": closed.astype(np.int64),
    }


def _day_offsets(first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expand [first, last] day ranges per store into (store position, day) pairs."""
    lengths = np.maximum(last - first + 1, 0)
    pos = np.repeat(np.arange(len(first)), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    day = np.arange(lengths.sum()) - starts + np.repeat(first, lengths)
    return pos, day


def _block(
    st: dict[str, np.ndarray], lo: int, hi: int, base: np.ndarray, dow: np.ndarray, rng: np.random.Generator
) -> pa.Table:
    """Sales rows of stores lo..hi-1 (store, day, category order)."""
    first = np.maximum(st["opened"][lo:hi], 0)
    last = np.where(st["closed"][lo:hi] >= 0, st["closed"][lo:hi], DAYS - 1)
    pos, day = _day_offsets(first, last)
    n_cat = len(CATEGORIES)
    pos = np.repeat(pos, n_cat)
    day = np.repeat(day, n_cat)
    cat = np.tile(np.arange(n_cat, dtype=np.int32), len(pos) // n_cat)
    noise = rng.lognormal(0.0, 0.25, len(pos))
    revenue = base[lo:hi][pos] * dow[day] * CAT_SHARE[cat] * noise
    grams = revenue / (CAT_PRICE[cat] * rng.lognormal(0.0, 0.1, len(pos)))
    date = np.datetime64(START, "D") + day
    return pa.table(
        {
            "date": pa.array(date, type=pa.date32()),
            "store_id": pa.DictionaryArray.from_arrays(
                pa.array(pos + lo, type=pa.int32()), pa.array(st["store_id"])
            ).cast(pa.string()),
            "category": pa.DictionaryArray.from_arrays(pa.array(cat), pa.array(CATEGORIES)).cast(pa.string()),
            "revenue": pa.array(np.round(revenue, 2)),
            "grams": pa.array(np.round(grams, 3)),
        },
        schema=SALES_SCHEMA,
    )


def ensure_panel(target_rows: int, seed: int = 2024, block_rows: int = 2_000_000) -> dict:
    """Build (once) the panel of about `target_rows` sales rows; return its meta (paths, rows, sizes)."""
    out = panel_dir(target_rows, seed)
    meta_file = out / "meta.json"
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        if meta.get("version") == GENERATOR_VERSION:
            return meta
    shutil.rmtree(out, ignore_errors=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    # draw more stores than needed, keep the first ones whose open days reach the target row count
    st = _stores(int(target_rows / (DAYS * len(CATEGORIES) * 0.5)) + 2, rng)
    open_days = np.where(st["closed"] >= 0, st["closed"], DAYS - 1) - np.maximum(st["opened"], 0) + 1
    n_stores = int(np.searchsorted(np.cumsum(open_days * len(CATEGORIES)), target_rows)) + 1
    st = {k: v[:n_stores] for k, v in st.items()}
    base = rng.lognormal(np.log(9_000.0), 0.5, n_stores)
    dow = 1.0 + 0.18 * np.sin(2 * np.pi * (np.arange(DAYS) + 2) / 7) + 0.0002 * np.arange(DAYS)
    closed_on = [None if c < 0 else START + dt.timedelta(days=int(c)) for c in st["closed"]]
    pq.write_table(
        pa.table(
            {
                "store_id": st["store_id"],
                "municipality": st["municipality"],
                "region": st["region"],
                "opened_on": pa.array(np.datetime64(START, "D") + st["opened"], type=pa.date32()),
                "closed_on": pa.array(closed_on, type=pa.date32()),
                "chain": pa.nulls(n_stores, pa.string()),
            }
        ),
        tmp / "stores.parquet",
    )
    stores_per_block = max(1, block_rows // (DAYS * len(CATEGORIES)))
    rows = 0
    bytes_per_row = None
    with pq.ParquetWriter(tmp / "sales.parquet", SALES_SCHEMA, compression="zstd") as writer:
        for lo in range(0, n_stores, stores_per_block):
            table = _block(st, lo, min(lo + stores_per_block, n_stores), base, dow, rng)
            if bytes_per_row is None and table.num_rows:
                bytes_per_row = table.nbytes / table.num_rows
            rows += table.num_rows
            writer.write_table(table, row_group_size=1_000_000)
            del table
    meta = {
        "version": GENERATOR_VERSION,
        "seed": seed,
        "target_rows": target_rows,
        "rows": rows,
        "stores": n_stores,
        "days": DAYS,
        "categories": len(CATEGORIES),
        "arrow_bytes_per_row": round(bytes_per_row or 0.0, 2),
        "sales_file_bytes": (tmp / "sales.parquet").stat().st_size,
        "generate_seconds": round(time.perf_counter() - t0, 1),
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    try:
        os.replace(tmp, out)  # a complete folder appears at once; meta.json marks it as finished
    except OSError:  # another run finished the same panel first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
        return json.loads(meta_file.read_text())
    return meta


def panel_paths(meta: dict) -> tuple[Path, Path]:
    out = panel_dir(meta["target_rows"], meta["seed"])
    return out / "sales.parquet", out / "stores.parquet"
