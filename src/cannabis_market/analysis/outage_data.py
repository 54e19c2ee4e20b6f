"""The 2022 supply outage read out of a store-level dataset: its dates, the treated/control split, the
sales series around it, and the scenario simulator's inputs (cover on the eve, normal demand).

`cannabis_market.analysis.outage` builds the estimates on these and re-exports every public name here.
Every function takes a loaded `Dataset` (duck-typed: `.sales`, `.stores`, `.inventory`, `.events`,
`.frequency`). Treated and control stores: a store is treated when its days of cover just before the
outage is below what it needs to ride out the stop and the partial restart (see
`event_study.treatment_from_inventory`); the others kept stock and serve as controls. The
stop/partial/fill parameters default to the August 2022 outage (deliveries stopped 5 days, then about
8 days of partial restart); `partial_fill` is the share of a normal day's deliveries during the
restart, 0.5 unless known.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

from cannabis_market.analysis.event_study import _store_day, treatment_from_inventory
from cannabis_market.analysis.scenarios import ScenarioInputs
from cannabis_market.data.memo import FrameMemo
from cannabis_market.data.outage_model import served_share
from cannabis_market.errors import InputError
from cannabis_market.format import fmt_date

STOP_DAYS = 5
PARTIAL_DAYS = 8
PARTIAL_FILL = 0.5

_STORE_DAYS = FrameMemo("outage_store_days", entries=4)


def _as_date(d: dt.date | dt.datetime | str | None, name: str) -> dt.date | None:
    if d is None:
        return None
    if isinstance(d, dt.datetime):
        return d.date()
    if isinstance(d, dt.date):
        return d
    try:
        return dt.date.fromisoformat(str(d)[:10])
    except ValueError as e:
        raise InputError(f"{name} must be a date (YYYY-MM-DD), got {d!r}") from e


def outage_dates(ds: Any) -> tuple[dt.date, dt.date]:
    """(start, end) of the dataset's first outage event; InputError when there is none."""
    events = getattr(ds, "events", None)
    if events is None:
        raise InputError("the dataset has no events table; pass outage_start (and outage_end) explicitly")
    ev = events.lazy().filter(pl.col("kind") == "outage").sort("start").collect()
    if ev.height == 0:
        raise InputError("the events table lists no event of kind 'outage'; pass outage_start explicitly")
    return ev["start"][0], ev["end"][0]


def _resolve(ds: Any, outage_start, outage_end=None) -> tuple[dt.date, dt.date]:
    start, end = _as_date(outage_start, "outage_start"), _as_date(outage_end, "outage_end")
    if start is None:
        start, ev_end = outage_dates(ds)
        end = end or ev_end
    elif end is None:
        try:
            ev_start, ev_end = outage_dates(ds)
        except InputError:
            ev_start, ev_end = None, None
        end = ev_end if ev_start == start else start + dt.timedelta(days=STOP_DAYS + PARTIAL_DAYS - 1)
    if end < start:
        raise InputError(f"outage_end {fmt_date(end)} is before outage_start {fmt_date(start)}")
    return start, end


def _need(ds: Any, name: str) -> pl.LazyFrame:
    lf = getattr(ds, name, None)
    if lf is None:
        raise InputError(f"this outage analysis needs the dataset's '{name}' table, which it does not have")
    return lf.lazy()


def store_days(ds: Any, lo: dt.date, hi: dt.date, outcome: str = "revenue") -> pl.DataFrame:
    """The dataset's `outcome` summed per store and day from `lo` to `hi` (store_id, date, `outcome`).

    What the outage's event studies and their contributor tables read (one scan of the sales for all of
    them): worked out once per process for the same dataset content and selection
    (`Dataset.content_key`); the frame is shared, so callers must not modify it in place (`data.memo`).
    A dataset whose content cannot be vouched for is read again every time."""
    content = getattr(ds, "content_key", None)
    content = content() if callable(content) else None
    key = None if content is None else (content, lo, hi, outcome)

    def compute() -> pl.DataFrame:
        return _store_day(_need(ds, "sales"), outcome, lo, hi).rename({"y": outcome})

    return _STORE_DAYS.get(key, compute)


