"""Colorado public cannabis statistics -> `series` (USD), from up to three files, each optional:

- **monthly revenue workbook** (CDOR sales reports; sheet `CO Monthly Data`: `date`, `total_revenue`,
  `retail_revenue`, `medical_revenue`) -> geo "Colorado", metrics `sales`, `retail_sales`, `medical_sales`.
- **MED stores workbook** (sheet `Analysis`: `Date`, `Retail-Marijuana-Stores`, `Retail-Store-Entries`,
  `Retail-Store-Exits`, `Medical-Marijuana-Centers`, `Total-Retail-Marijuana-Revenue`) -> geo "Colorado",
  metrics `stores`, `store_entries`, `store_exits`, `medical_centers`, and `retail_sales_est`. The last is
  the workbook's own revenue column, which has fractional dollars (it looks derived from tax receipts);
  the CDOR `retail_sales` above is the reported figure and is preferred where both exist.
- **county CSV** (CDOR county export: `Month`, `Year`, `County`, `Med_Sales`, `Rec_Sales`,
  `Med_Blank_Code`, `Rec_Blank_Code`) -> geo "<County> County, CO", metrics `retail_sales`,
  `medical_sales`. Amounts have thousands separators. A blank code NR (not reported, confidentiality) or NL
  (no licensed stores) makes the cell missing: no row is written and the codes are counted, so county sums
  understate the state total. The "Sum of NR Counties" row is dropped: its meaning changes within the file
  (from 2019-11 it equals the state total), so it is neither a county nor a reliable remainder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from cannabis_market.data.adapters import (
    ROW,
    bad_rows,
    melt_metrics,
    monthly_problems,
    parse_month,
    parse_number,
    plural,
    problem,
    raise_problems,
    read_sheet,
    series_frame,
    write_dataset,
)
from cannabis_market.data.csvio import read_csv_text
from cannabis_market.errors import InputError

REVENUE_SHEET = "CO Monthly Data"
REVENUE_METRICS = {
    "sales": "total_revenue",
    "retail_sales": "retail_revenue",
    "medical_sales": "medical_revenue",
}
STORES_SHEET = "Analysis"
STORES_METRICS = {
    "stores": "Retail-Marijuana-Stores",
    "store_entries": "Retail-Store-Entries",
    "store_exits": "Retail-Store-Exits",
    "medical_centers": "Medical-Marijuana-Centers",
    "retail_sales_est": "Total-Retail-Marijuana-Revenue",
}
COUNTY_COLUMNS = ("Month", "Year", "County", "Med_Sales", "Rec_Sales")
BLANK_CODES = {"NR": "not reported (confidentiality)", "NL": "no licensed stores"}
NR_SUM_ROW = "Sum of NR Counties"


def _monthly_sheet(
    xlsx: str | Path, sheet: str, date_col: str, metrics: dict[str, str], required: tuple[str, ...]
) -> tuple[pl.DataFrame, dict[str, Any]]:
    raw, sheet_name, label = read_sheet(xlsx, None, (date_col, *required), default_sheet=sheet)
    raw = raw.filter(~pl.all_horizontal(pl.col(c).is_null() for c in raw.columns if c != ROW))
    present = {m: c for m, c in metrics.items() if c in raw.columns}
    # rows without a date are blank trailer rows (the MED sheet has 40 of them); they must be blank throughout
    dated = raw.filter(pl.col(date_col).is_not_null())
    df = dated.with_columns(
        parse_month(date_col).alias("date"), *[parse_number(c).alias(f"_{m}") for m, c in present.items()]
    )
    problems = monthly_problems(
        df,
        label,
        date_col,
        "date",
        {f"_{m}": c for m, c in present.items()},
        "2014-01-01",
        "counts and sales",
    )
    raise_problems(problems, label)
    if df.height == 0:
        raise InputError(f"{label}: no dated rows below the header")
    series, missing = melt_metrics(df, "Colorado", {m: pl.col(f"_{m}") for m in present})
    notes = {
        "file": Path(xlsx).name,
        "sheet": sheet_name,
        "rows": series.height,
        "first": str(df["date"].min()),
        "last": str(df["date"].max()),
        "metrics": present,
        "empty_cells_skipped": missing,
    }
    return series, notes


def read_monthly_revenue(xlsx: str | Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    """CDOR monthly revenue workbook -> Colorado `sales`, `retail_sales`, `medical_sales` (USD)."""
    return _monthly_sheet(xlsx, REVENUE_SHEET, "date", REVENUE_METRICS, ("total_revenue",))


def read_med_stores(xlsx: str | Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    """MED analysis workbook -> Colorado `stores`, entries, exits, medical centers, `retail_sales_est`."""
    return _monthly_sheet(xlsx, STORES_SHEET, "Date", STORES_METRICS, ("Retail-Marijuana-Stores",))


def read_county_sales(csv: str | Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    """CDOR county CSV -> per-county `retail_sales`/`medical_sales`; NR/NL cells missing, not zero."""
    path = Path(csv)
    raw = read_csv_text(path)
    label = path.name
    missing = [c for c in COUNTY_COLUMNS if c not in raw.columns]
    if missing:
        raise InputError(
            f"{label}: required column(s) {', '.join(repr(c) for c in missing)} missing "
            f"(columns found: {', '.join(raw.columns[:12])}); expected the CDOR county sales export"
        )
    raw = raw.with_row_index(ROW, offset=1)
    n_nr_sum = int((raw["County"].str.strip_chars() == NR_SUM_ROW).sum())
    df = raw.filter(pl.col("County").str.strip_chars() != NR_SUM_ROW).with_columns(
        pl.col("Year").str.strip_chars().cast(pl.Int32, strict=False).alias("_y"),
        pl.col("Month").str.strip_chars().cast(pl.Int32, strict=False).alias("_m"),
        parse_number("Rec_Sales").alias("_rec"),
        parse_number("Med_Sales").alias("_med"),
        *[
            (
                pl.col(c).fill_null("").str.strip_chars().str.to_uppercase()
                if c in raw.columns
                else pl.lit("")
            ).alias(f"_{c}")
            for c in ("Rec_Blank_Code", "Med_Blank_Code")
        ],
    )
    problems: list[str] = []
    n, ex = bad_rows(df, df["_y"].is_null() | ~df["_y"].is_between(1990, 2100), "Year")
    if n:
        problems.append(problem(label, "Year", f"{plural(n, 'value')} not a year", ex))
    n, ex = bad_rows(df, df["_m"].is_null() | ~df["_m"].is_between(1, 12), "Month")
    if n:
        problems.append(problem(label, "Month", f"{plural(n, 'value')} not a month number 1-12", ex))
    n, ex = bad_rows(df, df["County"].is_null(), "County")
    if n:
        problems.append(problem(label, "County", f"{plural(n, 'row')} without a county", ex))
    for col, parsed, code in (
        ("Rec_Sales", "_rec", "_Rec_Blank_Code"),
        ("Med_Sales", "_med", "_Med_Blank_Code"),
    ):
        n, ex = bad_rows(
            df, df[col].is_not_null() & (df[col].str.strip_chars() != "") & df[parsed].is_null(), col
        )
        if n:
            problems.append(problem(label, col, f"{plural(n, 'value')} not a number (e.g. 1,234,567)", ex))
        n, ex = bad_rows(df, df[parsed] < 0, col)
        if n:
            problems.append(problem(label, col, f"{plural(n, 'value')} negative", ex))
        unknown = ~df[code].is_in(["", *BLANK_CODES])
        n, ex = bad_rows(df, unknown, code[1:])
        if n:
            problems.append(
                problem(label, code[1:], f"{plural(n, 'value')} not a known blank code (NR, NL or empty)", ex)
            )
    dup = df.filter(pl.struct("_y", "_m", "County").is_duplicated())
    if dup.height:
        ex = [(int(r), v) for r, v in dup.select(ROW, "County").head(3).iter_rows()]
        problems.append(problem(label, "County", f"{plural(dup.height, 'row')} repeat a county-month", ex))
    raise_problems(problems, label)
    if df.height == 0:
        raise InputError(f"{label}: no county rows")
    df = df.with_columns(
        pl.date(pl.col("_y"), pl.col("_m"), 1).alias("date"),
        (pl.col("County").str.strip_chars() + " County, CO").alias("geo"),
    )
    parts = []
    counts: dict[str, dict[str, int]] = {}
    for metric, parsed, code in (
        ("retail_sales", "_rec", "_Rec_Blank_Code"),
        ("medical_sales", "_med", "_Med_Blank_Code"),
    ):
        blank = pl.col(code) != ""
        counts[metric] = {k: int(df.filter(pl.col(code) == k).height) for k in BLANK_CODES} | {
            "empty_without_code": int(df.filter(~blank & pl.col(parsed).is_null()).height)
        }
        parts.append(
            df.filter(~blank & pl.col(parsed).is_not_null()).select(
                "date", "geo", pl.lit(metric).alias("metric"), pl.col(parsed).alias("value")
            )
        )
    series = series_frame(pl.concat(parts))
    months = df.select("date").unique().sort("date")["date"]
    full = pl.date_range(months.min(), months.max(), "1mo", eager=True)  # type: ignore[arg-type]
    notes = {
        "file": label,
        "rows": series.height,
        "counties": int(df["geo"].n_unique()),
        "first": str(months.min()),
        "last": str(months.max()),
        "months_absent": [str(d) for d in sorted(set(full.to_list()) - set(months.to_list()))],
        "blank_codes": counts,
        "blank_code_meaning": BLANK_CODES,
        "sum_of_nr_counties_rows_dropped": n_nr_sum,
    }
    return series, notes


def import_colorado(
    out: str | Path,
    monthly_revenue: str | Path | None = None,
    stores: str | Path | None = None,
    county: str | Path | None = None,
) -> tuple[Path, str]:
    """Write a monthly series dataset from any of the three Colorado files; atomic. Returns (path, summary)."""
    if not (monthly_revenue or stores or county):
        raise InputError("give at least one of --monthly-revenue XLSX, --stores XLSX, --county CSV")
    parts, notes = [], {}
    for key, fn, src in (
        ("monthly_revenue", read_monthly_revenue, monthly_revenue),
        ("stores", read_med_stores, stores),
        ("county", read_county_sales, county),
    ):
        if src:
            s, n = fn(src)  # type: ignore[operator]
            parts.append(s)
            notes[key] = n
    series = series_frame(pl.concat(parts))
    used = ", ".join(n["file"] for n in notes.values())
    desc = [f"Colorado public cannabis statistics (USD) imported from {used}."]
    if "monthly_revenue" in notes:
        desc.append("Statewide sales, retail_sales and medical_sales from the CDOR monthly sales reports.")
    if "stores" in notes:
        desc.append(
            "Retail store counts, entries and exits from the MED workbook; its retail_sales_est is the "
            "workbook's own (tax-derived) revenue figure, prefer retail_sales where both exist."
        )
    if "county" in notes:
        desc.append(
            "County sales: NR (not reported) and NL (no licensed stores) cells are missing, not zero, so "
            "county sums understate the state total; the 'Sum of NR Counties' row is dropped."
        )
    manifest = {
        "name": Path(out).name,
        "description": " ".join(desc),
        "source": "other",
        "frequency": "monthly",
        "currency": "USD",
        "region": "Colorado",
        "import": notes,
    }
    path = write_dataset(out, "colorado", manifest, {"series": series})
    bits = [f"{k}: {n['rows']} rows {n['first']}..{n['last']}" for k, n in notes.items()]
    return path, f"{series.height} series rows ({'; '.join(bits)})"
