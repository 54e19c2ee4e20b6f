"""Retail margins: retail minus wholesale price per gram, its share of the retail price and their trends."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from cannabis_market.analysis.inference import hac_ols, nw_lags
from cannabis_market.analysis.pricing import charts
from cannabis_market.analysis.pricing._base import (
    Estimate,
    as_date,
    check_freq,
    positive,
    require,
    time_index,
    to_frame,
)
from cannabis_market.analysis.pricing.trend import PriceTrendResult, price_trend
from cannabis_market.errors import InputError
from cannabis_market.format import fmt_date, fmt_pct

if TYPE_CHECKING:
    import altair as alt

DEFAULT_WHOLESALE_PER_G = 4.05
"""OCS average wholesale price of dried flower in calendar 2023, CA$ per gram (excl. HST; OCS "By the
Numbers" 2023). `margin_squeeze` uses it as a flat path for every period unless a path is given."""


def wholesale_path(
    periods: Sequence[dt.date] | pl.Series,
    anchor: float = DEFAULT_WHOLESALE_PER_G,
    anchor_year: int = 2023,
    annual_change: float = 0.0,
) -> pl.DataFrame:
    """A wholesale price path: `anchor` CA$/g in mid-`anchor_year`, changing by `annual_change` a year.

    The default (flat CA$4.05/g, OCS's 2023 average for dried flower) holds wholesale constant, so the
    margin moves only with retail prices; pass e.g. annual_change=-0.05 to let wholesale fall too.
    """
    if anchor <= 0:
        raise InputError(f"wholesale_path: anchor must be > 0, got {anchor}")
    if annual_change <= -1:
        raise InputError(f"wholesale_path: annual_change must be > -1, got {annual_change}")
    p = pl.Series("period", list(periods)).cast(pl.Date)
    mid = dt.date(anchor_year, 7, 1)
    epoch = dt.date(1970, 1, 1)
    years = (p.cast(pl.Int64).to_numpy() - (mid - epoch).days) / 365.25
    return pl.DataFrame({"period": p, "wholesale_per_g": anchor * (1 + annual_change) ** years})


@dataclass
class MarginResult:
    """Retail gross margin per gram (retail - wholesale), its share of the retail price and their trends."""

    alpha: float
    freq: str
    frame: pl.DataFrame  # period, price_per_g, wholesale_per_g, margin_per_g, margin_pct
    margin_pct_trend: Estimate  # change in margin share per year, in fractions (0.01 = 1 point)
    margin_trend: PriceTrendResult | None  # log-linear trend of margin per gram (None if any margin <= 0)
    retail_trend: PriceTrendResult
    wholesale_note: str = ""
    currency: str = "CAD"  # ISO code from the dataset manifest (labels only)

    def summary(self) -> pl.DataFrame:
        f = self.frame
        rows = [
            {"measure": "margin_pct_start", "estimate": float(f["margin_pct"][0]), "lo": None, "hi": None},
            {"measure": "margin_pct_end", "estimate": float(f["margin_pct"][-1]), "lo": None, "hi": None},
            {
                "measure": "margin_pct_change_per_year",
                "estimate": self.margin_pct_trend.estimate,
                "lo": self.margin_pct_trend.lo,
                "hi": self.margin_pct_trend.hi,
            },
            {
                "measure": "retail_price_annual_rate",
                "estimate": self.retail_trend.annual.estimate,
                "lo": self.retail_trend.annual.lo,
                "hi": self.retail_trend.annual.hi,
            },
        ]
        if self.margin_trend is not None:
            a = self.margin_trend.annual
            rows.append(
                {"measure": "margin_per_g_annual_rate", "estimate": a.estimate, "lo": a.lo, "hi": a.hi}
            )
        return pl.DataFrame(
            rows, schema={"measure": pl.String, "estimate": pl.Float64, "lo": pl.Float64, "hi": pl.Float64}
        )

    def report(self) -> str:
        f = self.frame
        lvl = f"{1 - self.alpha:.0%}"
        m = self.margin_pct_trend
        txt = (
            f"Retail gross margin (retail price per gram minus wholesale): {fmt_pct(f['margin_pct'][0])} of the "
            f"retail price in {fmt_date(f['period'][0], True)} and {fmt_pct(f['margin_pct'][-1])} in "
            f"{fmt_date(f['period'][-1], True)}; the share changes by {100 * m.estimate:+.1f} points a year "
            f"({lvl} interval {100 * m.lo:+.1f} to {100 * m.hi:+.1f}). Retail prices change by "
            f"{fmt_pct(self.retail_trend.annual.estimate, signed=True)} a year."
        )
        if self.margin_trend is not None:
            a = self.margin_trend.annual
            txt += (
                f" The margin per gram changes by {fmt_pct(a.estimate, signed=True)} a year ({lvl} interval "
                f"{fmt_pct(a.lo, signed=True)} to {fmt_pct(a.hi, signed=True)})"
            )
            if a.estimate < self.retail_trend.annual.estimate:
                txt += (
                    ", faster than the retail price: wholesale prices fell less than retail (or not at all), so a "
                    "given retail price cut takes a larger percentage bite out of the margin."
                )
            else:
                txt += ", no faster than the retail price: wholesale prices fell at least as fast as retail."
        else:
            txt += (
                " In some periods the retail price is at or below the wholesale price (no positive margin)."
            )
        if self.wholesale_note:
            txt += f" {self.wholesale_note}"
        return txt

    def plot_data(self) -> pl.DataFrame:
        """What `chart()` draws: period, series (retail / wholesale / margin), price per gram."""
        f = self.frame
        if f.height > 1600:
            f = f.group_by(pl.col("period").dt.truncate("1mo")).mean().sort("period")
        return f.select(
            "period", retail="price_per_g", wholesale="wholesale_per_g", margin="margin_per_g"
        ).unpivot(index="period", variable_name="series", value_name="price per gram")

    def figures(self) -> dict[str, float]:
        """Headline figures: the margin share at the end and its change per year (with interval)."""
        m = self.margin_pct_trend
        return {
            "margin_pct_end": float(self.frame["margin_pct"][-1]),
            "margin_pct_change_per_year": m.estimate,
            "margin_pct_change_per_year_lo": m.lo,
            "margin_pct_change_per_year_hi": m.hi,
        }

    def chart(self) -> alt.Chart:
        """Retail and wholesale price per gram over time; the gap between them is the margin."""
        return charts.margin_chart(self)


def margin_squeeze(
    prices: pl.DataFrame,
    wholesale: float | pl.DataFrame = DEFAULT_WHOLESALE_PER_G,
    alpha: float = 0.05,
    freq: str = "monthly",
    *,
    maxlags: int | None = None,
    hac: str = "prewhitened",
    currency: str = "CAD",
) -> MarginResult:
    """Retailer gross margin per gram = retail price per gram - wholesale price per gram, and its trend.

    `prices` has period, price_per_g (retail). `wholesale` is a scalar CA$/g for every period (default
    CA$4.05, the OCS 2023 dried-flower average, held flat) or a frame of period -> wholesale_per_g
    (e.g. from `wholesale_path`); each retail period takes the latest wholesale value at or before it.
    Margin % = margin / retail price; its trend is linear in points per year with Newey-West errors
    (same `hac` choice as `price_trend`); margin per gram gets a log-linear trend when it is always > 0.
    """
    where = "margin_squeeze"
    k_year = check_freq(freq)
    df = to_frame(prices, where)
    require(df, ["period", "price_per_g"], where)
    df = positive(as_date(df.select("period", "price_per_g"), "period", where), "price_per_g", where).sort(
        "period"
    )
    note = ""
    if isinstance(wholesale, int | float):
        if not wholesale > 0 or not math.isfinite(wholesale):
            raise InputError(f"{where}: wholesale price must be > 0, got {wholesale}")
        df = df.with_columns(wholesale_per_g=pl.lit(float(wholesale)))
        if float(wholesale) == DEFAULT_WHOLESALE_PER_G and currency.upper() == "CAD":
            note = (
                "Wholesale is the default flat CA$4.05/g (OCS average dried-flower wholesale price, 2023); in "
                "other years the true wholesale price differed, so pass a path for a real squeeze estimate."
            )
        elif float(wholesale) == DEFAULT_WHOLESALE_PER_G:
            note = (
                f"Wholesale is the default 4.05 a gram, a Canadian 2023 figure in CA$ that does not describe "
                f"prices in {currency}; pass this market's own wholesale prices."
            )
    else:
        w = to_frame(wholesale, f"{where} (wholesale)")
        col = "wholesale_per_g" if "wholesale_per_g" in w.columns else "price_per_g"
        require(w, ["period", col], f"{where} (wholesale)")
        w = positive(
            as_date(w.select("period", col), "period", where),
            col,
            f"{where} (wholesale)",
            "wholesale prices",
        )
        w = w.rename({col: "wholesale_per_g"}).sort("period")
        df = df.join_asof(w, on="period", strategy="backward")
        miss = int(df["wholesale_per_g"].is_null().sum())
        if miss:
            raise InputError(
                f"{where}: the wholesale path starts at {w['period'][0]}, after {miss} retail period(s) "
                f"(first retail period {df['period'][0]}); extend the path back"
            )
    df = df.with_columns(margin_per_g=pl.col("price_per_g") - pl.col("wholesale_per_g")).with_columns(
        margin_pct=pl.col("margin_per_g") / pl.col("price_per_g")
    )
    retail = price_trend(
        df, alpha, freq, breaks=False, maxlags=maxlags, hac=hac, label="retail price per gram"
    )
    n = df.height
    t = time_index(df["period"], freq)
    lags = maxlags if maxlags is not None else nw_lags(n)
    r = hac_ols(df["margin_pct"].to_numpy(), np.column_stack([np.ones(n), t]), lags, hac)
    e = r.estimate(1, alpha)
    pct_trend = Estimate(k_year * e.estimate, k_year * e.se, k_year * e.lo, k_year * e.hi, e.p_value)
    mtrend = None
    if bool((df["margin_per_g"] > 0).all()):
        mtrend = price_trend(
            df.select("period", price_per_g="margin_per_g"),
            alpha,
            freq,
            breaks=False,
            maxlags=maxlags,
            hac=hac,
            label="margin per gram",
        )
    return MarginResult(
        alpha=alpha,
        freq=freq,
        frame=df,
        margin_pct_trend=pct_trend,
        margin_trend=mtrend,
        retail_trend=retail,
        wholesale_note=note,
        currency=currency,
    )