def _check_covers(ds: Any, lo: dt.date, hi: dt.date) -> None:
    """InputError when the requested window lies (partly) outside the sales data."""
    rng = (
        _need(ds, "sales").select(pl.col("date").min().alias("a"), pl.col("date").max().alias("b")).collect()
    )
    a, b = rng["a"][0], rng["b"][0]
    if a is None:
        raise InputError("the sales table is empty")
    if ds.frequency == "monthly":
        lo, hi = lo.replace(day=1), hi.replace(day=1)
    if lo < a or hi > b:
        raise InputError(
            f"the outage window {fmt_date(lo)} to {fmt_date(hi)} is outside the sales data, which run from "
            f"{fmt_date(a)} to {fmt_date(b)}"
        )


def outage_treatment(
    ds: Any,
    outage_start: dt.date | str | None = None,
    stop_days: int = STOP_DAYS,
    partial_days: int = PARTIAL_DAYS,
    partial_fill: float = PARTIAL_FILL,
) -> pl.DataFrame:
    """Per store: days_of_cover before the outage, treated flag, expected lost days, cover band, region."""
    start, _ = _resolve(ds, outage_start)
    tr = treatment_from_inventory(_need(ds, "inventory"), start, stop_days, partial_days, partial_fill)
    stores = getattr(ds, "stores", None)
    if stores is not None:
        tr = tr.join(stores.lazy().select("store_id", "region").collect(), on="store_id", how="left")
    return tr


def outage_series(
    ds: Any,
    outage_start: dt.date | str | None = None,
    pre_days: int = 84,
    post_end: dt.date | str | None = None,
    region: str | None = "all",
    stop_days: int = STOP_DAYS,
    partial_days: int = PARTIAL_DAYS,
    partial_fill: float = PARTIAL_FILL,
) -> pl.DataFrame:
    """Sales around the outage for plotting and for the impact model.

    Daily data: one row per day from `pre_days` before the outage to `post_end` (default: 4 weeks after
    the start) with treated_sales, control_sales and total_sales (revenue of the stores open on the eve,
    treated/control split by days of cover) and n_treated/n_control (those stores open that day). The
    `*_adj` columns hold composition-adjusted sales (sales per open store x stores open on the eve):
    stores opening or closing before the outage then do not show up as jumps, which a time-series
    model would otherwise read as a change in the trend. Monthly data: month, region, total_sales
    (month-level totals by region; no treated/control split is possible).
    """
    start, _ = _resolve(ds, outage_start)
    end = _as_date(post_end, "post_end") or start + dt.timedelta(days=27)
    if pre_days < 1:
        raise InputError(f"pre_days must be >= 1, got {pre_days}")
    if end < start:
        raise InputError(f"post_end {fmt_date(end)} is before the outage start {fmt_date(start)}")
    lo = start - dt.timedelta(days=pre_days)
    _check_covers(ds, lo, end)
    sales = _need(ds, "sales")
    stores = getattr(ds, "stores", None)
    regional = region not in (None, "", "all")
    if ds.frequency == "monthly":
        if stores is None:
            raise InputError("monthly outage series by region need the stores table")
        lf = sales.filter(pl.col("date").is_between(lo.replace(day=1), end)).join(
            stores.lazy().select("store_id", "region"), on="store_id", how="left"
        )
        if regional:
            lf = lf.filter(pl.col("region") == region)
        out = (
            lf.group_by("date", "region")
            .agg(total_sales=pl.col("revenue").sum())
            .sort("date", "region")
            .collect()
        )
        if out.height == 0:
            raise InputError(f"no sales for region {region!r} in the window")
        return out
    tr = outage_treatment(ds, start, stop_days, partial_days, partial_fill)
    if regional:
        if "region" not in tr.columns:
            raise InputError("a regional outage series needs the stores table")
        if tr.filter(pl.col("region") == region).height == 0:
            known = sorted(tr["region"].drop_nulls().unique().to_list())
            raise InputError(f"region {region!r} not found; regions: {', '.join(known)}")
        tr = tr.filter(pl.col("region") == region)
    days = pl.DataFrame({"date": pl.date_range(lo, end, "1d", eager=True)})
    sold = (
        sales.filter(pl.col("date").is_between(lo, end))
        .join(tr.lazy().select("store_id", "treated"), on="store_id", how="inner")
        .group_by("date")
        .agg(
            treated_sales=pl.col("revenue").filter(pl.col("treated")).sum(),
            control_sales=pl.col("revenue").filter(~pl.col("treated")).sum(),
        )
        .collect()
    )
    # stores open each day (from the stores table; else: stores with a sales row that day)
    if stores is not None:
        span = stores.lazy().select("store_id", "opened_on", "closed_on").collect()
        grid = tr.select("store_id", "treated").join(span, on="store_id", how="left").join(days, how="cross")
        is_open = (pl.col("opened_on").is_null() | (pl.col("opened_on") <= pl.col("date"))) & (
            pl.col("closed_on").is_null() | (pl.col("date") <= pl.col("closed_on"))
        )
        grid = grid.filter(is_open)
    else:
        grid = (
            sales.filter(pl.col("date").is_between(lo, end))
            .select("date", "store_id")
            .unique()
            .join(tr.lazy().select("store_id", "treated"), on="store_id", how="inner")
            .collect()
        )
    counts = grid.group_by("date").agg(
        n_treated=pl.col("treated").sum().cast(pl.Int64), n_control=(~pl.col("treated")).sum().cast(pl.Int64)
    )
    out = (
        days.join(sold, on="date", how="left")
        .join(counts, on="date", how="left")
        .with_columns(pl.exclude("date").fill_null(0))
        .with_columns(total_sales=pl.col("treated_sales") + pl.col("control_sales"))
        .sort("date")
    )
    eve = out.filter(pl.col("date") < start).tail(1)
    n_t, n_c = int(tr["treated"].sum()), int((~tr["treated"]).sum())
    if eve.height:
        n_t, n_c = int(eve["n_treated"][0]), int(eve["n_control"][0])

    def adj(col: str, n: str, n_eve: int) -> pl.Expr:
        return (
            pl.when(pl.col(n) > 0).then(pl.col(col) / pl.col(n) * n_eve).otherwise(None).alias(f"{col}_adj")
        )

    out = out.with_columns(adj("treated_sales", "n_treated", n_t), adj("control_sales", "n_control", n_c))
    return out.with_columns(total_sales_adj=pl.col("treated_sales_adj") + pl.col("control_sales_adj")).select(
        "date",
        "treated_sales",
        "control_sales",
        "total_sales",
        "n_treated",
        "n_control",
        "treated_sales_adj",
        "control_sales_adj",
        "total_sales_adj",
    )


