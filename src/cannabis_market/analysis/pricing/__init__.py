"""Prices: price per gram, its trend and structural breaks, demand elasticity, competition, margins.

Everything here works on sales-weighted prices (sum of revenue / sum of grams), so a period's price is
what the average gram actually sold for, not the average of shelf prices.

- `inputs`: `price_table` (price per gram by period and category / region / municipality),
  `store_period_prices` (the store x period panel of `data.panels`, the one definition) and
  `price_inputs` (what the pricing notebook needs from any dataset).
- `trend`: `price_trend`, log-linear trend, annual rate = exp(k * slope) - 1 where k is the number of
  periods per year, with Newey-West (HAC) errors; plus a scan for one break in the trend (sup-F over the
  interior, p-value from an AR(1) wild residual bootstrap).
- `elasticity`: `price_elasticity`, log grams on log price with store and period fixed effects.
- `competition`: `competition_price_effect` (log price on local competition, store and period fixed
  effects; CRV3 errors when the municipalities are few), `price_index` / `compression_trend`
  (constant-quality price index, same stores, competition held fixed, and its annual compression).
- `margin`: `margin_squeeze`, retail minus wholesale price per gram, its share and its trend.
- `illicit`: `illicit_gap`, the legal premium over an illicit price series (StatCan's Canadian figures,
  shown only for Canadian data: `illicit_context`).
- `charts`: the altair charts behind each result's `chart()`.

Fixed effects are absorbed by demeaning (`analysis.inference`), never dummy columns. docs/pricing.md
explains what the numbers mean.
"""

from cannabis_market.analysis.inference import HAC_METHODS
from cannabis_market.analysis.pricing._base import (
    MIN_BREAK_PERIODS,
    MIN_PANEL_STORES,
    MIN_TREND_PERIODS,
    PERIODS_PER_YEAR,
    Estimate,
)
from cannabis_market.analysis.pricing.charts import illicit_gap_chart
from cannabis_market.analysis.pricing.competition import (
    CompetitionResult,
    competition_price_effect,
    compression_trend,
    price_index,
)
from cannabis_market.analysis.pricing.elasticity import ElasticityResult, price_elasticity
from cannabis_market.analysis.pricing.illicit import (
    STATCAN_SOURCE,
    IllicitContext,
    illicit_context,
    illicit_gap,
    statcan_legal_illicit,
)
from cannabis_market.analysis.pricing.inputs import (
    PriceInputs,
    price_inputs,
    price_table,
    store_period_prices,
    with_price_per_gram,
)
from cannabis_market.analysis.pricing.margin import (
    DEFAULT_WHOLESALE_PER_G,
    MarginResult,
    margin_squeeze,
    wholesale_path,
)
from cannabis_market.analysis.pricing.trend import BreakResult, PriceTrendResult, price_trend

__all__ = [
    "DEFAULT_WHOLESALE_PER_G",
    "HAC_METHODS",
    "MIN_BREAK_PERIODS",
    "MIN_PANEL_STORES",
    "MIN_TREND_PERIODS",
    "PERIODS_PER_YEAR",
    "STATCAN_SOURCE",
    "BreakResult",
    "CompetitionResult",
    "ElasticityResult",
    "IllicitContext",
    "Estimate",
    "MarginResult",
    "PriceInputs",
    "PriceTrendResult",
    "competition_price_effect",
    "compression_trend",
    "illicit_context",
    "illicit_gap",
    "illicit_gap_chart",
    "margin_squeeze",
    "price_elasticity",
    "price_index",
    "price_inputs",
    "price_table",
    "price_trend",
    "statcan_legal_illicit",
    "store_period_prices",
    "wholesale_path",
    "with_price_per_gram",
]
