"""The 2022 supply outage, one call per notebook step: series, impact model, event study, scenarios.

Every function takes a loaded `Dataset` (duck-typed: `.sales`, `.stores`, `.inventory`, `.events`,
`.manifest`, `.frequency`) so the notebook holds no logic. When `outage_start`/`outage_end` are not
given they come from the dataset's events table (the first event of kind 'outage').

Treated and control stores: a store is treated when its days of cover just before the outage is below
what it needs to ride out the stop and the partial restart (see `event_study.treatment_from_inventory`);
the others kept stock and serve as controls. The stop/partial/fill parameters default to the August 2022
outage (deliveries stopped 5 days, then about 8 days of partial restart); `partial_fill` is the share
of a normal day's deliveries during the restart, 0.5 unless known.

Reading the outage out of the dataset (dates, treated/control split, sales series, scenario inputs)
lives in `outage_data`; its public names are re-exported here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import polars as pl

from cannabis_market.analysis.event_study import EventStudyResult, event_study
from cannabis_market.analysis.impact import ImpactResult, estimate_impact
from cannabis_market.analysis.outage_data import (
    PARTIAL_DAYS,
    PARTIAL_FILL,
    STOP_DAYS,
    _as_date,
    _check_covers,
    _need,
    _resolve,
    outage_dates,
    outage_series,
    outage_treatment,
    scenario_inputs,
    store_days,
)
from cannabis_market.analysis.scenarios import ScenarioResult, simulate_outage_scenarios
from cannabis_market.errors import InputError
from cannabis_market.format import fmt_date

__all__ = [
    "PARTIAL_DAYS",
    "PARTIAL_FILL",
    "STOP_DAYS",
    "estimate_outage_impact",
    "estimate_series_impact",
    "impact_figures",
    "outage_dates",
    "outage_event_study",
    "outage_impact",
    "outage_scenarios",
    "outage_series",
    "outage_treatment",
    "scenario_inputs",
    "store_days",
]


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
    pre_days: int | None = None,
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

    `pre_days`: the pre-period starts this many days before the outage (on monthly data: the month
    holding that day); default 84 days on daily data and every month of the data on monthly data.
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
        pre_days = max((start - first).days, 1) if pre_days is None else pre_days
        months = outage_series(ds, start, pre_days=pre_days, post_end=post, region=region)
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
    pre_days = 84 if pre_days is None else pre_days
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
    lo, hi = start + dt.timedelta(days=window[0]), start + dt.timedelta(days=window[1])
    _check_covers(ds, lo, hi)
    tr = outage_treatment(ds, start, stop_days, partial_days, partial_fill)
    return event_study(
        store_days(ds, lo, hi, outcome),  # the window's store-days, shared with the contributor tables
        start,
        window=window,
        treated=tr,
        by=by,
        outcome=outcome,
        alpha=alpha,
        stores=getattr(ds, "stores", None),
        loss_window=loss_window,
    )


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
    model: str = "auto",
) -> ImpactResult:
    """The outage notebook's one call: store-level datasets use the treated/control store split,
    aggregate series datasets compare `region` with the `controls` geographies. `start` begins the
    pre-period (default: 84 days before the outage on daily data, all the data on monthly or series
    data); `model` ("auto", "regression", "state_space") is passed on to `estimate_impact`."""
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
            model=model,
        )
    o_start, _ = _resolve(ds, outage_start, outage_end)
    first = _as_date(start, "start")
    pre_days = (o_start - first).days if first else None
    if pre_days is not None and pre_days < 14:
        raise InputError(
            f"start {fmt_date(first)} leaves only {pre_days} days before the outage; use at least 14"
        )
    ctrl = "none" if list(controls) in ([], ["none"]) else "control_group"
    if ctrl == "control_group" and list(controls) != ["control_group"]:
        raise InputError(
            f"controls {list(controls)}: a store-level dataset uses 'control_group' (stores that kept stock) or 'none'"
        )
    return estimate_outage_impact(
        ds,
        o_start,
        outage_end,
        post_end,
        ctrl,
        alpha,
        seed,
        pre_days=pre_days,
        n_sims=n_sims,
        region=region,
        model=model,
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
