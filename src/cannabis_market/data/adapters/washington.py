"""Washington State LCB "MJ Sales Activity by License Number" (retailers sheet) -> stores + monthly sales.

The workbook has note rows, then `License Number`, `Reporting Period` (YYYY-MM), `Total Sales` (USD,
self-reported net sales) and `Excise Tax Due`. What the importer does, and why:

- **Licence numbers** are stored partly as text ('071368') and partly as numbers (71368) in the same
  column. They are normalized to text, digits-only values left-padded to 6 digits; suffixed values such as
  '421695-1' (supplementary reports filling a short month) are folded into the base licence. (Counting
  raw cells gives ~1,047 "licences"; normalized there are 544.)
- **Duplicate licence-months**: exact duplicate rows are dropped; rows with different amounts (a second
  report for the same month) are summed. Both are counted in the manifest.
- **Missing or negative Total Sales** rows are dropped and counted (never turned into zeros).
- **Incomplete final months**: late reports make the last months look like closures. A month among the
  final three is flagged when fewer licences reported than `threshold` (default 97%) of the median of the
  twelve months before them; the flagged run at the very end is trimmed (kept with `keep_incomplete`).
- **Stores**: store_id = licence; municipality 'unknown' (the file has no location), region 'WA';
  opened_on = first reporting month; closed_on = last day of the last reporting month when the licence
  stopped reporting more than `grace_months` before the last kept month (and never reported later, even in
  trimmed months); otherwise open. Gaps inside a licence's span are missing reports, not closures, and a
  licence's first month is the first month in the file, which for 2017-11 means "open by then".
- **Sales**: one row per licence-month, date = month start, category `other` = total sales across all
  categories (the file has no category split and no grams). Revenue is the LCB's Total Sales; excise tax is
  reported separately (37% of Total Sales in this file), so it is taken as tax-excluded.
- A `series` table (geo Washington) carries monthly totals: sales, stores_reporting, excise_tax.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl

from cannabis_market.data.adapters import (
    ROW,
    bad_rows,
    parse_month,
    parse_number,
    plural,
    problem,
    raise_problems,
    read_sheet,
    series_frame,
    write_dataset,
)
from cannabis_market.errors import InputError

SHEET = "Retailers"
LICENCE, PERIOD, SALES, TAX = "License Number", "Reporting Period", "Total Sales", "Excise Tax Due"
REQUIRED = (LICENCE, PERIOD, SALES)
TAIL_MONTHS = 3  # how many final months are checked for late reports
BASELINE_MONTHS = 12


def normalize_licence(col: str) -> pl.Expr:
    """Text/number licence cells -> one spelling: digits-only values padded to 6 digits.

    A `-1`-style suffix (e.g. `421777-1`) marks a supplementary report of the same licence (it fills a
    short month of `421777`), so it is folded into its base licence; keeping it apart would create
    one-month "stores" that look like openings and closures.
    """
    s = pl.col(col).cast(pl.String).str.strip_chars().str.replace(r"^(\d+)-\d+$", "${1}")
    return pl.when(s.str.contains(r"^\d+$")).then(s.str.zfill(6)).otherwise(s)


def incomplete_months(counts: pl.DataFrame, threshold: float = 0.97) -> list[str]:
    """Final months (ISO dates) whose reporting-licence count looks cut short by late reports.

    `counts` has `date` and `n` (licences reporting), one row per month. Among the last three months, a
    month is flagged when `n` < threshold x median(n) of the twelve months before those three; only the
    flagged run at the very end is returned (a dip followed by a normal month is not a reporting lag).
    """
    c = counts.sort("date")
    if c.height <= TAIL_MONTHS + 3:
        return []
    base = c.slice(
        max(0, c.height - TAIL_MONTHS - BASELINE_MONTHS), min(BASELINE_MONTHS, c.height - TAIL_MONTHS)
    )
    med = float(base["n"].median())  # type: ignore[arg-type]
    tail = c.tail(TAIL_MONTHS)
    flagged: list[str] = []
    for d, n in reversed(list(tail.select("date", "n").iter_rows())):
        if n < threshold * med:
            flagged.append(d.isoformat())
        else:
            break
    return sorted(flagged)


def read_washington(
    xlsx: str | Path,
    sheet: str | None = None,
    keep_incomplete: bool = False,
    threshold: float = 0.97,
    grace_months: int = 1,
) -> tuple[dict[str, pl.DataFrame], dict[str, Any]]:
    """Parse the LCB workbook into contract tables {stores, sales, series} and import notes."""
    if not 0 < threshold <= 1:
        raise InputError(f"--threshold {threshold}: must be in (0, 1]")
    if grace_months < 0:
        raise InputError(f"--grace-months {grace_months}: must be >= 0")
    raw, sheet_name, label = read_sheet(xlsx, sheet, REQUIRED, default_sheet=SHEET)
    has_tax = TAX in raw.columns
    df = raw.with_columns(
        normalize_licence(LICENCE).alias("store_id"),
        parse_month(PERIOD).alias("date"),
        parse_number(SALES).alias("revenue"),
        (parse_number(TAX) if has_tax else pl.lit(None, pl.Float64)).alias("tax"),
    )
    problems: list[str] = []
    n, ex = bad_rows(df, df["store_id"].is_null(), LICENCE)
    if n:
        problems.append(problem(label, LICENCE, f"{plural(n, 'row')} without a licence number", ex))
    n, ex = bad_rows(df, df["date"].is_null(), PERIOD)
    if n:
        problems.append(problem(label, PERIOD, f"{plural(n, 'value')} not a month (YYYY-MM expected)", ex))
    not_number = df[SALES].is_not_null() & df["revenue"].is_null()
    n, ex = bad_rows(df, not_number, SALES)
    if n:
        problems.append(problem(label, SALES, f"{plural(n, 'value')} not a number (USD expected)", ex))
    if has_tax:
        n, ex = bad_rows(df, df[TAX].is_not_null() & df["tax"].is_null(), TAX)
        if n:
            problems.append(problem(label, TAX, f"{plural(n, 'value')} not a number (USD expected)", ex))
    raise_problems(problems, label)
    if df.height == 0:
        raise_problems([f"{label}: no data rows below the header"], label)

    n_raw_ids = raw[LICENCE].n_unique()
    missing_sales = int(df["revenue"].is_null().sum())
    negative = int((df["revenue"] < 0).sum())
    df = df.filter(pl.col("revenue").is_not_null() & (pl.col("revenue") >= 0))
    exact = df.select("store_id", "date", "revenue", "tax")
    n_exact_dups = exact.height - exact.unique().height
    df = df.unique(subset=["store_id", "date", "revenue", "tax"], keep="first", maintain_order=True)
    multi = df.filter(pl.struct("store_id", "date").is_duplicated())
    n_summed = multi.select("store_id", "date").unique().height
    monthly = (
        df.group_by("store_id", "date")
        .agg(
            pl.col("revenue").sum(), pl.col("tax").sum() if has_tax else pl.lit(None, pl.Float64).alias("tax")
        )
        .sort("date", "store_id")
    )
    counts = monthly.group_by("date").agg(pl.len().alias("n")).sort("date")
    flagged = incomplete_months(counts, threshold)
    last_file_month = counts["date"].max()
    flagged_dates = pl.DataFrame(
        {"date": [dt.date.fromisoformat(d) for d in flagged]}, schema={"date": pl.Date}
    )
    kept = (
        monthly
        if keep_incomplete
        else monthly.join(flagged_dates, on="date", how="anti", maintain_order="left")
    )
    if kept.height == 0:
        raise_problems([f"{label}: no months left after trimming incomplete ones"], label)
    last_kept = kept["date"].max()
    cutoff = pl.lit(last_kept).dt.offset_by(f"-{grace_months}mo")

    ever = monthly.group_by("store_id").agg(pl.col("date").max().alias("last_any"))
    stores = (
        kept.group_by("store_id")
        .agg(pl.col("date").min().alias("opened_on"), pl.col("date").max().alias("last_kept"))
        .join(ever, on="store_id", how="left")
        .with_columns(
            pl.when(pl.col("last_any") < cutoff)
            .then(pl.col("last_kept").dt.month_end())
            .otherwise(None)
            .cast(pl.Date)
            .alias("closed_on"),
            pl.lit("unknown").alias("municipality"),
            pl.lit("WA").alias("region"),
            pl.lit(None, pl.String).alias("chain"),
        )
        .select("store_id", "municipality", "region", "opened_on", "closed_on", "chain")
        .sort("store_id")
    )
    sales = kept.select("date", "store_id", pl.lit("other").alias("category"), "revenue").sort(
        "date", "store_id"
    )
    totals = kept.group_by("date").agg(
        pl.col("revenue").sum().alias("sales"),
        pl.len().cast(pl.Float64).alias("stores_reporting"),
        *([pl.col("tax").sum().alias("excise_tax")] if has_tax else []),
    )
    series = series_frame(
        totals.unpivot(index="date", variable_name="metric", value_name="value").with_columns(
            pl.lit("Washington").alias("geo")
        )
    )
    per_month = kept.group_by("date").agg(pl.len().alias("n"))
    notes: dict[str, Any] = {
        "file": Path(xlsx).name,
        "sheet": sheet_name,
        "licences": stores.height,
        "licence_cells_distinct_raw": n_raw_ids,
        "first_month": str(counts["date"].min()),
        "last_month_in_file": str(last_file_month),
        "last_month_kept": str(last_kept),
        "incomplete_months_flagged": flagged,
        "incomplete_months_trimmed": [] if keep_incomplete else flagged,
        "incomplete_rule": f"among the final {TAIL_MONTHS} months, licences reporting < {threshold:.0%} of the "
        f"median of the {BASELINE_MONTHS} months before them; the flagged run at the end is "
        + ("kept (--keep-incomplete)" if keep_incomplete else "trimmed"),
        "closure_rule": f"closed_on = last day of the last reporting month when a licence stopped reporting more "
        f"than {grace_months} month(s) before {last_kept} and never reported later; otherwise open",
        "stores_closed": int(stores["closed_on"].is_not_null().sum()),
        "licences_only_in_trimmed_months": int(ever.height - stores.height),
        "reporting_stores_per_month": {"min": int(per_month["n"].min()), "max": int(per_month["n"].max())},  # type: ignore[arg-type]
        "rows_missing_sales_dropped": missing_sales,
        "rows_negative_sales_dropped": negative,
        "exact_duplicate_rows_dropped": n_exact_dups,
        "licence_months_summed_from_several_rows": n_summed,
    }
    return {"stores": stores, "sales": sales, "series": series}, notes


def import_washington(
    xlsx: str | Path,
    out: str | Path,
    sheet: str | None = None,
    keep_incomplete: bool = False,
    threshold: float = 0.97,
    grace_months: int = 1,
) -> tuple[Path, str]:
    """Write a monthly stores + sales (+ series) dataset from the LCB workbook; atomic. Returns (path, summary)."""
    tables, notes = read_washington(xlsx, sheet, keep_incomplete, threshold, grace_months)
    trimmed = notes["incomplete_months_trimmed"]
    manifest = {
        "name": Path(out).name,
        "description": (
            "Washington State Liquor and Cannabis Board, 'MJ Sales Activity by License Number' (retailers), "
            f"imported from {notes['file']}. One store per licence; monthly self-reported net sales in USD, "
            "category 'other' = total sales across all categories (no category split, no grams). "
            "Municipality unknown (the file has no locations). "
            + (
                f"Final month(s) {', '.join(trimmed)} trimmed as incomplete (late reports). "
                if trimmed
                else "No final month was trimmed. "
            )
            + "Figures are subject to the LCB's later corrections and audits."
        ),
        "source": "other",
        "frequency": "monthly",
        "currency": "USD",
        "region": "Washington",
        "import": notes,
    }
    path = write_dataset(out, "washington", manifest, tables)
    pm = notes["reporting_stores_per_month"]
    info = (
        f"{notes['licences']:,} licences, {tables['sales'].height:,} store-months, "
        f"{notes['first_month']}..{notes['last_month_kept']}, {pm['min']}-{pm['max']} reporting per month, "
        f"{notes['stores_closed']} closed; "
        + (f"trimmed incomplete month(s) {', '.join(trimmed)}" if trimmed else "no month trimmed")
        + (
            f" (flagged but kept: {', '.join(notes['incomplete_months_flagged'])})"
            if keep_incomplete and notes["incomplete_months_flagged"]
            else ""
        )
    )
    return path, info


__all__ = ["ROW", "import_washington", "incomplete_months", "normalize_licence", "read_washington"]
