"""Aggregations every analysis starts from, written once on LazyFrames (nothing is collected here
unless the function says so).

Definitions used throughout:
- a store is *open* on day d when ``opened_on <= d`` and (``closed_on`` is empty or ``d <= closed_on``);
  `closed_on` is the last day open;
- *price per gram* is sales-weighted: total revenue / total grams of the group (`price_per_g_expr`).

Store-level panels (competitors, partial periods) and store density live in `data.panels`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from cannabis_market.dates import every, frequency
from cannabis_market.errors import InputError

FREQ_TRUNC = {"day": "1d", "week": "1w", "month": "1mo", "quarter": "1q", "year": "1y"}
"""Short frequency names of the data layer; `cannabis_market.dates` also accepts daily/monthly/…"""
STORE_ATTRS = ("municipality", "region", "chain")


def _lazy(frame: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def period_expr(freq: str, col: str = "date") -> pl.Expr:
    """Expression truncating `col` to the start of its period (day, week, month, quarter, year; or the
    daily/weekly/monthly/quarterly/annual spellings)."""
    return pl.col(col).dt.truncate(every(freq)).alias("period")


LOOKUP_DAYS = 1 << 14
"""Days (about 45 years) of the period table `period_key` looks dates up in."""


def period_key(freq: str, col: str = "date") -> pl.Expr:
    """`period_expr` for a group-by key, by looking each date up in a table of the periods of the
    LOOKUP_DAYS days from the column's first date: a gather per row instead of a calendar truncation
    (several times cheaper on millions of rows). A date beyond the table keeps its own value, so the
    keys are exact exactly when every resulting period is a period start (`periods_exact`); otherwise
    group again with `period_expr` (`collect_by_period` does both)."""
    c = pl.col(col)
    first = c.min().fill_null(dt.date(1970, 1, 1))
    table = pl.date_range(first, first + pl.duration(days=LOOKUP_DAYS - 1), "1d").dt.truncate(every(freq))
    day = c.cast(pl.Int32) - first.cast(pl.Int32)
    return (
        pl.when(day < LOOKUP_DAYS)
        .then(table.gather(day.clip(0, LOOKUP_DAYS - 1)))
        .otherwise(c)
        .alias("period")
    )


def period_key_of(lf: pl.LazyFrame, freq: str, col: str = "date") -> pl.Expr:
    """`period_key` when `col` of `lf` holds dates (pl.Date), else `period_expr` (datetimes, text)."""
    return period_key(freq, col) if lf.collect_schema()[col] == pl.Date else period_expr(freq, col)


def periods_exact(periods: pl.Series, freq: str) -> bool:
    """True when every period key from `period_key` is a period start, i.e. no date fell beyond its
    table (a date beyond it that is itself a period start is its own, correct key)."""
    return bool((periods.dt.truncate(every(freq)) == periods).all())


def collect_by_period(
    lf: pl.LazyFrame, freq: str, keys: Sequence[str], aggs: Sequence[pl.Expr]
) -> pl.DataFrame:
    """`lf` grouped by `period` (of `date`) and `keys`, aggregated with `aggs` and collected, the period
    from `period_key` (exact; grouped again with `period_expr` when the dates span more than its table)."""
    out = lf.group_by(period_key_of(lf, freq), *keys).agg(*aggs).collect()
    if periods_exact(out["period"], freq):
        return out
    return lf.group_by(period_expr(freq), *keys).agg(*aggs).collect()


def with_store_attrs(
    sales: pl.LazyFrame, stores: pl.LazyFrame, attrs: Sequence[str] = STORE_ATTRS
) -> pl.LazyFrame:
    """Join store attributes (municipality, region, chain) onto sales rows."""
    return _lazy(sales).join(_lazy(stores).select("store_id", *attrs), on="store_id", how="left")


def filter_region(lf: pl.LazyFrame, region: str | None, stores: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """Keep rows of one region ('all' or None keeps everything); joins stores when needed."""
    if region in (None, "all", ""):
        return lf
    lf = _lazy(lf)
    if "region" not in lf.collect_schema().names():
        if stores is None:
            raise InputError("filtering by region needs the stores table")
        ids = _lazy(stores).filter(pl.col("region") == region).select("store_id")
        return lf.join(ids, on="store_id", how="semi")
    return lf.filter(pl.col("region") == region)


def market_totals(
    sales: pl.LazyFrame,
    freq: str | None = "month",
    by: Sequence[str] = (),
    stores: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Revenue (and grams) by period and `by` columns, with disclosure-control counts.

    `n_stores` is how many stores sold in the cell and `max_share` the largest single store's share of
    its revenue, so a report can suppress cells that would reveal one store's figures. `by` may name
    store attributes (region, municipality, chain) when `stores` is given. `freq=None` totals the whole
    window (no period column).
    """
    lf = _lazy(sales)
    names = lf.collect_schema().names()
    need = [b for b in by if b not in names]
    if need and stores is None:
        raise InputError(f"grouping by {need} needs the stores table")
    keys = ["period", *by] if freq else list(by)
    own = [k for k in keys if k not in need]
    vals = ["revenue", *(["grams"] if "grams" in names else [])]
    if freq and "date" in names:
        lf = lf.with_columns(period_expr(freq))
    elif freq and "period" in names:  # pre-aggregated by store_period_totals: coarsen if asked
        lf = lf.with_columns(period_expr(freq, "period"))
    elif freq:
        raise InputError("market_totals: sales need a 'date' column (or a 'period' from store_period_totals)")
    # sum per store first, then attach store attributes to that much smaller frame
    per_store = lf.group_by([*own, "store_id"]).agg(pl.col(vals).sum())
    if need:
        per_store = with_store_attrs(per_store, stores, [b for b in need if b in STORE_ATTRS])
    return (
        per_store.group_by(keys)
        .agg(
            *[pl.col(v).sum() for v in vals],
            pl.len().alias("n_stores"),
            pl.col("revenue").max().alias("_top"),
        )
        .with_columns(
            pl.when(pl.col("revenue") > 0)
            .then(pl.col("_top") / pl.col("revenue"))
            .otherwise(1.0)
            .alias("max_share")
        )
        .drop("_top")
        .sort(keys)
    )


