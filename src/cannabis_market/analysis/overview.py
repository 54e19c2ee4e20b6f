"""Market overview: sales, open stores and sales per store over time, by region and category.

Works on store-level datasets (stores + sales) and on aggregate `series` datasets (e.g. StatCan), so the
overview notebook runs on both. Frames carry `n_stores`/`max_share` so reports can suppress cells that
would reveal one store's figures.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from cannabis_market.data import aggregate as A
from cannabis_market.data import derived
from cannabis_market.data.disclosure import TOP2_COLUMN, cell_stats_query, suppress_cells
from cannabis_market.data.loader import Dataset
from cannabis_market.errors import InputError
from cannabis_market.format import currency_symbol, fmt_cad, fmt_date, fmt_num, label
from cannabis_market.theme import altair

if TYPE_CHECKING:
    import altair as alt


@dataclass
class MarketOverview:
    """Monthly market path plus the latest-month headline figures."""

    monthly: pl.DataFrame  # period, revenue, n_stores, max_share, stores_open, revenue_per_store
    by_region: pl.DataFrame | None  # region, revenue, n_stores, max_share (window total)
    categories: pl.DataFrame | None  # year, category, revenue, share, n_stores, max_share
    total_sales: float | None  # None when suppressed (too few stores, or one store dominates)
    stores_open_latest: int | None
    sales_per_store_latest: float | None
    latest_period: dt.date
    start: dt.date
    end: dt.date
    region: str
    currency: str
    market: str = ""  # the market's name from the manifest ('Ontario', 'Oregon'), for prose

    @staticmethod
    def _flag(frame: pl.DataFrame) -> list[str]:
        return ["suppressed"] if "suppressed" in frame.columns else []

    def figures(self) -> dict[str, float | int | None]:
        """Headline figures for results.json."""
        return {
            "total_sales": self.total_sales,
            "stores_open_latest": self.stores_open_latest,
            "sales_per_store_latest": self.sales_per_store_latest,
        }

    def summary(self) -> pl.DataFrame:
        """The headline figures as a two-column table."""
        return pl.DataFrame(
            {
                "Figure": ["Total sales", "Stores open (latest month)", "Sales per store (latest month)"],
                "Value": [
                    fmt_cad(self.total_sales),
                    fmt_num(self.stores_open_latest) if self.stores_open_latest is not None else "n/a",
                    fmt_cad(self.sales_per_store_latest),
                ],
            }
        )

    def report(self) -> str:
        """One paragraph in plain language, every number from the data."""
        where = (
            (f"the whole {self.market} market" if self.market else "the whole market")
            if self.region == "all"
            else self.region
        )
        first = self.monthly["period"].min()
        if self.total_sales is None:
            return (
                f"Sales of {where} are suppressed: too few stores, or one store makes most of the sales, so "
                "showing them would disclose a single store's figures."
            )
        s = (
            f"From {fmt_date(first, monthly=True)} to {fmt_date(self.latest_period, monthly=True)}, stores in "
            f"{where} sold {fmt_cad(self.total_sales)} (tax excluded, {self.currency})."
        )
        if self.stores_open_latest is not None:
            s += f" {fmt_num(self.stores_open_latest)} stores were open at the end of the latest month"
            if self.sales_per_store_latest is not None:
                s += f", selling {fmt_cad(self.sales_per_store_latest)} each on average that month"
            s += "."
        return s

    def chart(self) -> alt.VConcatChart:
        """Monthly sales and open stores (two aligned panels)."""
        alt = altair()  # imported when a chart is drawn, not with the module
        data = self.monthly.select("period", "revenue", "stores_open", *self._flag(self.monthly))
        x = alt.X("period:T", title=None)
        sales = (
            alt.Chart(data, title="Monthly sales")
            .mark_line(point=False)
            .encode(
                x,
                alt.Y("revenue:Q", title=f"Sales ({currency_symbol(self.currency)})"),
                tooltip=[alt.Tooltip("period:T", format="%b %Y"), alt.Tooltip("revenue:Q", format=",.0f")],
            )
            .properties(height=200)
        )
        stores = (
            alt.Chart(data, title="Stores open at month end")
            .mark_line(color="#d9822b")
            .encode(
                x,
                alt.Y("stores_open:Q", title="Stores"),
                tooltip=[alt.Tooltip("period:T", format="%b %Y"), "stores_open:Q"],
            )
            .properties(height=160)
        )
        return alt.vconcat(sales, stores)

    def chart_per_store(self) -> alt.Chart:
        """Sales per selling store by month."""
        alt = altair()  # imported when a chart is drawn, not with the module
        data = self.monthly.select("period", "revenue_per_store", *self._flag(self.monthly))
        return (
            alt.Chart(data, title="Sales per store")
            .mark_line()
            .encode(
                alt.X("period:T", title=None),
                alt.Y("revenue_per_store:Q", title=f"Sales per store ({currency_symbol(self.currency)})"),
                tooltip=[
                    alt.Tooltip("period:T", format="%b %Y"),
                    alt.Tooltip("revenue_per_store:Q", format=",.0f"),
                ],
            )
            .properties(height=200)
        )

    def region_table(self) -> pl.DataFrame | None:
        """Sales by region over the window, with readable column names (suppressed cells kept flagged)."""
        if self.by_region is None:
            return None
        keep = [c for c in ("region", "revenue", "n_stores", "suppressed") if c in self.by_region.columns]
        names = {
            "region": "Region",
            "revenue": f"Sales ({currency_symbol(self.currency)})",
            "n_stores": "Stores",
        }
        money = pl.col("revenue").map_elements(fmt_cad, return_dtype=pl.String)
        out = self.by_region.select(keep).with_columns(
            pl.when(pl.col("revenue").is_null()).then(None).otherwise(money).alias("revenue")
        )
        return out.rename({k: v for k, v in names.items() if k in keep})

    def chart_categories(self) -> alt.Chart | None:
        """Category shares of sales by year (stacked bars)."""
        alt = altair()  # imported when a chart is drawn, not with the module
        if self.categories is None:
            return None
        data = self.categories.select(
            "year",
            pl.col("category").map_elements(label, return_dtype=pl.String),
            "share",
            *self._flag(self.categories),
        )
        return (
            alt.Chart(data, title="Category mix")
            .mark_bar()
            .encode(
                alt.X("year:O", title=None),
                alt.Y("share:Q", stack="normalize", axis=alt.Axis(format="%"), title="Share of sales"),
                alt.Color("category:N", title="Category"),
                tooltip=[
                    alt.Tooltip("year:O", title="Year"),
                    alt.Tooltip("category:N", title="Category"),
                    alt.Tooltip("share:Q", format=".1%", title="Share"),
                ],
            )
            .properties(height=220)
        )


def _as_date(x: str | dt.date | None) -> dt.date | None:
    if x is None or x == "":
        return None
    return x if isinstance(x, dt.date) else dt.date.fromisoformat(str(x))


def _store_months(
    ds: Dataset,
    region: str,
    stores: pl.LazyFrame,
    start: dt.date | None,
    end: dt.date | None,
    shared: bool = True,
) -> pl.DataFrame:
    """Revenue per month, category and store of `region` between `start` and `end`. A window of whole
    months is cut from the dataset's shared store-month totals (`data.derived`: worked out once per
    content, also across the processes of a build or a grid); any other window, or `shared=False`, is
    summed from the rows."""
    whole = (start is None or start.day == 1) and (end is None or A.period_end(end, "month") == end)
    if shared and whole:
        months = derived.store_month_totals(ds).lazy()
        if start:
            months = months.filter(pl.col("period") >= start)
        if end:
            months = months.filter(pl.col("period") <= end)
        return A.filter_region(months, region, stores).collect()
    sales = A.filter_region(ds.sales, region, stores)
    if start:
        sales = sales.filter(pl.col("date") >= start)
    if end:
        sales = sales.filter(pl.col("date") <= end)
    return A.collect_store_period_totals(sales, "month", by=["category"])


def market_overview(
    ds: Dataset,
    region: str = "all",
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
    min_stores: int = 3,
    dominance: float = 0.5,
    dominance2: float = 0.75,
) -> MarketOverview:
    """Summarise a dataset's market between `start` and `end` (inclusive) for one region or all.

    Store-level data: every money cell (month, region, category-year) built from fewer than `min_stores`
    stores or dominated by one store (or the two largest, `dominance2`) is suppressed (null, flagged), with
    secondary suppression wherever cells add up to a shown total, and so are headline figures that would
    rest on such cells, so the overview can be shared.
    """
    start_d, end_d = _as_date(start), _as_date(end)
    if start_d and end_d and end_d < start_d:
        raise InputError(f"end ({end_d}) is before start ({start_d})")
    currency = str(ds.manifest.get("currency", "CAD"))
    if ds.sales is None:
        return _overview_from_series(ds, region, start_d, end_d, currency)
    stores = ds.table("stores")
    regions = stores.select("region").unique().collect()["region"].to_list()
    if region not in ("all", "") and region not in regions:
        raise InputError(
            f"region {region!r} is not in this dataset; choose 'all' or one of {sorted(regions)}"
        )
    sales = _store_months(ds, region, stores, start_d, end_d).lazy()  # one pass, shared below
    with_region = A.with_store_attrs(sales, stores, ["region"])
    with_year = sales.with_columns(pl.col("period").dt.year().alias("year"))
    # every table below and the two largest stores' share of each of its cells, from the shared frame,
    # collected together
    tables = [
        A.market_totals(sales, "month"),
        A.market_totals(sales, None, by=["region"], stores=stores),
        A.market_totals(sales, "year", by=["category"]),
        A.market_totals(sales, None),
    ]
    cells = [["period"], ["region"], ["year", "category"], []]
    top2 = [
        cell_stats_query(rows, keys).select(*keys, TOP2_COLUMN)
        for rows, keys in zip([sales, with_region, with_year, sales], cells, strict=True)
    ]
    monthly, by_region, cats, window, *top2 = pl.collect_all([*tables, *top2])
    if monthly.height == 0:
        raise InputError(
            f"no sales between {start_d or 'the start'} and {end_d or 'the end'} for region {region!r}"
        )
    st = A.filter_region(stores, region)
    ends = [A.period_end(p, "month") for p in monthly["period"]]
    if end_d:
        ends = [min(e, end_d) for e in ends]
    open_at = A.stores_open_on(st, ends).rename({"date": "period_end"})
    monthly = (
        monthly.with_columns(pl.Series("period_end", ends, dtype=pl.Date))
        .join(open_at, on="period_end", how="left")
        .with_columns((pl.col("revenue") / pl.col("n_stores")).alias("revenue_per_store"))
        .drop("period_end")
    )
    by_region = by_region.sort("revenue", descending=True)
    cats = cats.with_columns(
        pl.col("period").dt.year().alias("year"),
        (pl.col("revenue") / pl.col("revenue").sum().over("period")).alias("share"),
    ).select("year", "category", "revenue", "share", "n_stores", "max_share")
    # every month, region and category-year is a cell; the regions add up to the headline total, the
    # months to the window total and the categories to each year's total, so each set gets secondary
    # suppression (a lone hidden cell would be the shown total minus the shown cells)
    rule = {"min_stores": min_stores, "dominance": dominance, "dominance2": dominance2, "margin": True}
    monthly = suppress_cells(
        _with_top2(monthly, top2[0], ["period"]),
        ["revenue", "grams", "revenue_per_store"],
        **rule,
        disjoint=False,
    )
    by_region = suppress_cells(_with_top2(by_region, top2[1], ["region"]), ["revenue", "grams"], **rule)
    cats = suppress_cells(
        _with_top2(cats, top2[2], ["year", "category"]),
        ["revenue", "share"],
        **rule,
        groups=["year"],
        disjoint=False,
    )
    window = suppress_cells(
        _with_top2(window, top2[3], []), ["revenue"], min_stores, dominance, dominance2=dominance2
    )
    last = monthly.tail(1).row(0, named=True)
    total = window["revenue"][0]
    return MarketOverview(
        monthly=monthly,
        by_region=by_region,
        categories=cats,
        total_sales=float(total) if total is not None else None,
        stores_open_latest=int(last["stores_open"]) if last["stores_open"] is not None else None,
        sales_per_store_latest=last["revenue_per_store"],
        latest_period=last["period"],
        start=monthly["period"].min(),
        end=ends[-1],
        region=region,
        currency=currency,
        market=str(ds.manifest.get("region") or ""),
    )


def _with_top2(frame: pl.DataFrame, top2: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """`frame` with the two largest stores' share of each cell (`top2`, from `cell_stats` of the cells'
    store-level rows) joined on."""
    if not keys:
        return frame.with_columns(pl.lit(top2[TOP2_COLUMN][0] if top2.height else 1.0).alias(TOP2_COLUMN))
    return frame.join(top2, on=keys, how="left")


def _overview_from_series(
    ds: Dataset, region: str, start: dt.date | None, end: dt.date | None, currency: str
) -> MarketOverview:
    geo, s = ds.series_of(region, start, end)
    sales = s.filter(pl.col("metric") == "sales").select(
        pl.col("date").alias("period"), pl.col("value").alias("revenue")
    )
    if sales.height == 0:
        raise InputError(f"no 'sales' metric for {geo} in the chosen window")
    stores = s.filter(pl.col("metric") == "stores").select(
        pl.col("date").alias("period"), pl.col("value").alias("stores_open")
    )
    monthly = (
        sales.join(stores, on="period", how="left")
        .with_columns(
            pl.lit(None, dtype=pl.UInt32).alias("n_stores"),
            pl.lit(None, dtype=pl.Float64).alias("max_share"),
            (pl.col("revenue") / pl.col("stores_open")).alias("revenue_per_store"),
        )
        .sort("period")
    )
    last = monthly.tail(1).row(0, named=True)
    return MarketOverview(
        monthly=monthly,
        by_region=None,
        categories=None,
        total_sales=float(monthly["revenue"].sum()),
        stores_open_latest=int(last["stores_open"]) if last["stores_open"] is not None else None,
        sales_per_store_latest=last["revenue_per_store"],
        latest_period=last["period"],
        start=monthly["period"].min(),
        end=monthly["period"].max(),
        region=geo,
        currency=currency,
    )
