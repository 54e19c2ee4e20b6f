"""Inputs of the pricing analyses: the sales-weighted price table, the store panel, and everything the
pricing notebook needs from any dataset.

Store-level datasets give both the market price series and the store x period panel
(`data.panels.store_period_panel`, the one panel definition); aggregate `series` datasets (e.g. Oregon's
monthly prices) give the price series and, when present, a wholesale price series, so the trend and margin
steps still run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from cannabis_market.analysis.pricing._base import (
    as_date,
    check_freq,
    check_price_rows,
    currency_symbol,
    price_row_counts,
    price_rows,
    require,
    to_frame,
    trunc,
    with_price,
)
from cannabis_market.analysis.pricing.margin import DEFAULT_WHOLESALE_PER_G, wholesale_path
from cannabis_market.data import aggregate as A
from cannabis_market.data.aggregate import price_per_g_expr
from cannabis_market.data.panels import dataset_panel, store_period_panel
from cannabis_market.dates import to_date
from cannabis_market.errors import InputError


def price_table(
    sales: pl.DataFrame | pl.LazyFrame,
    by: Sequence[str] = ("category",),
    stores: pl.DataFrame | pl.LazyFrame | None = None,
    freq: str = "monthly",
) -> pl.DataFrame:
    """Sales-weighted price per gram (sum revenue / sum grams) by period and the columns in `by`.

    `sales` has date, store_id, revenue, grams (and category). Columns of `by` that are not in sales
    (region, municipality, chain) are joined from `stores`. Rows with null grams are left out; rows with no
    sales are dropped. Returns period, *by, revenue, grams, price_per_g sorted by period.

    Dates already typed as dates take one lazy pass: the row checks of `with_price` (same errors) are
    collected with the sums by day and `by`, which are then summed by period (one truncation a day, not
    a row). Dates as text are parsed by `dates.date_column` on the collected rows.
    """
    where = "price_table"
    check_freq(freq)
    if not isinstance(sales, pl.DataFrame | pl.LazyFrame):
        to_frame(sales, where)  # its InputError
    lf = sales.lazy()
    require(_columns(lf), ["date"], where)
    by = list(by)
    extra = [c for c in by if c not in lf.collect_schema().names()]
    if extra:
        if stores is None:
            raise InputError(f"{where}: column(s) {extra} are not in sales; pass `stores` to join them")
        st = to_frame(stores, where)
        require(st, ["store_id", *extra], f"{where} (stores)")
        require(_columns(lf), ["store_id"], where)
        lf = lf.join(st.lazy().select("store_id", *extra), on="store_id", how="left")
    dtype = lf.collect_schema()["date"]
    if dtype != pl.Date and not isinstance(dtype, pl.Datetime):
        df, _ = with_price(lf.collect(), where)
        return _by_period(as_date(df, "date", where).lazy(), by, freq).collect()
    require(_columns(lf), ["revenue", "grams"], where)
    day = pl.col("date") if dtype == pl.Date else pl.col("date").dt.date()  # as `as_date` reads it
    lf = lf.with_columns(pl.col("revenue").cast(pl.Float64), pl.col("grams").cast(pl.Float64), day)
    daily = lf.filter(price_rows()).group_by("date", *by).agg(pl.col("revenue", "grams").sum())
    counts, out = pl.collect_all([lf.select(price_row_counts()), _by_period(daily, by, freq)])
    check_price_rows(counts.row(0, named=True), where)
    return out


def _columns(lf: pl.LazyFrame) -> pl.DataFrame:
    """An empty frame with `lf`'s columns (for the column checks, which name what was found)."""
    return pl.DataFrame(schema=lf.collect_schema())


def _by_period(rows: pl.LazyFrame, by: list[str], freq: str) -> pl.LazyFrame:
    return (
        rows.group_by(pl.col("date").dt.truncate(trunc(freq)).alias("period"), *by)
        .agg(pl.col("revenue").sum(), pl.col("grams").sum())
        .with_columns(price_per_g_expr())
        .sort(["period", *by])
    )


def store_period_prices(
    sales: pl.DataFrame | pl.LazyFrame,
    stores: pl.DataFrame | pl.LazyFrame,
    freq: str = "monthly",
    by_category: bool = False,
) -> pl.DataFrame:
    """Store-period panel for the price estimators: `data.panels.store_period_panel` (the one definition:
    competitors and log1p_competitors averaged over each store's open days, open_days, partial), by
    category when `by_category`. Sales need grams."""
    where = "store_period_prices"
    check_freq(freq)
    s = to_frame(sales, where)
    require(s, ["date", "store_id", "revenue", "grams"], where)
    by = ["category"] if by_category and "category" in s.columns else []
    return store_period_panel(s, stores, freq, by)