def store_period_totals(
    sales: pl.LazyFrame, freq: str = "month", by: Sequence[str] = ("category",)
) -> pl.LazyFrame:
    """Revenue and grams per (period, `by`, store): the one pass over the raw rows that several
    aggregations can share. Collect it once (or `.cache()` it) and hand it to `market_totals`,
    `sales_per_store` or `price_per_gram` instead of the raw sales, which then group the much
    smaller frame rather than re-reading every row."""
    lf = _lazy(sales)
    names = lf.collect_schema().names()
    vals = ["revenue", *(["grams"] if "grams" in names else [])]
    return lf.group_by(period_expr(freq), *by, "store_id").agg(pl.col(vals).sum())


def collect_store_period_totals(
    sales: pl.LazyFrame, freq: str = "month", by: Sequence[str] = ("category",)
) -> pl.DataFrame:
    """`store_period_totals` collected, its periods looked up (`collect_by_period`) rather than
    truncated row by row."""
    lf = _lazy(sales)
    names = lf.collect_schema().names()
    vals = ["revenue", *(["grams"] if "grams" in names else [])]
    return collect_by_period(lf, freq, [*by, "store_id"], [pl.col(vals).sum()])


def stores_open_on(
    stores: pl.LazyFrame, dates: Sequence[dt.date] | pl.Series, by: Sequence[str] = ()
) -> pl.DataFrame:
    """Number of stores open on each date (optionally per municipality/region): counts on a date grid.

    Built from +1 at opening and -1 the day after closing, cumulated and looked up as-of each date, so
    it costs O(stores + dates) rather than a stores x dates cross join.
    """
    st = _lazy(stores).collect()
    grid = pl.DataFrame({"date": pl.Series(list(dates), dtype=pl.Date)}).unique().sort("date")
    moves = pl.concat(
        [
            st.select(*by, pl.col("opened_on").alias("date"), pl.lit(1).alias("d")),
            st.filter(pl.col("closed_on").is_not_null()).select(
                *by, (pl.col("closed_on") + pl.duration(days=1)).alias("date"), pl.lit(-1).alias("d")
            ),
        ]
    )
    running = pl.col("d").cum_sum()
    cum = (
        moves.group_by([*by, "date"])
        .agg(pl.col("d").sum())
        .sort("date")
        .with_columns((running.over(list(by)) if by else running).alias("stores_open"))
        .drop("d")
    )
    if by:
        keys = st.select(*by).unique()
        grid = keys.join(grid, how="cross")
    out = grid.sort("date").join_asof(
        cum.sort("date"), on="date", by=list(by) or None, strategy="backward", check_sortedness=False
    )
    return out.with_columns(pl.col("stores_open").fill_null(0)).sort([*by, "date"])


