"""The impact chart (altair, imported with the package theme when the chart is drawn, so fitting never pays
for altair)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import polars as pl

from cannabis_market import theme

if TYPE_CHECKING:
    import altair as alt

    from cannabis_market.analysis.impact.result import ImpactResult

_MAX_CHART_ROWS = 5000


def impact_chart(result: ImpactResult) -> alt.VConcatChart:
    """Three stacked panels: observed vs counterfactual, pointwise effect, cumulative effect.

    Bands are the ``1 - alpha`` intervals; the dashed vertical rule marks the post-period start.
    """
    alt = theme.altair()
    data = result.series.drop("period")
    if data.height > _MAX_CHART_ROWS:
        step = math.ceil(data.height / _MAX_CHART_ROWS)
        data = data.gather_every(step)
    is_index = result.frequency == "index"
    xtype = "quantitative" if is_index else "temporal"
    x = alt.X("date", type=xtype, title="period" if is_index else "date")
    level = f"{100 * (1 - result.alpha):g}%"
    post_start = result.series.filter(pl.col("period") == "post")["date"][0]
    rule_data = pl.DataFrame({"date": [post_start]})
    rule = alt.Chart(rule_data).mark_rule(strokeDash=[4, 3], color="#555").encode(x=alt.X("date", type=xtype))
    base = alt.Chart(data)
    band_color = theme.BAND

    observed = base.transform_fold(["actual", "predicted"], as_=["series", "value"]).mark_line()
    observed = observed.encode(
        x=x,
        y=alt.Y("value:Q", title=result.y, scale=alt.Scale(zero=False)),
        color=alt.Color(
            "series:N",
            title=None,
            scale=alt.Scale(domain=["actual", "predicted"], range=theme.PALETTE[:2]),
            legend=alt.Legend(orient="top"),
        ),
        strokeDash=alt.StrokeDash(
            "series:N",
            scale=alt.Scale(domain=["actual", "predicted"], range=[[1, 0], [5, 3]]),
            legend=None,
        ),
    )
    band1 = base.mark_area(color=band_color, opacity=0.5).encode(
        x=x, y=alt.Y("predicted_lo:Q", title=result.y), y2="predicted_hi:Q"
    )
    top = (band1 + observed + rule).properties(
        height=200,
        title=alt.Title(f"'{result.y}': observed vs counterfactual", subtitle=f"band: {level} interval"),
    )

    def effect_panel(col: str, title: str, axis: str) -> alt.LayerChart:
        band = base.mark_area(color=band_color, opacity=0.5).encode(
            x=x, y=alt.Y(f"{col}_lo:Q", title=axis), y2=f"{col}_hi:Q"
        )
        line = base.mark_line(color=theme.PALETTE[0]).encode(x=x, y=f"{col}:Q")
        zero = alt.Chart(pl.DataFrame({"zero": [0.0]})).mark_rule(color="#888").encode(y="zero:Q")
        return (band + line + zero + rule).properties(height=150, title=title)

    return alt.vconcat(
        top,
        effect_panel("point_effect", "Pointwise effect (actual - counterfactual)", "effect"),
        effect_panel("cum_effect", "Cumulative effect", "cumulative effect"),
    ).resolve_scale(color="independent")
