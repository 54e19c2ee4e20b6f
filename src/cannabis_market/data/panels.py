"""The one store x period panel and the one store density (definitions in data/README.md, "Store panel").

- A store is *open* on day d when ``opened_on <= d`` and (``closed_on`` is empty or ``d <= closed_on``).
- `competitors` of a store in a period: the number of OTHER stores open in its municipality, averaged
  over the days the store itself was open in that period. `log1p_competitors` is the average of
  log(1 + competitors) over the same days (not the log of the average). A neighbour that opens mid-month
  counts in proportion to the days the two traded side by side, so the regressor a fixed-effects model
  sees is the competition the store actually faced while it sold.
- Opening dates known only to the month (monthly data, where every `opened_on` is a 1st): a store counts
  as open for half of its opening month when it is someone's competitor (the expected share of a month
  traded by a store that opens on a random day). `opening_dates="auto"` detects this case.
- `partial`: the store was not open on every day of the period, or the period is its opening period
  (opening dates are often rounded to the 1st, so an opening period is never taken as a full one).
- `density`: stores open in the municipality per 10,000 residents. In the panel it is what the store saw:
  (competitors + 1) / population * 10,000; `store_density` gives the municipality figure averaged over
  all days of each period. Population is that of the period's year, else the nearest year with a figure
  (the earlier of two equally near).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import polars as pl

from cannabis_market.data.aggregate import (
    filter_region,
    period_expr,
    period_key_of,
    periods_exact,
    price_per_g_expr,
)
from cannabis_market.data.memo import FrameMemo
from cannabis_market.dates import date_column, every, frequency
from cannabis_market.errors import InputError

STORE_EXTRAS = ("region", "chain", "lat", "lon")
OPENING_DATES = ("auto", "exact", "month")


def _frame(obj: pl.DataFrame | pl.LazyFrame, what: str) -> pl.DataFrame:
    if isinstance(obj, pl.LazyFrame):
        return obj.collect()
    if isinstance(obj, pl.DataFrame):
        return obj
    raise InputError(f"{what}: expected a polars DataFrame, got {type(obj).__name__}")


def require_columns(df: pl.DataFrame, cols: Sequence[str], what: str) -> None:
    """InputError naming the missing columns of `df` (and the ones found) unless all of `cols` are there."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(
            f"{what}: required column(s) {', '.join(repr(c) for c in missing)} missing "
            f"(columns found: {', '.join(df.columns) or 'none'})"
        )