def openings_closures(
    stores: pl.LazyFrame,
    freq: str = "month",
    by: Sequence[str] = (),
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> pl.DataFrame:
    """Openings, closures and stores open at the end of each period, from `start` to `end`.

    A closure counts in the period of the first day closed (`closed_on` + 1), so that
    open(p) = open(p - 1) + openings(p) - closures(p). The periods run from the first opening (or
    `start`) to the first day closed of the last closure (or `end`); periods with no store are zeros.
    """
    st = _lazy(stores).collect()
    if st.height == 0:
        raise InputError("stores table is empty")
    st = st.with_columns((pl.col("closed_on") + pl.duration(days=1)).alias("_gone"))
    first = start or st["opened_on"].min()
    last = end or max(d for d in [st["opened_on"].max(), st["_gone"].max()] if d is not None)
    if last < first:
        raise InputError(f"end ({last}) is before start ({first})")
    starts = pl.date_range(first, last, interval="1d", eager=True).dt.truncate(every(freq)).unique().sort()
    ends = pl.Series([period_end(d, freq) for d in starts], dtype=pl.Date)
    opened = st.select(*by, period_expr(freq, "opened_on")).group_by([*by, "period"]).len("openings")
    closed = (
        st.filter(pl.col("_gone").is_not_null())
        .select(*by, period_expr(freq, "_gone"))
        .group_by([*by, "period"])
        .len("closures")
    )
    open_end = stores_open_on(st.lazy(), ends, by).rename({"date": "period_end"})
    frame = pl.DataFrame({"period": starts, "period_end": ends})
    if by:
        frame = st.select(*by).unique().join(frame, how="cross")
    return (
        frame.join(open_end, on=[*by, "period_end"], how="left")
        .join(opened, on=[*by, "period"], how="left")
        .join(closed, on=[*by, "period"], how="left")
        .with_columns(pl.col("openings", "closures").fill_null(0).cast(pl.Int64))
        .with_columns(pl.col("stores_open").fill_null(0).cast(pl.Int64))
        .select(*by, "period", "openings", "closures", "stores_open")
        .sort([*by, "period"])
    )


def period_end(start: dt.date, freq: str) -> dt.date:
    """Last day of the period that starts on `start`."""
    freq = frequency(freq)
    if freq == "daily":
        return start
    if freq == "weekly":
        return start + dt.timedelta(days=6)
    months = {"monthly": 1, "quarterly": 3, "annual": 12}[freq]
    m = start.month - 1 + months
    return dt.date(start.year + m // 12, m % 12 + 1, 1) - dt.timedelta(days=1)


def sales_per_store(
    sales: pl.LazyFrame, stores: pl.LazyFrame | None = None, freq: str = "month", by: Sequence[str] = ()
) -> pl.LazyFrame:
    """Revenue per selling store by period: total revenue / stores with sales in the period."""
    return market_totals(sales, freq, by, stores).with_columns(
        (pl.col("revenue") / pl.col("n_stores")).alias("revenue_per_store")
    )


def price_per_g_expr(revenue: str = "revenue", grams: str = "grams") -> pl.Expr:
    """THE price per gram: revenue / grams, null where grams are 0, negative or missing (as `price_per_g`)."""
    return pl.when(pl.col(grams) > 0).then(pl.col(revenue) / pl.col(grams)).alias("price_per_g")


def price_per_gram(
    sales: pl.LazyFrame,
    freq: str = "month",
    by: Sequence[str] = ("category",),
    stores: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Sales-weighted price per gram (total revenue / total grams) by period and `by`."""
    lf = _lazy(sales)
    if "grams" not in lf.collect_schema().names():
        raise InputError("price per gram needs the optional 'grams' column in sales; this dataset has none")
    return market_totals(lf, freq, by, stores).with_columns(price_per_g_expr())
