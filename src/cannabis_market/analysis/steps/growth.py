"""The steps of the store-growth report (notebook 02): store growth curves, demand forecast, saturation,
cannibalization. Each takes the selected dataset (`steps.select`) and the report's parameters."""

from __future__ import annotations

from typing import Any

import polars as pl

from cannabis_market.analysis import growth
from cannabis_market.analysis.results import check_alpha
from cannabis_market.analysis.steps.base import (
    Step,
    Table,
    has_store_sales,
    positive,
    run,
    skip,
    whole_number,
)

NO_STORE_SALES = (
    "This dataset has market totals only, not sales by store, so {what} cannot be measured and this "
    "section is left out."
)


def _currency(ds: Any) -> str:
    return str(ds.manifest.get("currency", "CAD"))


def _has_store_counts(ds: Any) -> bool:
    if ds.stores is not None:
        return True
    if ds.series is None:
        return False
    return bool(ds.series.filter(pl.col("metric") == "stores").head(1).collect().height)


def _growth_figures(result: growth.StoreGrowthResult) -> dict[str, float]:
    if hasattr(result, "figures"):
        return dict(result.figures())
    best = result.best
    lo, hi = best.interval["K"]
    return {"carrying_capacity": best.K, "carrying_capacity_lo": lo, "carrying_capacity_hi": hi}


def _growth_views(result: growth.StoreGrowthResult) -> list[Any]:
    views: list[Any] = [
        result.chart(),
        Table(result.comparison(), "Growth curves compared (lower AIC/BIC fits better)", diagnostic=True),
    ]
    if result.counts["openings"].null_count() < result.counts.height:
        views.append(result.chart_flows())
    return views


def store_growth(
    ds: Any, *, start: Any = None, end: Any = None, horizon: int = 12, alpha: float = 0.05, seed: int = 0
) -> Step:
    """Growth curves (logistic, Gompertz) fitted to open stores, with the carrying capacity and a forecast.

    Counts come from the stores table, or from a 'stores' series in aggregate datasets."""
    check_alpha(alpha, "store_growth")
    whole_number(horizon, "forecast_months", 0)
    if not _has_store_counts(ds):
        return skip(
            "store_growth",
            "This dataset has no count of open stores, so the growth curve of the number of stores is left out.",
        )
    source = ds.stores if ds.stores is not None else ds.series
    return run(
        "store_growth",
        lambda: growth.fit_store_growth(
            growth.store_counts(source, start=start, end=end), horizon=horizon, alpha=alpha, seed=seed
        ),
        reason=(
            "The growth curve of the number of stores is left out: over this window the store count is too "
            "short a series, or does not change, so no carrying capacity can be fitted."
        ),
        views=_growth_views,
        figures=_growth_figures,
    )


def _demand_views(result: growth.DemandForecast) -> list[Any]:
    return [
        result.chart(),
        Table(result.backtest, "Rolling-origin backtest error by horizon (MAPE, MASE)", diagnostic=True),
    ]


def demand_forecast(ds: Any, *, horizon: int = 12, alpha: float = 0.05) -> Step:
    """Monthly market sales forecast `horizon` months ahead, with prediction intervals and a backtest."""
    check_alpha(alpha, "demand_forecast")
    whole_number(horizon, "forecast_months", 1)
    if ds.sales is None and ds.series is None:
        return skip("demand_forecast", "This dataset has no sales figures, so demand is not forecast.")
    return run(
        "demand_forecast",
        lambda: growth.forecast_demand(
            growth.market_sales(ds), horizon=horizon, alpha=alpha, currency=_currency(ds)
        ),
        reason=(
            "Demand is not forecast: the monthly sales in this selection are too few months (or not positive "
            "throughout) to fit and backtest a forecast."
        ),
        views=_demand_views,
    )


def _saturation_views(result: growth.SaturationResult) -> list[Any]:
    views: list[Any] = [
        Table(result.summary(), "Stores open, sales per store and stores below break-even, by region"),
        result.chart(),
    ]
    if result.capacity is not None:
        views.append(result.chart_capacity())
    if result.density is not None:
        views.append(result.chart_density())
    return views


def _saturation_figures(result: growth.SaturationResult) -> dict[str, Any]:
    if hasattr(result, "figures"):
        return dict(result.figures())
    return {"stores_at_risk": result.stores_at_risk}


def saturation(
    ds: Any,
    *,
    breakeven_monthly_revenue: float,
    trailing_months: int = 6,
    forecast: Step | growth.DemandForecast | None = None,
    min_cell: int = 3,
) -> Step:
    """Sales per open store against a break-even level, stores at risk, and (with a demand `forecast`,
    a step or its result) the number of stores forecast demand can carry. Needs store-level sales.

    Its result holds store-level detail for internal follow-up: protect it (`reports.publish`) before
    showing it."""
    positive(breakeven_monthly_revenue, "breakeven_monthly_revenue")
    whole_number(trailing_months, "trailing_months", 1)
    if not has_store_sales(ds):
        return skip("saturation", NO_STORE_SALES.format(what="sales per store against break-even"))
    if isinstance(forecast, Step):
        forecast = forecast.result
    return run(
        "saturation",
        lambda: growth.saturation(
            ds,
            breakeven_monthly_revenue=breakeven_monthly_revenue,
            trailing_months=trailing_months,
            forecast=forecast,
            min_cell=min_cell,
            currency=_currency(ds),
        ),
        reason=("Saturation is not assessed: no store in this selection reports sales in this window."),
        views=_saturation_views,
        figures=_saturation_figures,
    )


def _cannibalization_views(result: growth.CannibalizationResult) -> list[Any]:
    return [
        Table(result.summary(), "Cannibalization elasticity and the share of sales a new neighbour takes"),
        result.chart(),
    ]


def _cannibalization_figures(result: growth.CannibalizationResult) -> dict[str, float]:
    if hasattr(result, "figures"):
        return dict(result.figures())
    return {
        "cannibalization_elasticity": result.elasticity,
        "cannibalization_elasticity_lo": result.lo,
        "cannibalization_elasticity_hi": result.hi,
    }


def cannibalization(ds: Any, *, alpha: float = 0.05) -> Step:
    """How much of an incumbent's sales a new neighbour takes (store and month fixed effects). Needs
    store-level sales and local competition that changes within stores."""
    check_alpha(alpha, "cannibalization")
    if not has_store_sales(ds):
        return skip("cannibalization", NO_STORE_SALES.format(what="what a new neighbour takes from a store"))
    return run(
        "cannibalization",
        lambda: growth.cannibalization(ds, alpha=alpha),
        reason=(
            "Cannibalization is not estimated for this selection: the number of nearby competitors does not "
            "change within stores apart from market-wide moves, so a new neighbour's effect cannot be told "
            "apart from everything else that changed in the same months."
        ),
        views=_cannibalization_views,
        figures=_cannibalization_figures,
    )