@dataclass
class PriceInputs:
    """What the pricing steps need, already filtered to region, window and category."""

    prices: pl.DataFrame  # period, price_per_g (market, sales-weighted), [revenue, grams]
    panel: pl.DataFrame | None  # store x month panel for elasticity / competition (None for series data)
    by_category: pl.DataFrame | None  # period, category, price_per_g, revenue, grams
    wholesale: pl.DataFrame | None  # period, wholesale_per_g (from the data), else None
    population: pl.DataFrame | None
    currency: str
    category: str
    latest_price: float
    sales: pl.LazyFrame | None = None  # store-level sales of the window and region (all categories)

    def figures(self) -> dict[str, float]:
        return {"price_per_g_latest": self.latest_price}

    @property
    def symbol(self) -> str:
        """Currency symbol of the dataset's prices ("CA$", "US$") from its manifest."""
        return currency_symbol(self.currency).strip()

    def wholesale_prices(
        self, anchor: float = DEFAULT_WHOLESALE_PER_G, annual_change: float = 0.0
    ) -> tuple[pl.DataFrame | None, str]:
        """(wholesale path, note) for the margin step: the data's own wholesale prices when it has them;
        for Canadian data without them an assumed path (`anchor` CA$/g in 2023, changing by `annual_change`
        a year); otherwise (None, the one sentence saying why the margin is left out)."""
        if self.wholesale is not None:
            return self.wholesale, ""
        if self.currency.upper() != "CAD":
            return None, (
                "The margin step is left out: this dataset has no wholesale prices, and the assumed wholesale "
                f"price (CA${anchor:.2f} a gram, a Canadian 2023 average) does not apply to prices in {self.currency}."
            )
        path = wholesale_path(self.prices["period"], anchor=anchor, annual_change=annual_change)
        return path, (
            f"Wholesale prices are not in the data; the margin assumes CA${anchor:.2f} a gram in mid-2023"
            + (f", changing by {annual_change:+.0%} a year." if annual_change else ", flat over the window.")
        )


def price_inputs(
    ds: Any,
    region: str = "all",
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
    category: str = "dried_flower",
) -> PriceInputs:
    """Build the price series (and store panel) of one category, region and window."""
    s, e = to_date(start, "start"), to_date(end, "end")
    currency = str(ds.manifest.get("currency", "CAD"))
    if ds.sales is None:
        return _from_series(ds, region, s, e, currency, category)
    if not ds.has_grams:
        raise InputError(
            f"dataset {ds.path}: sales have no 'grams' column, so prices per gram cannot be computed"
        )
    stores = ds.table("stores")
    sales = A.filter_region(ds.sales, region, stores)
    if s:
        sales = sales.filter(pl.col("date") >= s)
    if e:
        sales = sales.filter(pl.col("date") <= e)
    cats = sales.select(pl.col("category").unique()).collect()["category"].to_list()
    if category not in cats:
        raise InputError(
            f"category {category!r} has no sales in this window/region; available: {sorted(cats)}"
        )
    by_cat = price_table(sales, by=("category",))
    prices = by_cat.filter(pl.col("category") == category).drop("category")  # no second pass over sales
    # the category's rows of `sales` against every store (= store_period_prices), once per process
    panel = dataset_panel(ds.subset("all", s, e), region=region, category=category)
    return PriceInputs(
        prices=prices,
        panel=panel,
        by_category=by_cat,
        wholesale=None,
        population=ds.population.collect() if ds.population is not None else None,
        currency=currency,
        category=category,
        latest_price=float(prices["price_per_g"][-1]),
        sales=sales,
    )


def with_price_per_gram(frame: pl.DataFrame) -> pl.DataFrame:
    """Add price_per_g = revenue / grams to an aggregated frame (null where either is suppressed or 0)."""
    return frame.with_columns(price_per_g_expr())


def _from_series(ds: Any, region: str, s, e, currency: str, category: str) -> PriceInputs:
    geo, g = ds.series_of(region, s, e)
    p = g.filter(pl.col("metric") == "price_per_g").select(
        pl.col("date").alias("period"), pl.col("value").alias("price_per_g")
    )
    if p.height == 0:
        raise InputError(f"series dataset {ds.path} has no 'price_per_g' metric for {geo}")
    w = g.filter(pl.col("metric") == "wholesale_flower_price_per_g").select(
        pl.col("date").alias("period"), pl.col("value").alias("wholesale_per_g")
    )
    p = p.sort("period")
    return PriceInputs(
        prices=p,
        panel=None,
        by_category=None,
        wholesale=w.sort("period") if w.height else None,
        population=None,
        currency=currency,
        category=category,
        latest_price=float(p["price_per_g"][-1]),
    )
