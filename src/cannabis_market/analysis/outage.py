"""The 2022 supply outage, one call per notebook step: series, impact model, event study, scenarios.

Every function takes a loaded `Dataset` (duck-typed: `.sales`, `.stores`, `.inventory`, `.events`,
`.manifest`, `.frequency`) so the notebook holds no logic. When `outage_start`/`outage_end` are not
given they come from the dataset's events table (the first event of kind 'outage').

Treated and control stores: a store is treated when its days of cover just before the outage is below
what it needs to ride out the stop and the partial restart (see `event_study.treatment_from_inventory`);
the others kept stock and serve as controls. The stop/partial/fill parameters default to the August 2022
outage (deliveries stopped 5 days, then about 8 days of partial restart); `partial_fill` is the share
of a normal day's deliveries during the restart, 0.5 unless known.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from cannabis_market.analysis.event_study import EventStudyResult, event_study, treatment_from_inventory
from cannabis_market.analysis.impact import ImpactResult, estimate_impact
from cannabis_market.analysis.scenarios import ScenarioInputs, ScenarioResult, simulate_outage_scenarios
from cannabis_market.data.outage_model import served_share
from cannabis_market.errors import InputError
from cannabis_market.format import fmt_date

STOP_DAYS = 5
PARTIAL_DAYS = 8
PARTIAL_FILL = 0.5


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


def estimate_outage_impact(
    ds: Any,
    outage_start: dt.date | str | None = None,
    outage_end: dt.date | str | None = None,
    post_end: dt.date | str | None = None,
    controls: str = "control_group",
    alpha: float = 0.05,
    seed: int = 0,
    *,
    y: str = "treated",
    pre_days: int = 84,
    n_sims: int = 1000,
    region: str | None = "all",
    stop_days: int = STOP_DAYS,
    partial_days: int = PARTIAL_DAYS,
    partial_fill: float = PARTIAL_FILL,
    **impact_kw: Any,
) -> ImpactResult:
    """CausalImpact-style estimate of the outage's effect on sales (lost sales = `result.lost`).

    Daily data: y = the treated stores' sales (`y='treated'`) or all classified stores' sales
    (`y='total'`), composition-adjusted (see `outage_series`); with `controls='control_group'` the
    stores that kept stock are the control series, `'none'` leaves y to its own dynamics. Post-period:
    outage start to `post_end` (default `outage_end`, the last disrupted day; a longer post-period adds
    noise and would also pick up any catch-up buying afterwards). With a control group the weekly
    pattern is carried by the controls, so no separate seasonal component is fitted unless asked for
    (`seasonality=7`); fitting both lets the seasonal soak up what the controls should explain and
    biases the counterfactual. As in the event study, shocks common to all stores move the controls
    too, so the estimate is the loss relative to them.

    Monthly data: y = monthly total sales (of `region`), no controls (every region was hit), the
    counterfactual rests on the series' own level and seasonality (level sd bound 0.1 by default so it
    can follow the market's growth); post-period = the outage months. A two-week outage is a few per
    cent of a month's sales, so expect a wide interval.
    """
    start, end = _resolve(ds, outage_start, outage_end)
    post = _as_date(post_end, "post_end") or end
    if post < end:
        raise InputError(f"post_end {fmt_date(post)} is before outage_end {fmt_date(end)}")
    if controls not in ("control_group", "none"):
        raise InputError(f"controls must be 'control_group' or 'none', got {controls!r}")
    if y not in ("treated", "total"):
        raise InputError(f"y must be 'treated' or 'total', got {y!r}")
    if ds.frequency == "monthly":
        first = _need(ds, "sales").select(pl.col("date").min()).collect().item()
        if first is None:
            raise InputError("the sales table is empty")
        m0 = start.replace(day=1)
        months = outage_series(ds, start, pre_days=max((start - first).days, 1), post_end=post, region=region)
        frame = months.group_by("date").agg(pl.col("total_sales").sum()).sort("date")
        pre_rows = frame.filter(pl.col("date") < m0)
        if pre_rows.height < 3:
            raise InputError(
                f"only {pre_rows.height} month(s) of sales before the outage; an impact model needs more"
            )
        impact_kw.setdefault("prior_level_sd", 0.1)  # a growing market: let the level follow the growth
        return estimate_impact(
            frame,
            "total_sales",
            (pre_rows["date"][0], pre_rows["date"][-1]),
            (m0, post.replace(day=1)),
            controls=None,
            alpha=alpha,
            seed=seed,
            n_sims=n_sims,
            **impact_kw,
        )
    series = outage_series(ds, start, pre_days, post, region, stop_days, partial_days, partial_fill)
    ycol = "treated_sales_adj" if y == "treated" else "total_sales_adj"
    ctrl = ["control_sales_adj"] if controls == "control_group" else None
    if ctrl:
        if series["n_control"].max() == 0 or series["control_sales"].sum() <= 0:
            raise InputError("no control stores: every store was expected to run short; use controls='none'")
        impact_kw.setdefault("seasonality", None)
    if series["n_treated"].max() == 0:
        raise InputError("no treated stores: no store had cover below the no-stock-out threshold")
    # readable names: they label the chart and the report paragraph
    names = {
        "treated_sales_adj": "Sales of stores running short",
        "total_sales_adj": "Sales of all stores",
        "control_sales_adj": "Sales of stores with stock",
    }
    frame = series.select("date", ycol, *(ctrl or [])).drop_nulls().rename(names, strict=False)
    return estimate_impact(
        frame,
        names[ycol],
        (frame["date"][0], start - dt.timedelta(days=1)),
        (start, post),
        controls=[names[c] for c in ctrl] if ctrl else None,
        alpha=alpha,
        seed=seed,
        n_sims=n_sims,
        **impact_kw,
    )


def outage_event_study(
    ds: Any,
    outage_start: dt.date | str | None = None,
    window: tuple[int, int] = (-28, 27),
    by: str | None = None,
    alpha: float = 0.05,
    *,
    stop_days: int = STOP_DAYS,
    partial_days: int = PARTIAL_DAYS,
    partial_fill: float = PARTIAL_FILL,
    loss_window: tuple[int, int] | None = None,
    outcome: str = "revenue",
    outage_end: dt.date | str | None = None,
) -> EventStudyResult:
    """Store-panel event study of the outage (treated = low cover) with optional `by` ('cover_bin',
    'region', ...). Needs daily store-level sales.

    The total loss sums the disrupted days only (default `loss_window`: day 0 to the outage's last day,
    from the events table or `outage_end`); the later days of the window are still estimated and shown,
    as a check that sales came back.
    """
    if ds.frequency != "daily":
        raise InputError(
            "the outage event study needs daily store-level sales; this dataset is "
            f"{ds.frequency} (use estimate_outage_impact on monthly totals instead)"
        )
    start, end = _resolve(ds, outage_start, outage_end)
    if loss_window is None:
        loss_window = (0, min((end - start).days, window[1]))
    _check_covers(ds, start + dt.timedelta(days=window[0]), start + dt.timedelta(days=window[1]))
    tr = outage_treatment(ds, start, stop_days, partial_days, partial_fill)
    return event_study(
        _need(ds, "sales"),
        start,
        window=window,
        treated=tr,
        by=by,
        outcome=outcome,
        alpha=alpha,
        stores=getattr(ds, "stores", None),
        loss_window=loss_window,
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


def outage_scenarios(
    ds: Any,
    outage_start: dt.date | str | None = None,
    stop_days_list: Sequence[int] = (3, 7, 14, 21),
    partial_days: int = PARTIAL_DAYS,
    partial_fill: float = PARTIAL_FILL,
    n_sims: int = 1000,
    seed: int = 0,
    *,
    baseline_weeks: int = 4,
    demand: str = "baseline",
    demand_cv: float = 0.1,
    cover_cv: float = 0.1,
    fill_spread: float = 0.2,
    **kw: Any,
) -> ScenarioResult:
    """What-if lost sales for stops of several lengths, fed with this dataset's stores (cover on the eve
    of the outage and normal demand from `scenario_inputs`).

    Uncertainty defaults: 10% demand and cover noise, and the restart fill drawn from
    `partial_fill +- fill_spread` (pass `partial_fill_range=` to set it directly, `fill_spread=0` and the
    cvs at 0 for a deterministic run). Goodwill fee parameters pass through to the simulator.
    """
    if fill_spread < 0:
        raise InputError(f"fill_spread must be >= 0, got {fill_spread}")
    if not 0.0 <= partial_fill <= 1.0:
        raise InputError(f"partial_fill must be within [0, 1], got {partial_fill}")
    if "partial_fill_range" not in kw and fill_spread > 0:
        kw["partial_fill_range"] = (
            max(0.0, partial_fill - fill_spread),
            min(1.0, partial_fill + fill_spread),
        )
    horizon = max([int(d) for d in stop_days_list] or [0]) + partial_days + 7
    inp = scenario_inputs(
        ds, outage_start, baseline_weeks, horizon=horizon, demand=demand, partial_fill=partial_fill
    )
    return simulate_outage_scenarios(
        inp,
        stop_days_list=stop_days_list,
        partial_days=partial_days,
        partial_fill=partial_fill,
        n_sims=n_sims,
        seed=seed,
        demand_cv=demand_cv,
        cover_cv=cover_cv,
        **kw,
    )


def estimate_series_impact(
    ds: Any,
    geo: str,
    controls: Sequence[str],
    outage_start: dt.date | str,
    post_end: dt.date | str | None = None,
    start: dt.date | str | None = None,
    alpha: float = 0.05,
    seed: int = 0,
    n_sims: int = 1000,
    metric: str = "sales",
    **impact_kw: Any,
) -> ImpactResult:
    """Impact model on an aggregate `series` dataset (e.g. StatCan monthly sales by province).

    y = `metric` of `geo`; controls = the same metric of other geographies that the event did not touch
    (for the 2022 Ontario outage: the other provinces). A control written `rest_of:<total>` is the
    total minus `geo` (e.g. `rest_of:Canada` = Canada without Ontario), one well-measured control rather
    than many short ones. The post-period runs from the month of `outage_start` to `post_end` (default:
    that month alone).
    """
    series = _need(ds, "series").filter(pl.col("metric") == metric).collect()
    derived = []
    for c in controls:
        if c.startswith("rest_of:"):
            total = c.split(":", 1)[1]
            both = series.filter(pl.col("geo").is_in([total, geo])).pivot(
                on="geo", index="date", values="value"
            )
            if total in both.columns and geo in both.columns:
                derived.append(
                    both.select(
                        "date",
                        pl.lit(c).alias("geo"),
                        pl.lit(metric).alias("metric"),
                        (pl.col(total) - pl.col(geo)).alias("value"),
                    ).drop_nulls()
                )
    if derived:
        series = pl.concat([series, *derived], how="vertical_relaxed")
    geos = set(series["geo"].unique().to_list())
    missing = [g for g in [geo, *controls] if g not in geos]
    if missing:
        raise InputError(
            f"geography {missing} not in the dataset's '{metric}' series; available: {', '.join(sorted(geos))}"
        )
    if geo in controls:
        raise InputError(f"{geo!r} is both the outcome and a control")
    o_start = _as_date(outage_start, "outage_start")
    post = _as_date(post_end, "post_end") or o_start
    first = _as_date(start, "start")
    monthly = ds.frequency == "monthly"
    p0 = o_start.replace(day=1) if monthly else o_start
    p1 = post.replace(day=1) if monthly else post
    wide = (
        series.filter(pl.col("geo").is_in([geo, *controls]))
        .pivot(on="geo", index="date", values="value")
        .sort("date")
        .filter(pl.col("date") <= p1)
    )
    if first is not None:
        wide = wide.filter(pl.col("date") >= first)
    wide = wide.drop_nulls()
    pre = wide.filter(pl.col("date") < p0)
    if pre.height < 3:
        raise InputError(f"only {pre.height} period(s) with all series present before {fmt_date(p0)}")
    impact_kw.setdefault("prior_level_sd", 0.01)
    return estimate_impact(
        wide,
        geo,
        (pre["date"][0], pre["date"][-1]),
        (p0, p1),
        controls=list(controls),
        alpha=alpha,
        seed=seed,
        n_sims=n_sims,
        **impact_kw,
    )


def outage_impact(
    ds: Any,
    region: str = "all",
    controls: Sequence[str] = ("control_group",),
    start: dt.date | str | None = None,
    outage_start: dt.date | str | None = None,
    outage_end: dt.date | str | None = None,
    post_end: dt.date | str | None = None,
    alpha: float = 0.05,
    seed: int = 0,
    n_sims: int = 1000,
) -> ImpactResult:
    """The outage notebook's one call: store-level datasets use the treated/control store split,
    aggregate series datasets compare `region` with the `controls` geographies."""
    if getattr(ds, "sales", None) is None:
        if list(controls) == ["control_group"]:
            raise InputError(
                "a series dataset has no stores to split: name control geographies, e.g. -p controls=Quebec,Alberta"
            )
        geo = region if region not in ("all", "", None) else str(ds.manifest.get("region", ""))
        return estimate_series_impact(
            ds,
            geo,
            list(controls),
            outage_start or _resolve(ds, None)[0],
            post_end,
            start,
            alpha,
            seed,
            n_sims,
        )
    o_start, _ = _resolve(ds, outage_start, outage_end)
    first = _as_date(start, "start")
    pre_days = (o_start - first).days if first else 84
    if pre_days < 14:
        raise InputError(
            f"start {fmt_date(first)} leaves only {pre_days} days before the outage; use at least 14"
        )
    ctrl = "none" if list(controls) in ([], ["none"]) else "control_group"
    if ctrl == "control_group" and list(controls) != ["control_group"]:
        raise InputError(
            f"controls {list(controls)}: a store-level dataset uses 'control_group' (stores that kept stock) or 'none'"
        )
    return estimate_outage_impact(
        ds, o_start, outage_end, post_end, ctrl, alpha, seed, pre_days=pre_days, n_sims=n_sims, region=region
    )


def impact_figures(result: ImpactResult) -> dict[str, float]:
    """Headline figures of an outage impact estimate (lost sales positive = sales lost)."""
    avg = result.summary().filter(pl.col("row") == "average").row(0, named=True)
    lost = result.lost
    return {
        "lost_sales": lost.point,
        "lost_sales_lo": lost.lo,
        "lost_sales_hi": lost.hi,
        "rel_effect": avg["rel_effect"],
        "rel_effect_lo": avg["rel_effect_lo"],
        "rel_effect_hi": avg["rel_effect_hi"],
        "p_value": result.p_value,
    }
