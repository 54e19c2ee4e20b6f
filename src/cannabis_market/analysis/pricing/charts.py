"""Charts of the pricing results (altair); each aggregates in polars first and stays small."""

from __future__ import annotations

from typing import TYPE_CHECKING

import altair as alt
import polars as pl

from cannabis_market import theme
from cannabis_market.analysis.pricing._base import currency_symbol, require
from cannabis_market.format import fmt_date, fmt_pct

if TYPE_CHECKING:
    from cannabis_market.analysis.pricing.competition import CompetitionResult
    from cannabis_market.analysis.pricing.elasticity import ElasticityResult
    from cannabis_market.analysis.pricing.margin import MarginResult
    from cannabis_market.analysis.pricing.trend import PriceTrendResult


def _unit(currency: str | None) -> str:
    """' (US$)' for an axis title, or nothing when the currency is unknown."""
    sym = currency_symbol(currency).strip()
    return f" ({sym})" if sym else ""


def trend_chart(res: PriceTrendResult) -> alt.LayerChart:
    """Observed price per gram with the overall trend and (if scanned) the two-segment fit."""
    long = res.plot_data()
    names = {"price_per_g": "observed", "trend": "log-linear trend", "segmented": "trend with one break"}
    shown = [names[c] for c in ("price_per_g", "trend", "segmented") if c in res.fitted.columns]
    dashes = {"observed": [1, 0], "log-linear trend": [6, 4], "trend with one break": [2, 2]}
    lo, hi = float(long["value"].min()), float(long["value"].max())
    base = alt.Chart(long).encode(
        x=alt.X("period:T", title=None),
        y=alt.Y(
            "value:Q",
            title=f"{res.label}{_unit(res.currency)} (log scale)",
            scale=alt.Scale(type="log", domain=[lo * 0.95, hi * 1.05], nice=False),
        ),
        color=alt.Color("series:N", title=None, sort=shown, legend=alt.Legend(orient="bottom")),
        strokeDash=alt.StrokeDash(
            "series:N", scale=alt.Scale(domain=shown, range=[dashes[n] for n in shown]), legend=None
        ),
        detail="part:N",
    )
    layers = [base.mark_line()]
    subtitle = (
        f"{1 - res.alpha:.0%} interval {fmt_pct(res.annual.lo, signed=True)} to "
        f"{fmt_pct(res.annual.hi, signed=True)}"
    )
    if res.brk is not None:
        b = res.brk
        rule = pl.DataFrame({"period": [b.date]})
        layers.append(alt.Chart(rule).mark_rule(color="#888", strokeDash=[2, 2]).encode(x="period:T"))
        subtitle += (
            f"; break {fmt_date(b.date, True)} (p = {b.p_value:.3f}): "
            f"{fmt_pct(b.before.estimate, signed=True)} a year before, "
            f"{fmt_pct(b.after.estimate, signed=True)} after"
        )
    title = alt.Title(
        f"{res.label.capitalize()}: {fmt_pct(res.annual.estimate, signed=True)} a year",
        subtitle=subtitle,
    )
    return alt.layer(*layers).properties(title=title)


def elasticity_chart(res: ElasticityResult) -> alt.LayerChart:
    """Binned within-store log grams against log price, with the fitted elasticity line."""
    b = res.plot_data()
    pts = (
        alt.Chart(b)
        .mark_point(filled=True, size=50)
        .encode(
            x=alt.X(
                "log_p:Q",
                title="log price per gram, within store (deviation from store and period means)",
            ),
            y=alt.Y("log_q:Q", title="log grams, within store"),
            tooltip=["n:Q"],
        )
    )
    xs = b["log_p"] if b.height else pl.Series([0.0])
    line_df = pl.DataFrame({"log_p": [float(xs.min()), float(xs.max())]}).with_columns(
        log_q=pl.col("log_p") * res.elasticity.estimate
    )
    line = alt.Chart(line_df).mark_line(color=theme.PALETTE[1]).encode(x="log_p:Q", y="log_q:Q")
    e = res.elasticity
    return alt.layer(pts, line).properties(
        title=alt.Title(
            f"Price elasticity {e.estimate:.2f}",
            subtitle=f"{1 - res.alpha:.0%} interval {e.lo:.2f} to {e.hi:.2f}; 20 bins of within-store variation",
        )
    )


def competition_chart(res: CompetitionResult) -> alt.Chart:
    """Mean within-store log price by number of local competitors (deviation from store/period means)."""
    b = res.plot_data()
    return (
        alt.Chart(b)
        .mark_line(point=True)
        .encode(
            x=alt.X("competitors:Q", title="local competitors (other open stores in the municipality)"),
            y=alt.Y("log_p:Q", title="log price per gram, within store"),
            tooltip=["competitors:Q", "log_p:Q", "n:Q"],
        )
        .properties(
            title=alt.Title("Price and local competition", subtitle="store and period effects removed")
        )
    )


def margin_chart(res: MarginResult) -> alt.Chart:
    """Retail and wholesale price per gram over time; the gap between them is the margin."""
    f = res.frame
    long = res.plot_data()
    return (
        alt.Chart(long)
        .mark_line()
        .encode(
            x=alt.X("period:T", title=None),
            y=alt.Y("price per gram:Q", title=f"price per gram{_unit(res.currency)}"),
            color=alt.Color("series:N", title=None),
        )
        .properties(
            title=alt.Title(
                "Margin squeeze",
                subtitle=f"margin share {fmt_pct(f['margin_pct'][0])} → {fmt_pct(f['margin_pct'][-1])}",
            )
        )
    )


def illicit_gap_chart(gap: pl.DataFrame, source: str | None = None) -> alt.LayerChart:
    """Legal and illicit price per gram over time (lines) from an `illicit_gap` frame."""
    require(gap, ["period", "legal", "illicit"], "illicit_gap_chart")
    g = gap.select("period", "legal", "illicit")
    if g.height > 2000:
        g = g.group_by(pl.col("period").dt.truncate("1mo")).mean().sort("period")
    long = g.unpivot(index="period", variable_name="market", value_name="price per gram")
    lines = (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=alt.X("period:T", title=None),
            y=alt.Y("price per gram:Q", scale=alt.Scale(zero=False)),
            color=alt.Color("market:N", title=None),
        )
    )
    last = gap.sort("period").tail(1)
    sub = f"legal premium {fmt_pct(float(last['premium_pct'][0]), signed=True)} in {fmt_date(last['period'][0], True)}"
    if source:
        sub += f"; source: {source}"
    return alt.layer(lines).properties(title=alt.Title("Legal vs illicit price per gram", subtitle=sub))