def _stores(stores: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    st = _frame(stores, "stores")
    require_columns(st, ["store_id", "municipality", "opened_on"], "stores")
    if "closed_on" not in st.columns:
        st = st.with_columns(closed_on=pl.lit(None, pl.Date))
    st = date_column(date_column(st, "opened_on", "stores"), "closed_on", "stores")
    extras = [c for c in STORE_EXTRAS if c in st.columns]
    return st.select(
        pl.col("store_id").cast(pl.String),
        pl.col("municipality").cast(pl.String),
        *extras,
        "opened_on",
        "closed_on",
    )


EPOCH = dt.date(1970, 1, 1)


def _period_days(first: dt.date, last: dt.date, freq: str) -> pl.DataFrame:
    days = pl.DataFrame({"date": pl.date_range(first, last, "1d", eager=True)})
    return days.group_by(period=pl.col("date").dt.truncate(every(freq))).agg(
        period_days=pl.len().cast(pl.Int64)
    )


def _span(periods: pl.Series, freq: str) -> tuple[dt.date, dt.date]:
    """First day of the first period and last day of the last period."""
    first = periods.min()
    last = pl.select(pl.lit(periods.max()).dt.offset_by(every(freq)) - pl.duration(days=1)).item()
    return first, last


def _open_store_days(
    st: pl.DataFrame, first: dt.date, last: dt.date, freq: str, rounded: bool
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every day each store was open between `first` and `last`, summed in one pass on integer keys:

    - per store and period: store_id, period, competitors, log1p_competitors, open_days;
    - per municipality and period: municipality, period, _muni (stores open, averaged over all days).

    A store-day weighs w = 1, or 1/2 in the store's opening month when `rounded`; a store's competitors
    on a day are the weights of its municipality's stores open that day, less its own. A store without a
    municipality has no competition rows (it matches no municipality)."""
    d0, n_days = (first - EPOCH).days, (last - first).days + 1
    periods = _period_days(first, last, freq).sort("period").with_row_index("_p")
    day_period = periods["period"].search_sorted(
        pl.date_range(first, last, "1d", eager=True).dt.truncate(every(freq))
    )
    eom = pl.col("opened_on").dt.month_end().cast(pl.Int32) - d0 if rounded else pl.lit(-1, pl.Int32)
    codes = st.with_columns(  # equal ids share a code; a missing id is code 0, a missing municipality null
        _s=pl.col("store_id").rank("dense").fill_null(0).cast(pl.Int64),
        _m=pl.col("municipality").rank("dense").cast(pl.Int64),
    )
    days = (
        codes.lazy()
        .select(
            "_s",
            "_m",
            _eom=eom,
            _lo=pl.max_horizontal(pl.col("opened_on").cast(pl.Int32) - d0, pl.lit(0, pl.Int32)),
            _hi=pl.min_horizontal(
                pl.col("closed_on").cast(pl.Int32).fill_null(d0 + n_days - 1) - d0,
                pl.lit(n_days - 1, pl.Int32),
            ),
        )
        .filter((pl.col("_lo") <= pl.col("_hi")) & pl.col("_m").is_not_null())
        .select("_s", "_m", "_eom", d=pl.int_ranges("_lo", pl.col("_hi") + 1, dtype=pl.Int32))
        .explode("d")
        .select(
            "_s",
            "_m",
            "d",
            _p=pl.lit(day_period).gather(pl.col("d")).cast(pl.Int64),
            w=pl.when(pl.col("d") <= pl.col("_eom")).then(0.5).otherwise(1.0),
        )
    )
    n_p = periods.height
    c = (pl.col("w").sum().over(pl.col("_m") * n_days + pl.col("d")) - pl.col("w")).clip(lower_bound=0.0)
    per_store = (
        days.with_columns(c=c)
        .group_by(_k=pl.col("_s") * n_p + pl.col("_p"))
        .agg(
            competitors=pl.col("c").mean(),
            log1p_competitors=pl.col("c").log1p().mean(),
            open_days=pl.len().cast(pl.Int64),
        )
    )
    per_muni = days.group_by(_k=pl.col("_m") * n_p + pl.col("_p")).agg(pl.col("w").sum())
    per_store, per_muni = pl.collect_all([per_store, per_muni])
    periods = periods.with_columns(pl.col("_p").cast(pl.Int64))
    comp = (
        per_store.with_columns(_s=pl.col("_k") // n_p, _p=pl.col("_k") % n_p)
        .join(codes.select("_s", "store_id").unique("_s"), on="_s")
        .join(periods, on="_p")
        .select("store_id", "period", "competitors", "log1p_competitors", "open_days")
    )
    muni = (
        per_muni.with_columns(_m=pl.col("_k") // n_p, _p=pl.col("_k") % n_p)
        .join(codes.select("_m", "municipality").unique("_m"), on="_m")
        .join(periods, on="_p")
        .select("municipality", "period", _muni=pl.col("w") / pl.col("period_days"))
    )
    return comp, muni


def competition(
    stores: pl.DataFrame | pl.LazyFrame,
    start: dt.date,
    end: dt.date,
    freq: str = "monthly",
    *,
    rounded_openings: bool = False,
) -> pl.DataFrame:
    """Per store and period from `start` to `end`: competitors, log1p_competitors (both averaged over the
    days the store was open), open_days, period_days and partial. Only store-periods with an open day."""
    freq = frequency(freq)
    st = _stores(stores)
    first = pl.select(pl.lit(start).dt.truncate(every(freq))).item()
    _, last = _span(pl.Series([end], dtype=pl.Date), freq)
    comp, _ = _open_store_days(st, first, last, freq, rounded_openings)
    return _with_partial(comp, st, first, last, freq)


def _with_partial(
    comp: pl.DataFrame, st: pl.DataFrame, first: dt.date, last: dt.date, freq: str
) -> pl.DataFrame:
    """`competition`'s period_days and partial columns on the per-store rows of `_open_store_days`."""
    out = comp.join(_period_days(first, last, freq), on="period", how="left").join(
        st.select("store_id", "opened_on"), on="store_id", how="left"
    )
    opening = pl.col("opened_on").dt.truncate(every(freq)) == pl.col("period")
    return out.with_columns(partial=(pl.col("open_days") < pl.col("period_days")) | opening).drop("opened_on")


def _monthly_openings(st: pl.DataFrame, all_first_of_month: bool, opening_dates: str) -> bool:
    if opening_dates not in OPENING_DATES:
        raise InputError(f"opening_dates must be one of {', '.join(OPENING_DATES)}, got {opening_dates!r}")
    if opening_dates != "auto":
        return opening_dates == "month"
    return all_first_of_month and bool((st["opened_on"].dt.day() == 1).all())


def store_period_panel(
    sales: pl.DataFrame | pl.LazyFrame,
    stores: pl.DataFrame | pl.LazyFrame,
    freq: str = "monthly",
    by: Sequence[str] = (),
    *,
    opening_dates: str = "auto",
) -> pl.DataFrame:
    """THE store x period panel every store-level analysis uses (pricing, growth, benchmarks).

    One row per period, store_id and `by` (e.g. category) with sales: revenue, grams and price_per_g (when
    sales have grams), the store's municipality, region/chain/lat/lon (when the stores table has them),
    opened_on, closed_on, and the competition measures of `competition` (competitors, log1p_competitors,
    open_days, period_days, partial). Rows whose store was not open on any day of the period (sales
    outside the store's dates) get the municipality's average over the period and are partial.
    `opening_dates`: "exact", "month" (known only to the month) or "auto" (= "month" when every sales
    date and every opening date is a 1st).
    """
    freq = frequency(freq)
    s = _lazy_sales(sales)
    names = s.collect_schema().names()
    _need_names(names, ["date", "store_id", "revenue", *by], "sales")
    has_grams = "grams" in names
    vals = [pl.col("revenue").cast(pl.Float64).sum()]
    if has_grams:
        vals.append(pl.col("grams").cast(pl.Float64).sum())
    keys = ["period", "store_id", *by]
    s = s.with_columns(pl.col("store_id").cast(pl.String))
    grouped = s.group_by(period_key_of(s, freq), *keys[1:]).agg(*vals)  # exact unless not periods_exact
    last_day = s.select(pl.col("date").unique().dt.day().max())  # 1: every sales date is a 1st
    panel, last_day = pl.collect_all([grouped, last_day])
    if not periods_exact(panel["period"], freq):
        panel = s.group_by(period_expr(freq), *keys[1:]).agg(*vals).collect()
    if panel.height == 0:
        raise InputError("sales: no rows, so there is no store panel")
    st = _stores(stores)
    unknown = panel.join(st, on="store_id", how="anti")
    if unknown.height == panel.height:
        raise InputError("sales: no sales rows match a store in the stores table (store_id)")
    rounded = _monthly_openings(st, bool(last_day.item() == 1), opening_dates)
    first, last = _span(panel["period"], freq)
    comp, muni_avg = _open_store_days(st, first, last, freq, rounded)
    comp = _with_partial(comp, st, first, last, freq)
    if has_grams:
        panel = panel.with_columns(price_per_g_expr())
    out = (
        panel.join(st, on="store_id", how="inner")
        .join(comp, on=["store_id", "period"], how="left")
        .join(muni_avg, on=["municipality", "period"], how="left")
        .join(_period_days(first, last, freq), on="period", how="left", suffix="_p")
    )
    none = pl.col("open_days").is_null()
    return (
        out.with_columns(
            competitors=pl.when(none).then(pl.col("_muni").fill_null(0.0)).otherwise(pl.col("competitors")),
            log1p_competitors=pl.when(none)
            .then(pl.col("_muni").fill_null(0.0).log1p())
            .otherwise(pl.col("log1p_competitors")),
            open_days=pl.col("open_days").fill_null(0),
            period_days=pl.col("period_days_p"),
            partial=pl.col("partial").fill_null(True),
        )
        .drop("_muni", "period_days_p")
        .sort(keys)
    )


_PANELS = FrameMemo("store_period_panel", entries=4)


def dataset_panel(
    ds: Any,
    freq: str = "monthly",
    by: Sequence[str] = (),
    *,
    region: str | None = "all",
    category: str | None = None,
    opening_dates: str = "auto",
) -> pl.DataFrame:
    """`store_period_panel` of a loaded dataset: its sales (only those of `region`'s stores and of
    `category` when given) against its whole stores table, so competitors are every store of a
    municipality.

    Worked out once per process for the same dataset content and selection (`Dataset.content_key`) and
    arguments: later calls return the same frame object, which callers must not modify in place (see
    `data.memo`). A dataset whose content cannot be vouched for is recomputed every time."""
    stores, sales = getattr(ds, "stores", None), getattr(ds, "sales", None)
    if stores is None or sales is None:
        raise InputError("dataset: store-level sales and a stores table are needed for the store panel")
    content = getattr(ds, "content_key", None)
    content = content() if callable(content) else None
    region = "all" if region in (None, "", "all") else region
    key = None if content is None else (content, frequency(freq), tuple(by), region, category, opening_dates)

    def compute() -> pl.DataFrame:
        s = filter_region(sales, region, stores)
        if category is not None:
            s = s.filter(pl.col("category") == category)
        return store_period_panel(s, stores, freq, by, opening_dates=opening_dates)

    return _PANELS.get(key, compute)


def _lazy_sales(sales: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    if isinstance(sales, pl.DataFrame):
        return date_column(sales, "date", "sales").lazy() if "date" in sales.columns else sales.lazy()
    if isinstance(sales, pl.LazyFrame):
        return sales
    raise InputError(f"sales: expected a polars DataFrame, got {type(sales).__name__}")


def _need_names(names: Sequence[str], cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in names]
    if missing:
        raise InputError(
            f"{what}: required column(s) {', '.join(repr(c) for c in missing)} missing "
            f"(columns found: {', '.join(names) or 'none'})"
        )


# ------------------------------------------------------------------------------------------- density


def population_by_year(population: pl.DataFrame | pl.LazyFrame, keys: pl.DataFrame) -> pl.DataFrame:
    """Attach `population` to `keys` (municipality, year): that year's figure, else the nearest year with
    one (the earlier of two equally near). InputError for a municipality with no positive population."""
    pop = _frame(population, "population")
    require_columns(pop, ["municipality", "year", "population"], "population")
    pop = (
        pop.select(
            pl.col("municipality").cast(pl.String),
            pl.col("year").cast(pl.Int64),
            pl.col("population").cast(pl.Float64),
        )
        .filter(pl.col("population") > 0)
        .sort("year")
    )
    k = keys.select(pl.col("municipality").cast(pl.String), pl.col("year").cast(pl.Int64)).unique()
    missing = k.join(pop, on="municipality", how="anti")["municipality"].unique().sort()
    if missing.len():
        raise InputError(
            f"population: no positive population for municipality {', '.join(missing.head(5).to_list())}"
            f"{' …' if missing.len() > 5 else ''} (columns municipality, year, population)"
        )
    gap = (pl.col("year_p") - pl.col("year")).abs() + 0.5 * (pl.col("year_p") > pl.col("year")).cast(
        pl.Float64
    )
    return (
        k.join(pop.rename({"year": "year_p"}), on="municipality", how="inner")
        .with_columns(_gap=gap)
        .sort("_gap")
        .group_by("municipality", "year", maintain_order=True)
        .first()
        .select("municipality", "year", "population")
    )


def with_density(panel: pl.DataFrame, population: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Add population and density = (competitors + 1) / population * 10,000 to a store panel: the stores
    per 10,000 residents of its municipality the store saw on the days it was open."""
    require_columns(panel, ["period", "municipality", "competitors"], "panel")
    p = panel.with_columns(
        _year=pl.col("period").dt.year().cast(pl.Int64), _m=pl.col("municipality").cast(pl.String)
    )
    pop = population_by_year(population, p.select(municipality="_m", year="_year"))
    return (
        p.join(pop.rename({"municipality": "_m", "year": "_year"}), on=["_m", "_year"], how="left")
        .with_columns(density=(pl.col("competitors") + 1) / pl.col("population") * 1e4)
        .drop("_m", "_year")
    )


def store_density(
    stores: pl.DataFrame | pl.LazyFrame,
    population: pl.DataFrame | pl.LazyFrame,
    freq: str = "annual",
    start: dt.date | None = None,
    end: dt.date | None = None,
    *,
    opening_dates: str = "exact",
) -> pl.DataFrame:
    """Stores open per 10,000 residents by municipality and period: municipality, period, stores_open
    (average over the period's days), population, stores_per_10k.

    Periods run from `start` to `end` (default: the population table's first to last year). Population
    follows `population_by_year`."""
    freq = frequency(freq)
    st = _stores(stores)
    pop = _frame(population, "population")
    require_columns(pop, ["municipality", "year", "population"], "population")
    years = pop["year"].cast(pl.Int64)
    start = start or dt.date(int(years.min()), 1, 1)
    end = end or dt.date(int(years.max()), 12, 31)
    if end < start:
        raise InputError(f"store_density: end ({end}) is before start ({start})")
    rounded = _monthly_openings(st, True, opening_dates)
    first = pl.select(pl.lit(start).dt.truncate(every(freq))).item()
    _, last = _span(pl.Series([end], dtype=pl.Date), freq)
    _, avg = _open_store_days(st, first, last, freq, rounded)
    grid = (
        pop.select(pl.col("municipality").cast(pl.String))
        .unique()
        .join(_period_days(first, last, freq).select("period"), how="cross")
    )
    counts = grid.join(avg, on=["municipality", "period"], how="left").with_columns(
        stores_open=pl.col("_muni").fill_null(0.0), year=pl.col("period").dt.year().cast(pl.Int64)
    )
    return (
        counts.join(population_by_year(pop, counts), on=["municipality", "year"], how="left")
        .with_columns(stores_per_10k=pl.col("stores_open") / pl.col("population") * 1e4)
        .select("municipality", "period", "stores_open", "population", "stores_per_10k")
        .sort("municipality", "period")
    )