def scenario_inputs(
    ds: Any,
    outage_start: dt.date | str | None = None,
    baseline_weeks: int = 4,
    horizon: int = 35,
    demand: str = "baseline",
    *,
    stop_days: int = STOP_DAYS,
    partial_days: int = PARTIAL_DAYS,
    partial_fill: float = PARTIAL_FILL,
) -> ScenarioInputs:
    """Simulator inputs from the data: each store's cover on the eve of the outage and its normal demand.

    `demand='baseline'`: normal demand on each day from the outage start is the store's average sales
    on the same weekday over the `baseline_weeks` weeks before (a `horizon`-day profile). This ignores
    what happened during the outage, so replaying the actual outage with it carries the baseline's
    error (seasonal movement, noise): typically within 10-15% in total.

    `demand='reconstructed'`: what the stores would have sold during the actual outage. On a day a store
    still served part of its demand (served share s > 0 by the outage model with the given
    stop/partial/fill) demand = observed sales / s; on days it served nothing, the baseline scaled by
    how the control stores' sales moved that day against their own baseline; after the outage, the
    observed sales. This relies on the outage model being right and is meant for replaying the actual
    event (it reproduces the true loss of a generated dataset to about 1%).
    """
    if baseline_weeks < 1:
        raise InputError(f"baseline_weeks must be >= 1, got {baseline_weeks}")
    if horizon < 1:
        raise InputError(f"horizon must be >= 1 day, got {horizon}")
    if demand not in ("baseline", "reconstructed"):
        raise InputError(f"demand must be 'baseline' or 'reconstructed', got {demand!r}")
    start, _ = _resolve(ds, outage_start)
    if ds.frequency != "daily":
        raise InputError(f"scenario inputs need daily store sales; this dataset is {ds.frequency}")
    lo = start - dt.timedelta(days=7 * baseline_weeks)
    last = start + dt.timedelta(days=horizon - 1)
    _check_covers(ds, lo, start - dt.timedelta(days=1))
    tr = treatment_from_inventory(_need(ds, "inventory"), start, stop_days, partial_days, partial_fill).sort(
        "store_id"
    )
    data_end = _need(ds, "sales").select(pl.col("date").max()).collect().item()
    hi = min(last, data_end) if demand == "reconstructed" else start - dt.timedelta(days=1)
    daily = (
        _need(ds, "sales")
        .filter(pl.col("date").is_between(lo, hi))
        .group_by("store_id", "date")
        .agg(pl.col("revenue").sum())
        .collect()
    )
    ids = tr.select("store_id")
    pre_days = pl.DataFrame({"date": pl.date_range(lo, start - dt.timedelta(days=1), "1d", eager=True)})
    # a store open but without a sale that day sold 0; days before it opened do not count
    stores = getattr(ds, "stores", None)
    if stores is not None:
        opened = stores.lazy().select("store_id", pl.col("opened_on").alias("_from")).collect()
    else:
        opened = daily.group_by("store_id").agg(pl.col("date").min().alias("_from"))
    pre = (
        ids.join(pre_days, how="cross")
        .join(opened, on="store_id", how="left")
        .filter(pl.col("_from").is_null() | (pl.col("date") >= pl.col("_from")))
        .join(daily, on=["store_id", "date"], how="left")
        .with_columns(pl.col("revenue").fill_null(0.0))
    )
    wd = pre.group_by("store_id", pl.col("date").dt.weekday().alias("wd")).agg(
        pl.col("revenue").mean().alias("base")
    )
    days = (
        pl.DataFrame({"t": list(range(horizon))})
        .with_columns(date=pl.lit(start).dt.offset_by(pl.format("{}d", pl.col("t"))))
        .with_columns(wd=pl.col("date").dt.weekday())
    )
    prof = (
        ids.join(days, how="cross")
        .join(wd, on=["store_id", "wd"], how="left")
        .with_columns(pl.col("base").fill_null(0.0))
        .sort("store_id", "t")
    )
    n = tr.height
    base = prof["base"].to_numpy().reshape(n, horizon)
    if demand == "baseline":
        return ScenarioInputs(tr["store_id"].to_numpy(), tr["days_of_cover"].to_numpy(), base)

    obs_frame = prof.select("store_id", "t", "date").join(daily, on=["store_id", "date"], how="left")
    observed = obs_frame["revenue"].to_numpy().reshape(n, horizon)  # NaN where no data (after the data end)
    in_data = (days["date"] <= data_end).to_numpy()
    observed = np.where(np.isnan(observed) & in_data[None, :], 0.0, observed)
    served = served_share(
        tr["days_of_cover"].to_numpy(), stop_days, partial_days, partial_fill, horizon=horizon
    )
    # sold-out days: the store's share of the control stores' baseline sales, times their sales that day
    level = ids.join(pre.group_by("store_id").agg(pl.col("revenue").mean()), on="store_id", how="left")
    level = level.sort("store_id")["revenue"].fill_null(0.0).to_numpy()
    ctrl = ~tr["treated"].to_numpy()
    if ctrl.any() and level[ctrl].sum() > 0:
        ctrl_day = np.nansum(observed[ctrl], axis=0)
        scaled = level[:, None] / level[ctrl].sum() * ctrl_day[None, :]
        fallback = np.where(in_data[None, :], scaled, base)
    else:
        fallback = base
    with np.errstate(divide="ignore", invalid="ignore"):
        inverted = observed / served
    dem = np.where(served > 0, inverted, fallback)
    dem = np.where(np.isfinite(dem), dem, base)  # beyond the data: the baseline
    return ScenarioInputs(tr["store_id"].to_numpy(), tr["days_of_cover"].to_numpy(), dem)
