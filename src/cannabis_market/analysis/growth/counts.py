"""Monthly market sales and open-store counts (openings, closures) from stores, series or panels."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from cannabis_market.analysis.growth._common import (
    _as_date,
    _frame,
    _is_dataset,
    _need,
    _to_month,
)
from cannabis_market.data.aggregate import openings_closures, period_end
from cannabis_market.errors import InputError


def market_sales(data: Any, geo: str | None = None) -> pl.DataFrame:
    """Monthly market sales `[period, sales]` from a dataset, a store-month panel or a sales table.

    A dataset without store sales (e.g. a StatCan import) uses its `series` rows with metric `sales`
    (`geo=` picks one geography when there are several).
    """
    if _is_dataset(data) and data.sales is None and getattr(data, "series", None) is not None:
        s = _series_rows(_frame(data.series, "dataset series table"), "sales", geo, "date", "market sales")
        df = s.select(period="date", revenue="value")
    elif _is_dataset(data):
        # daily totals first: the market series needs two columns of the (large) sales table, not all of it
        lf = data.sales.lazy()
        have = lf.collect_schema().names()
        missing = [c for c in ("date", "revenue") if c not in have]
        if missing:
            raise InputError(f"dataset sales table: missing column(s) {missing} (have {have})")
        df = lf.group_by("date").agg(pl.col("revenue").sum()).rename({"date": "period"}).collect()
    else:
        df = _frame(data, "sales")
        if "period" not in df.columns and "date" in df.columns:
            df = df.rename({"date": "period"})
    _need(df, ["period", "revenue"], "sales")
    df = _to_month(df, "period", "sales")
    return df.group_by("period").agg(sales=pl.col("revenue").sum()).sort("period")


def store_counts(
    source: pl.DataFrame | pl.LazyFrame,
    *,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    geo: str | None = None,
) -> pl.DataFrame:
    """Open stores, openings and closures per month: `[period, stores_open, openings, closures, net_change]`.

    `source` may be
    - a stores table (store_id, opened_on, closed_on = LAST day open): `stores_open` counts stores open
      on the month's last day; an opening is counted in the month of `opened_on`, a closure in the month
      of the first day closed (`closed_on + 1`), so open(m) = open(m-1) + openings(m) - closures(m).
      Openings in the first month of the data are unknown (null): stores already trading when the data
      start carry that month as their opening date (left-censoring);
    - a series table (date, geo, metric, value) with metric "stores": the last value in each month;
      only the net change is known, so openings/closures are null;
    - a store-month panel (period, store_id, revenue): stores reporting revenue; a store's opening is its
      first reporting month, its closure the month after its last one (none at the data's edges).
    """
    df = _frame(source, "store_counts source")
    cols = set(df.columns)
    if {"period", "store_id"} <= cols:
        out = _counts_from_panel(df)
    elif "opened_on" in cols:
        out = _counts_from_stores(df, start, end)
    elif {"metric", "value"} <= cols:
        out = _counts_from_series(df, geo)
    else:
        raise InputError(
            "store_counts: source must be a stores table (store_id, opened_on, closed_on), a series table "
            f"(date, geo, metric, value) or a store-month panel (period, store_id, revenue); got {df.columns}"
        )
    if start is not None:
        out = out.filter(pl.col("period") >= _as_date(start, "start").replace(day=1))
    if end is not None:
        out = out.filter(pl.col("period") <= _as_date(end, "end"))
    if out.height == 0:
        raise InputError("store_counts: no months left between `start` and `end`")
    return out


def _counts_from_stores(df: pl.DataFrame, start: Any, end: Any) -> pl.DataFrame:
    _need(df, ["store_id", "opened_on"], "stores")
    if df.height == 0:
        raise InputError("stores: the table is empty; there are no stores to count")
    df = df.with_columns(pl.col("opened_on").cast(pl.Date))
    closed = (
        df["closed_on"].cast(pl.Date) if "closed_on" in df.columns else pl.Series("closed_on", [], pl.Date)
    )
    if df["opened_on"].null_count():
        raise InputError("stores: column 'opened_on' has empty values")
    first = (
        _as_date(start, "start").replace(day=1) if start is not None else df["opened_on"].min().replace(day=1)
    )
    last_cands = [df["opened_on"].max(), closed.drop_nulls().max()]
    last = _as_date(end, "end") if end is not None else max(d for d in last_cands if d is not None)
    stores = df.select(
        "store_id", "opened_on", closed_on=closed if "closed_on" in df.columns else pl.lit(None, pl.Date)
    )
    counts = openings_closures(
        stores.lazy(), "month", start=first, end=period_end(last.replace(day=1), "month")
    )
    out = counts.select("period", "stores_open", "openings", "closures").with_columns(
        net_change=pl.col("openings") - pl.col("closures")
    )
    if start is None or first <= df["opened_on"].min().replace(day=1):
        # left-censoring: stores open in the data's first month may have opened long before it
        out = out.with_columns(
            [
                pl.when(pl.col("period") == first).then(None).otherwise(pl.col(c)).alias(c)
                for c in ("openings", "net_change")
            ]
        )
    return out


def _series_rows(df: pl.DataFrame, metric: str, geo: str | None, date_col: str, purpose: str) -> pl.DataFrame:
    """Rows of one metric (and one geography) of a series table; InputError when that is ambiguous."""
    _need(df, [date_col, "metric", "value"], "series")
    s = df.filter(pl.col("metric") == metric)
    if s.height == 0:
        raise InputError(f"series: no rows with metric '{metric}' (needed for {purpose})")
    if "geo" in s.columns:
        geos = s["geo"].unique().sort().to_list()
        if geo is not None:
            s = s.filter(pl.col("geo") == geo)
            if s.height == 0:
                raise InputError(f"series: no '{metric}' rows for geo {geo!r} (have {geos[:10]})")
        elif len(geos) > 1:
            raise InputError(f"series: '{metric}' rows cover {len(geos)} geos ({geos[:5]}...); pass `geo=`")
    return s


def _counts_from_series(df: pl.DataFrame, geo: str | None) -> pl.DataFrame:
    date_col = "date" if "date" in df.columns else "period"
    s = _series_rows(df, "stores", geo, date_col, "store counts")
    s = _to_month(s.rename({date_col: "period"}) if date_col != "period" else s, "period", "series")
    out = (
        s.sort("period")
        .group_by("period", maintain_order=True)
        .agg(stores_open=pl.col("value").last())
        .sort("period")
        .with_columns(net_change=pl.col("stores_open").diff())
    )
    return out.select(
        "period",
        "stores_open",
        openings=pl.lit(None, pl.Int64),
        closures=pl.lit(None, pl.Int64),
        net_change="net_change",
    )


def _counts_from_panel(df: pl.DataFrame) -> pl.DataFrame:
    df = _to_month(df, "period", "panel")
    if "revenue" in df.columns:
        df = df.filter(pl.col("revenue").fill_null(0) > 0)
    if df.height == 0:
        raise InputError("panel: no store-month rows with revenue > 0")
    p0, p1 = df["period"].min(), df["period"].max()
    periods = pl.date_range(p0, p1, "1mo", eager=True)
    span = df.group_by("store_id").agg(first=pl.col("period").min(), last=pl.col("period").max())
    n = df.group_by("period").agg(stores_open=pl.col("store_id").n_unique())
    opens = (
        span.filter(pl.col("first") > p0).group_by("first").agg(openings=pl.len()).rename({"first": "period"})
    )
    closes = (
        span.filter(pl.col("last") < p1)
        .with_columns(period=pl.col("last").dt.offset_by("1mo"))
        .group_by("period")
        .agg(closures=pl.len())
    )
    out = (
        pl.DataFrame({"period": periods})
        .join(n, on="period", how="left")
        .join(opens, on="period", how="left")
        .join(closes, on="period", how="left")
        .with_columns(
            pl.col("stores_open").fill_null(0).cast(pl.Int64),
            pl.col("openings").fill_null(0).cast(pl.Int64),
            pl.col("closures").fill_null(0).cast(pl.Int64),
        )
        .with_columns(
            openings=pl.when(pl.col("period") == p0).then(None).otherwise(pl.col("openings")),
        )
    )
    return out.with_columns(net_change=pl.col("stores_open").diff()).sort("period")
