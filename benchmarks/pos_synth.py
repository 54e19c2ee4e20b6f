"""Synthetic retailer POS export in the example mapping's layout, written a block of days at a time.

``write_pos_export(path, lines)`` writes a ';'-separated CSV with the columns of
``data/examples/pos_export.example.csv`` (dd/mm/yyyy dates, '1.234,56' amounts, 13% tax included,
a few refunds, some category spellings in other cases, an 'Accessory' category left to the default):
300 stores over two years, as many transaction lines as asked (20M lines is about 1 GB). Memory stays
small because each block is generated, written and dropped. ``split_by_month`` writes the same kind of
export as one file per month, for multi-file imports. Also usable as a script:

    python benchmarks/pos_synth.py OUT.csv LINES
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import polars as pl

HEADER = ["Sale Date", "Store #", "City", "Banner", "Product Type", "Net Sales", "Grams Sold"]
CITIES = ["Toronto", "Ottawa", "Hamilton", "London", "Mississauga", "Kingston", "Sudbury", "Windsor"]
TYPES = ["Flower", "Pre-Roll", "Vape", "Edible", "Drink", "Concentrate", "Accessory", "flower", "VAPE"]
TYPE_P = [0.36, 0.18, 0.16, 0.08, 0.05, 0.05, 0.04, 0.05, 0.03]
PRICE = [9.5, 11.0, 30.0, 6.0, 5.0, 35.0, 0.0, 9.5, 30.0]  # per gram (accessories: flat, no grams)
START = dt.date(2022, 1, 1)


def _amount_text(cents: pl.Expr) -> pl.Expr:
    """Integer cents -> '1.234,56' text (negative with a leading '-')."""
    a = cents.abs()
    units, frac = a // 100, (a % 100).cast(pl.String).str.zfill(2)
    thousands = units // 1000
    body = (
        pl.when(thousands > 0)
        .then(pl.format("{}.{}", thousands, (units % 1000).cast(pl.String).str.zfill(3)))
        .otherwise(units.cast(pl.String))
    )
    return pl.when(cents < 0).then(pl.lit("-")).otherwise(pl.lit("")) + pl.format("{},{}", body, frac)


def block(days: np.ndarray, n: int, stores: int, rng: np.random.Generator) -> pl.DataFrame:
    """`n` transaction lines on the given day offsets, as the export's text columns."""
    store = rng.integers(0, stores, n)
    day = np.sort(rng.choice(days, n))
    typ = rng.choice(len(TYPES), n, p=TYPE_P)
    grams = np.round(rng.gamma(2.0, 2.0, n), 2)
    price = np.asarray(PRICE)[typ]
    cents = np.where(price > 0, np.round(grams * price * 113), rng.integers(500, 5000, n)).astype(np.int64)
    grams = np.where(price > 0, grams, np.nan)
    # a refund returns a quarter of the line before it (same day, store, type): totals stay >= 0
    refund = rng.random(n) < 0.01
    refund[0] = False
    refund[1:] &= ~refund[:-1]
    prev = np.flatnonzero(refund) - 1
    store[refund], typ[refund], day[refund] = store[prev], typ[prev], day[prev]
    cents[refund], grams[refund] = -(cents[prev] // 4), -grams[prev] / 4
    frame = pl.DataFrame(
        {
            "day": day.astype(np.int32),
            "store": store.astype(np.int32),
            "typ": typ.astype(np.int32),
            "cents": cents,
            "grams": grams,
        }
    )
    dates = pl.lit(START) + pl.duration(days=pl.col("day"))
    return frame.select(
        dates.dt.strftime("%d/%m/%Y").alias(HEADER[0]),
        pl.format("ST-{}", pl.col("store").cast(pl.String).str.zfill(3)).alias(HEADER[1]),
        pl.col("store").mod(len(CITIES)).replace_strict(dict(enumerate(CITIES))).alias(HEADER[2]),
        pl.lit("Fake Leaf Co.").alias(HEADER[3]),
        pl.col("typ").replace_strict(dict(enumerate(TYPES))).alias(HEADER[4]),
        _amount_text(pl.col("cents")).alias(HEADER[5]),
        pl.when(pl.col("grams").is_nan())
        .then(pl.lit(None, pl.String))
        .otherwise(pl.col("grams").round(2).cast(pl.String).str.replace(".", ",", literal=True))
        .alias(HEADER[6]),
    )


def write_pos_export(
    path: str | Path, lines: int, stores: int = 300, days: int = 730, seed: int = 7, blocks: int = 40
) -> Path:
    """Write `lines` transaction lines (one CSV) over `stores` stores and `days` days; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    edges = np.linspace(0, days, min(blocks, days) + 1).astype(int)
    with open(path, "wb") as fh:
        fh.write((";".join(HEADER) + "\n").encode())
        for k, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
            n = lines // (len(edges) - 1) + (1 if k < lines % (len(edges) - 1) else 0)
            block(np.arange(a, b), n, stores, rng).write_csv(fh, separator=";", include_header=False)
    return path


def split_by_month(path: str | Path, out_dir: str | Path) -> list[Path]:
    """Split an export written by `write_pos_export` into one file per month (small files only)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = pl.read_csv(path, separator=";", infer_schema=False)
    month = pl.col(HEADER[0]).str.slice(6, 4) + "-" + pl.col(HEADER[0]).str.slice(3, 2)
    files = []
    for (m,), part in df.with_columns(month.alias("_m")).group_by("_m", maintain_order=True):
        f = out_dir / f"pos_{m}.csv"
        part.drop("_m").write_csv(f, separator=";")
        files.append(f)
    return files


if __name__ == "__main__":
    print(write_pos_export(sys.argv[1], int(sys.argv[2])))
