"""Inputs for the pricing notebook from any dataset: the market price series and the store panel.

Store-level datasets give both (sales-weighted price per gram, and a store x month panel for the fixed
effects estimators); aggregate `series` datasets (e.g. Oregon's monthly prices) give the price series and,
when present, a wholesale price series, so the trend and margin steps still run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import polars as pl

from cannabis_market.analysis.pricing import price_table, store_period_prices
from cannabis_market.data import aggregate as A
from cannabis_market.errors import InputError


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


def _d(x: Any) -> dt.date | None:
    if x in (None, ""):
        return None
    return x if isinstance(x, dt.date) else dt.date.fromisoformat(str(x)[:10])


def price_inputs(
    ds: Any,
    region: str = "all",
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
    category: str = "dried_flower",
) -> PriceInputs:
    """Build the price series (and store panel) of one category, region and window."""
    s, e = _d(start), _d(end)
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
    one = sales.filter(pl.col("category") == category)
    prices = by_cat.filter(pl.col("category") == category).drop("category")  # no second pass over sales
    panel = store_period_prices(one, stores)
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
    return frame.with_columns(
        pl.when(pl.col("grams") > 0).then(pl.col("revenue") / pl.col("grams")).alias("price_per_g")
    )


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
