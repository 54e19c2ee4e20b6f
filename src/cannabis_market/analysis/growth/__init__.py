"""Market growth: store-count dynamics, demand forecasts, saturation and cannibalization.

Four estimators, each returning a result object with point estimates, intervals, `summary()` (a polars
frame) and altair charts:

- `fit_store_growth` (`curves`) fits logistic and Gompertz curves to the number of open stores. Store
  counts drift away from any smooth curve for months at a time, so residuals are strongly autocorrelated
  and an i.i.d. bootstrap is far too narrow; a moving-block bootstrap was still too narrow in our checks
  (75-85% coverage for nominal 95%) because the fitted curve absorbs part of the slow drift. Intervals
  therefore come from a residual bootstrap with AR(1) noise calibrated so that refitted residuals
  match the observed ones. Forecast intervals add that noise, starting from the last observed gap.
- `forecast_demand` (`demand`) forecasts monthly market sales on log sales, backtested from rolling
  origins; the backtest table is part of the result.
- `saturation` (`saturation`) tracks sales per open store, store density and the stores whose trailing
  revenue is below a break-even level. Shared output holds counts and group averages only, never store rows.
- `cannibalization` (`cannibalization`) regresses log store-month revenue on log(1 + nearby competitors)
  with store and period fixed effects absorbed by demeaning (`analysis.inference.fe_ols`), clustering errors
  by store.

`store_counts` and `market_sales` (`counts`) build the inputs. Monthly periods are the first day of the
month (`pl.Date`).
"""

from cannabis_market.analysis.growth._common import MAX_CHART_ROWS
from cannabis_market.analysis.growth.cannibalization import (
    CannibalizationResult,
    add_competitors,
    cannibalization,
    store_month_panel,
)
from cannabis_market.analysis.growth.counts import market_sales, store_counts
from cannabis_market.analysis.growth.curves import GrowthFit, StoreGrowthResult, fit_store_growth
from cannabis_market.analysis.growth.demand import DemandForecast, forecast_demand
from cannabis_market.analysis.growth.saturation import SaturationResult, saturation

__all__ = [
    "MAX_CHART_ROWS",
    "CannibalizationResult",
    "DemandForecast",
    "GrowthFit",
    "SaturationResult",
    "StoreGrowthResult",
    "add_competitors",
    "cannibalization",
    "fit_store_growth",
    "forecast_demand",
    "market_sales",
    "saturation",
    "store_counts",
    "store_month_panel",
]
