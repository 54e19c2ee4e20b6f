"""Oregon OLCC monthly market data workbook (StatewideSalesTrend extract) -> `series`.

Sheet `data`: `date`, `total_sales`, `flower_sales`, `concentrate_sales` (USD), `retail_flower_price`,
`retail_concentrate_price` (USD per gram), `wholesale_flower_price`, `wholesale_concentrate_price`
(USD per **pound**). Output metrics, geo "Oregon", one row per month (date = month start):

| metric | from | unit |
|---|---|---|
| `sales` | total_sales | USD |
| `flower_sales` | flower_sales | USD |
| `concentrate_sales` | concentrate_sales | USD |
| `price_per_g` | retail_flower_price | USD per gram |
| `concentrate_price_per_g` | retail_concentrate_price | USD per gram |
| `wholesale_flower_price_per_g` | wholesale_flower_price / 453.592 | USD per gram |
| `wholesale_concentrate_price_per_g` | wholesale_concentrate_price / 453.592 | USD per gram |

Empty cells are missing values (no row; counted in the manifest), never zeros. Only `date`, `total_sales`
and `retail_flower_price` are required; the other columns are imported when present.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from cannabis_market.data.adapters import (
    melt_metrics,
    monthly_problems,
    parse_month,
    parse_number,
    raise_problems,
    read_sheet,
    write_dataset,
)

SHEET = "data"
GRAMS_PER_POUND = 453.592
REQUIRED = ("date", "total_sales", "retail_flower_price")
# metric -> (source column, divisor)
METRICS: dict[str, tuple[str, float]] = {
    "sales": ("total_sales", 1.0),
    "flower_sales": ("flower_sales", 1.0),
    "concentrate_sales": ("concentrate_sales", 1.0),
    "price_per_g": ("retail_flower_price", 1.0),
    "concentrate_price_per_g": ("retail_concentrate_price", 1.0),
    "wholesale_flower_price_per_g": ("wholesale_flower_price", GRAMS_PER_POUND),
    "wholesale_concentrate_price_per_g": ("wholesale_concentrate_price", GRAMS_PER_POUND),
}


def read_oregon(xlsx: str | Path, sheet: str | None = None) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Parse the OLCC workbook into a series frame [date, geo, metric, value] and import notes."""
    raw, sheet_name, label = read_sheet(xlsx, sheet, REQUIRED, default_sheet=SHEET)
    present = {m: src for m, src in METRICS.items() if src[0] in raw.columns}
    df = raw.with_columns(
        parse_month("date").alias("_date"),
        *[parse_number(src).alias(f"_{src}") for src, _ in present.values()],
    )
    problems = monthly_problems(
        df,
        label,
        "date",
        "_date",
        {f"_{src}": src for src, _ in present.values()},
        "2016-10-01",
        "sales and prices",
    )
    raise_problems(problems, label)
    if df.height == 0:
        raise_problems([f"{label}: no data rows below the header"], label)
    wide = df.with_columns(pl.col("_date").alias("date"))
    series, missing = melt_metrics(
        wide, "Oregon", {m: pl.col(f"_{src}") / div for m, (src, div) in present.items()}
    )
    notes = {
        "file": Path(xlsx).name,
        "sheet": sheet_name,
        "rows": series.height,
        "first": str(wide["date"].min()),
        "last": str(wide["date"].max()),
        "metrics": {m: f"{src} / {div:g}" if div != 1 else src for m, (src, div) in present.items()},
        "columns_absent": sorted({src for src, _ in METRICS.values()} - set(raw.columns)),
        "empty_cells_skipped": missing,
    }
    return series, notes


def import_oregon(xlsx: str | Path, out: str | Path, sheet: str | None = None) -> tuple[Path, str]:
    """Write a monthly series dataset from the OLCC workbook; atomic. Returns (path, summary)."""
    series, notes = read_oregon(xlsx, sheet)
    manifest = {
        "name": Path(out).name,
        "description": (
            f"Oregon Liquor and Cannabis Commission (OLCC) statewide monthly market data, imported from "
            f"{notes['file']}: sales in USD, retail flower and concentrate prices in USD per gram, wholesale "
            "prices converted from USD per pound to USD per gram (/453.592). Empty cells are missing, not zero."
        ),
        "source": "other",
        "frequency": "monthly",
        "currency": "USD",
        "region": "Oregon",
        "import": notes,
    }
    path = write_dataset(out, "oregon", manifest, {"series": series})
    info = f"{notes['rows']} rows, {len(notes['metrics'])} metrics, {notes['first']}..{notes['last']}"
    return path, info
