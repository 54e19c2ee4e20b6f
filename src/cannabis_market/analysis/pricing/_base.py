"""Checks and small conversions shared by the pricing modules (input validation, time index, rates)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from cannabis_market.analysis.results import Estimate
from cannabis_market.data.aggregate import price_per_g_expr
from cannabis_market.data.panels import require_columns
from cannabis_market.dates import date_column, every, frequency, periods_per_year
from cannabis_market.errors import InputError

PERIODS_PER_YEAR: dict[str, float] = {
    f: periods_per_year(f) for f in ("daily", "weekly", "monthly", "quarterly", "annual")
}
MIN_TREND_PERIODS = 6
MIN_BREAK_PERIODS = 16
MIN_PANEL_STORES = 5

CURRENCY_SYMBOLS = {"CAD": "CA$", "USD": "US$", "EUR": "€", "GBP": "£"}


def currency_symbol(currency: str | None) -> str:
    """Symbol of an ISO currency code from a dataset manifest ("CAD" -> "CA$"); the code itself otherwise."""
    code = str(currency or "").upper()
    return CURRENCY_SYMBOLS.get(code, f"{code} " if code else "")


def check_freq(freq: str) -> float:
    """Periods per year of `freq` (InputError for an unknown frequency)."""
    return periods_per_year(frequency(freq))


def trunc(freq: str) -> str:
    """polars truncate step of `freq` ("1mo" for monthly)."""
    return every(freq)


require = require_columns


def to_frame(df: pl.DataFrame | pl.LazyFrame, where: str) -> pl.DataFrame:
    if isinstance(df, pl.LazyFrame):
        df = df.collect()
    if not isinstance(df, pl.DataFrame):
        raise InputError(f"{where}: expected a polars DataFrame, got {type(df).__name__}")
    return df


as_date = date_column


def positive(df: pl.DataFrame, col: str, where: str, what: str = "prices") -> pl.DataFrame:
    """Drop null values of `col`; raise on non-finite, zero or negative values (with counts)."""
    df = df.with_columns(pl.col(col).cast(pl.Float64))
    n_null = int(df[col].is_null().sum())
    if n_null == df.height:
        raise InputError(f"{where}: column '{col}' is empty (all {df.height} values are null)")
    df = df.drop_nulls(col)
    bad = int((~df[col].is_finite()).sum())
    if bad:
        raise InputError(f"{where}: column '{col}' has {bad} non-finite value(s) (NaN or infinity)")
    nonpos = df.filter(pl.col(col) <= 0)
    if nonpos.height:
        ex = ", ".join(f"{v:g}" for v in nonpos[col].head(3).to_list())
        raise InputError(
            f"{where}: {what} must be > 0, but column '{col}' has {nonpos.height} zero or negative "
            f"value(s) of {df.height} (e.g. {ex})"
        )
    return df


def price_row_counts(revenue: str = "revenue", grams: str = "grams") -> list[pl.Expr]:
    """The row counts `with_price` checks, as one aggregate over Float64 `revenue` and `grams`: rows,
    null_grams, null_revenue (grams known), no_sales (both 0), kept (the rows a price comes from) and,
    among the kept rows, bad_grams (<= 0), bad_revenue (<= 0), bad_finite (NaN or infinity)."""
    r, g = pl.col(revenue), pl.col(grams)
    keep = price_rows(revenue, grams)
    return [
        pl.len().alias("rows"),
        g.is_null().sum().alias("null_grams"),
        (g.is_not_null() & r.is_null()).sum().alias("null_revenue"),
        (g.is_not_null() & r.is_not_null() & (r == 0) & (g == 0)).sum().alias("no_sales"),
        keep.sum().alias("kept"),
        (keep & (g <= 0)).sum().alias("bad_grams"),
        (keep & (r <= 0)).sum().alias("bad_revenue"),
        (keep & (~r.is_finite() | ~g.is_finite())).sum().alias("bad_finite"),
    ]


def price_rows(revenue: str = "revenue", grams: str = "grams") -> pl.Expr:
    """Rows that carry a price: grams and revenue reported, and not both 0."""
    r, g = pl.col(revenue), pl.col(grams)
    return g.is_not_null() & r.is_not_null() & ~((r == 0) & (g == 0))


def check_price_rows(counts: dict[str, int], where: str) -> dict[str, int]:
    """Raise the InputError `with_price` documents for the counts of `price_row_counts`; otherwise the
    counts of dropped rows (null_grams, null_revenue, no_sales; only those that are not 0)."""
    rows, kept = counts["rows"], counts["kept"]
    if rows == 0:
        raise InputError(f"{where}: no rows")
    if counts["null_grams"] == rows:
        raise InputError(
            f"{where}: column 'grams' is empty (all {rows} values are null); price per gram needs grams sold"
        )
    if counts["bad_grams"]:
        raise InputError(
            f"{where}: column 'grams' must be > 0 where a price per gram is computed; "
            f"{counts['bad_grams']} row(s) of {kept} have grams <= 0 (with revenue != 0)"
        )
    if counts["bad_revenue"]:
        raise InputError(
            f"{where}: zero or negative price per gram: {counts['bad_revenue']} row(s) of {kept} have "
            "revenue <= 0 with grams > 0 (column 'revenue' must be > 0)"
        )
    if counts["bad_finite"]:
        raise InputError(f"{where}: {counts['bad_finite']} row(s) with non-finite revenue or grams")
    return {k: counts[k] for k in ("null_grams", "null_revenue", "no_sales") if counts[k]}


def with_price(df: pl.DataFrame, where: str, need_grams: bool = True) -> tuple[pl.DataFrame, dict[str, int]]:
    """Add `price_per_g` = revenue / grams after checking the inputs; returns (frame, dropped-row counts).

    Rows with null grams (not reported) are dropped; rows with no sales at all (revenue = 0 and grams = 0)
    are dropped as they carry no price. Anything else that would give a zero, negative or undefined price
    is an InputError naming the rule and the count.
    """
    if "grams" not in df.columns and not need_grams and "price_per_g" in df.columns:
        return positive(df, "price_per_g", where), {}
    require(df, ["revenue", "grams"], where)
    df = df.with_columns(pl.col("revenue").cast(pl.Float64), pl.col("grams").cast(pl.Float64))
    notes = check_price_rows(df.select(price_row_counts()).row(0, named=True), where)
    return df.filter(price_rows()).with_columns(price_per_g_expr()), notes


def time_index(periods: pl.Series, freq: str) -> np.ndarray:
    """Time in periods since the first one: months for monthly data (day of month ignored), etc."""
    freq = frequency(freq)
    if freq in ("monthly", "quarterly"):
        months = (periods.dt.year().cast(pl.Int64) * 12 + periods.dt.month().cast(pl.Int64)).to_numpy()
        t = (months - months.min()).astype(float)
        return t / 3.0 if freq == "quarterly" else t
    if freq == "annual":
        y = periods.dt.year().cast(pl.Int64).to_numpy()
        return (y - y.min()).astype(float)
    days = periods.cast(pl.Int64).to_numpy().astype(float)
    days = days - days.min()
    return days / 7.0 if freq == "weekly" else days


def annual_rate(e: Estimate, k: float) -> Estimate:
    """Per-period log slope -> annual percentage change exp(k * slope) - 1 (monotone, so the interval maps)."""
    return Estimate(
        math.expm1(k * e.estimate), k * e.se, math.expm1(k * e.lo), math.expm1(k * e.hi), e.p_value
    )
