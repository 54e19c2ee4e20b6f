"""Saturation: sales per open store, stores below break-even, demand-implied capacity, density."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import altair as alt
import polars as pl

from cannabis_market.analysis.growth._common import (
    MAX_CHART_ROWS,
    _add_months,
    _frame,
    _is_dataset,
    _money,
    _need,
)
from cannabis_market.analysis.growth.cannibalization import _flag_partial, _prepare_panel
from cannabis_market.analysis.growth.demand import DemandForecast
from cannabis_market.analysis.inference import fe_ols
from cannabis_market.data.disclosure import suppress_cells
from cannabis_market.data.panels import population_by_year
from cannabis_market.errors import InputError
from cannabis_market.format import fmt_date, fmt_num, fmt_pct
from cannabis_market.theme import BAND, PALETTE


@dataclass
class SaturationResult:
    """Sales per open store, density, demand-implied capacity and stores at risk (counts only).

    Group averages, and at-risk counts of groups, computed from fewer than `min_cell` stores are blanked
    (null) so that no single store's revenue or status can be read off a shared table (the 'All' row
    still counts them); `stores_at_risk_detail` holds store ids for internal follow-up and is never part
    of `summary()` or the charts.
    """

    breakeven_monthly_revenue: float
    trailing_months: int
    as_of: dt.date
    by: str
    min_cell: int
    over_time: pl.DataFrame
    at_risk: pl.DataFrame
    current: dict[str, float]
    capacity: pl.DataFrame | None
    density: pl.DataFrame | None
    density_slope: dict[str, float] | None
    stores_at_risk_detail: pl.DataFrame = field(repr=False)
    notes: list[str] = field(default_factory=list)
    currency: str = "CAD"

    @property
    def stores_at_risk(self) -> int | None:
        """Stores (all groups) whose trailing revenue is below break-even; None when too few were judged."""
        v = self.at_risk.filter(pl.col("group") == "All")["stores_at_risk"][0]
        return None if v is None else int(v)

    def summary(self) -> pl.DataFrame:
        """Per group (and 'All'): open stores, trailing sales per store, stores judged and at risk."""
        return self.at_risk

    def chart(self) -> alt.Chart:
        """Average monthly sales per open store over time, one line per group (largest groups first)."""
        ot = self.over_time.drop_nulls("sales_per_store")
        top = (
            ot.filter(pl.col("period") == self.as_of)
            .sort("stores_open", descending=True)["group"]
            .head(9)
            .to_list()
        )
        keep = list(dict.fromkeys(["All", *top]))
        data = (
            ot.filter(pl.col("group").is_in(keep))
            .select("period", "group", "sales_per_store")
            .head(MAX_CHART_ROWS)
        )
        rule = (
            alt.Chart(pl.DataFrame({"y": [self.breakeven_monthly_revenue]}))
            .mark_rule(strokeDash=[4, 3], color="#888")
            .encode(y="y:Q")
        )
        line = (
            alt.Chart(data)
            .mark_line()
            .encode(
                x=alt.X("period:T", title=None),
                y=alt.Y("sales_per_store:Q", title="monthly sales per open store"),
                color=alt.Color("group:N", title=self.by),
            )
        )
        return alt.layer(line, rule).properties(
            title=alt.Title(
                "Sales per open store",
                subtitle=f"dashed: break-even {_money(self.breakeven_monthly_revenue, self.currency)}/month",
            )
        )

    def chart_density(self) -> alt.Chart:
        """Stores per 10,000 residents against sales per store, one point per municipality."""
        if self.density is None:
            raise InputError("saturation: no population/municipality data, so no density chart")
        d = self.density.drop_nulls(["stores_per_10k", "sales_per_store"]).head(MAX_CHART_ROWS)
        return (
            alt.Chart(d)
            .mark_circle(opacity=0.6)
            .encode(
                x=alt.X("stores_per_10k:Q", title="stores per 10,000 residents"),
                y=alt.Y("sales_per_store:Q", title="monthly sales per store"),
                size=alt.Size("population:Q", legend=None),
                tooltip=["municipality", "stores_open", "stores_per_10k", "sales_per_store"],
            )
            .properties(title="Store density and sales per store (municipalities)")
        )

    def chart_capacity(self) -> alt.LayerChart:
        """Open stores against the number of stores forecast demand can carry at break-even."""
        if self.capacity is None:
            raise InputError("saturation: pass `forecast=` (a DemandForecast) to get demand-implied capacity")
        c = self.capacity
        band = (
            alt.Chart(c)
            .mark_area(color=BAND, opacity=0.5)
            .encode(
                x=alt.X("period:T", title=None), y=alt.Y("capacity_lo:Q", title="stores"), y2="capacity_hi:Q"
            )
        )
        cap = alt.Chart(c).mark_line(color=PALETTE[0]).encode(x="period:T", y="capacity:Q")
        cur = (
            alt.Chart(c)
            .mark_line(color=PALETTE[3], strokeDash=[5, 3])
            .encode(x="period:T", y="stores_open:Q")
        )
        return alt.layer(band, cap, cur).properties(
            title=alt.Title(
                "Demand-implied store capacity",
                subtitle="green: forecast sales / break-even; red dashed: stores open now",
            )
        )

    def report(self) -> str:
        a = self.at_risk.filter(pl.col("group") == "All").row(0, named=True)
        money = _money(self.breakeven_monthly_revenue, self.currency)
        per_store = (
            f"average sales per store over the last {self.trailing_months} months were "
            f"{_money(a['sales_per_store'], self.currency)} a month."
            if a["sales_per_store"] is not None
            else "average sales per store are not shown: too few stores, or one store makes most of the sales."
        )
        lines = [
            f"As of {fmt_date(self.as_of, monthly=True)}, {fmt_num(a['stores_open'])} stores were open; {per_store}",
            f"{fmt_num(a['stores_at_risk'])} of {fmt_num(a['stores_judged'])} stores with enough full months "
            f"({fmt_pct(a['share_at_risk'])}) averaged less than the break-even {money} "
            "a month. This is a screen on revenue alone; costs differ by store."
            if a["stores_at_risk"] is not None
            else f"Fewer than {self.min_cell} stores had enough full months to be compared with the break-even "
            f"{money} a month, so no count is shown.",
        ]
        over = self.current["oversupply_now"]
        if a["sales_per_store"] is not None:  # the capacity is total sales / break-even: same disclosure rule
            lines.append(
                f"Current sales would carry about {fmt_num(self.current['capacity_now'])} stores at break-even ("
                + (
                    f"{fmt_num(over)} more stores are open than that)."
                    if over >= 0
                    else f"room for about {fmt_num(-over)} more)."
                )
            )
        if self.capacity is not None and self.capacity.height:
            last = self.capacity.tail(1).row(0, named=True)
            lines.append(
                f"Forecast demand in {fmt_date(last['period'], monthly=True)} carries {fmt_num(last['capacity'])} stores "
                f"(interval {fmt_num(last['capacity_lo'])}-{fmt_num(last['capacity_hi'])}), against {fmt_num(last['stores_open'])} open now."
            )
        if self.density_slope:
            s = self.density_slope
            lines.append(
                f"Across municipalities, 1% more stores per resident goes with {s['estimate']:+.2f}% sales per store "
                f"(interval {s['lo']:+.2f} to {s['hi']:+.2f}; an association, not a causal effect)."
            )
        return "\n".join(lines + self.notes)


def saturation(
    data: Any,
    *,
    breakeven_monthly_revenue: float,
    trailing_months: int = 6,
    forecast: DemandForecast | None = None,
    population: pl.DataFrame | pl.LazyFrame | None = None,
    by: str = "region",
    min_cell: int = 3,
    dominance: float = 0.5,
    currency: str = "CAD",
) -> SaturationResult:
    """Saturation indicators from a loaded dataset or a store-month panel `[period, store_id, revenue, ...]`.

    - sales per open store per month, overall and by `by` (region or municipality);
    - stores at risk: open in the last month and averaging less than `breakeven_monthly_revenue` over
      their full (not opening/closing) months in the last `trailing_months`; stores with fewer than
      min(3, trailing_months) full months are counted as too new to judge;
    - demand-implied capacity (with `forecast`): forecast sales / break-even per future month, and the
      oversupply = stores open now - capacity, its interval from the forecast's interval;
    - density (with municipality + population): stores per 10,000 residents vs sales per store.

    Disclosure: a group average (sales per store) is blanked when fewer than `min_cell` stores built it
    or one store makes more than `dominance` of its sales (`data.disclosure.suppress_cells`); at-risk
    counts and shares are blanked below `min_cell` judged stores.
    """
    if (
        not isinstance(breakeven_monthly_revenue, int | float)
        or not math.isfinite(breakeven_monthly_revenue)
        or breakeven_monthly_revenue <= 0
    ):
        raise InputError(
            f"breakeven_monthly_revenue must be a positive amount per store-month, got {breakeven_monthly_revenue!r}"
        )
    if not isinstance(trailing_months, int) or trailing_months < 1:
        raise InputError(f"trailing_months must be a whole number >= 1, got {trailing_months!r}")
    if forecast is not None and not isinstance(forecast, DemandForecast):
        raise InputError(
            f"forecast must be a DemandForecast from forecast_demand(), got {type(forecast).__name__}"
        )
    if population is None and _is_dataset(data) and getattr(data, "population", None) is not None:
        population = data.population
    panel = _prepare_panel(data, "panel")
    panel = panel.filter(pl.col("revenue").is_not_null() & (pl.col("revenue") > 0))
    if panel.height == 0:
        raise InputError("panel: no store-month rows with revenue > 0")
    notes: list[str] = []
    if by not in panel.columns:
        notes.append(f"The panel has no '{by}' column; figures are for the whole market only.")
        panel = panel.with_columns(pl.lit("All").alias(by))
    whole_market = panel[by].n_unique() == 1 and panel[by][0] == "All"
    panel = _flag_partial(panel).with_columns(pl.col(by).cast(pl.String).alias("group"))
    as_of = panel["period"].max()
    win0 = _add_months(as_of, -(trailing_months - 1))

    def per_period(keys: list[str]) -> pl.DataFrame:
        per_store = panel.group_by([*keys, "store_id"]).agg(_v=pl.col("revenue").sum())
        return per_store.group_by(keys).agg(
            stores_open=pl.len(), sales=pl.col("_v").sum(), max_share=pl.col("_v").max() / pl.col("_v").sum()
        )

    ot = pl.concat(
        [
            *([per_period(["period", "group"])] if not whole_market else []),
            per_period(["period"])
            .with_columns(group=pl.lit("All"))
            .select("period", "group", "stores_open", "sales", "max_share"),
        ]
    )
    over_time = _disclose(
        ot.with_columns(sales_per_store=pl.col("sales") / pl.col("stores_open")),
        ["sales_per_store"],
        "stores_open",
        min_cell,
        dominance,
    ).sort("group", "period")

    now = panel.filter(pl.col("period") == as_of)
    if "closed_on" in now.columns:
        now = now.filter(
            pl.col("closed_on").is_null() | (pl.col("closed_on") >= pl.col("period").dt.month_end())
        )
    open_now = now.select("store_id", "group").unique("store_id")
    need = min(3, trailing_months)
    trail = (
        panel.filter((pl.col("period") >= win0) & ~pl.col("partial"))
        .join(open_now.select("store_id"), on="store_id", how="semi")
        .group_by("store_id")
        .agg(full_months=pl.len(), mean_revenue=pl.col("revenue").mean())
    )
    detail = (
        open_now.join(trail, on="store_id", how="left")
        .with_columns(
            pl.col("full_months").fill_null(0),
            judged=pl.col("full_months").fill_null(0) >= need,
        )
        .with_columns(at_risk=pl.col("judged") & (pl.col("mean_revenue") < breakeven_monthly_revenue))
    )

    window = (
        over_time.filter(pl.col("period") >= win0)
        .group_by("group")
        .agg(_s=pl.col("sales").sum(), _n=pl.col("stores_open").sum(), _min=pl.col("stores_open").min())
    )
    in_win = (
        panel.filter(pl.col("period") >= win0).group_by("group", "store_id").agg(_v=pl.col("revenue").sum())
    )
    top = pl.concat(
        [
            in_win.group_by("group").agg(max_share=pl.col("_v").max() / pl.col("_v").sum()),
            in_win.select(group=pl.lit("All"), max_share=pl.col("_v").max() / pl.col("_v").sum()),
        ]
    ).unique("group", keep="last")
    window = window.join(top, on="group", how="left")

    def risk(d: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
        return d.group_by(keys).agg(
            stores_open=pl.len(),
            stores_judged=pl.col("judged").sum(),
            stores_at_risk=pl.col("at_risk").sum(),
            stores_too_new=(~pl.col("judged")).sum(),
        )

    at_risk = (
        pl.concat(
            [
                *([risk(detail, ["group"])] if not whole_market else []),
                risk(detail.with_columns(group=pl.lit("All")), ["group"]),
            ]
        )
        .join(window, on="group", how="left")
        .with_columns(
            sales_per_store=pl.col("_s") / pl.col("_n"),
            share_at_risk=pl.when(pl.col("stores_judged") >= min_cell).then(
                pl.col("stores_at_risk") / pl.col("stores_judged")
            ),
            stores_at_risk=pl.when(pl.col("stores_judged") >= min_cell).then(pl.col("stores_at_risk")),
        )
    )
    at_risk = (
        _disclose(at_risk, ["sales_per_store"], "_min", min_cell, dominance)
        .select(
            "group",
            pl.col("stores_open").cast(pl.Int64),
            "sales_per_store",
            pl.col("stores_judged").cast(pl.Int64),
            pl.col("stores_at_risk").cast(pl.Int64),
            "share_at_risk",
            pl.col("stores_too_new").cast(pl.Int64),
            "suppressed",
        )
        .sort(pl.col("group") == "All", "group")
    )
    n_open = int(open_now.height)
    all_win = over_time.filter((pl.col("group") == "All") & (pl.col("period") >= win0))
    trailing_sales = float(all_win["sales"].mean())
    cap_now = trailing_sales / breakeven_monthly_revenue
    current = {
        "stores_open": float(n_open),
        "trailing_monthly_sales": trailing_sales,
        "capacity_now": cap_now,
        "oversupply_now": n_open - cap_now,
    }
    capacity = None
    if forecast is not None:
        capacity = (
            forecast.summary()
            .select(
                "period",
                demand="forecast",
                demand_lo="lo",
                demand_hi="hi",
                capacity=pl.col("forecast") / breakeven_monthly_revenue,
                capacity_lo=pl.col("lo") / breakeven_monthly_revenue,
                capacity_hi=pl.col("hi") / breakeven_monthly_revenue,
            )
            .with_columns(
                stores_open=pl.lit(float(n_open)),
                oversupply=n_open - pl.col("capacity"),
                oversupply_lo=n_open - pl.col("capacity_hi"),
                oversupply_hi=n_open - pl.col("capacity_lo"),
            )
        )
        notes.append(
            "Capacity holds the store count at its current level and divides forecast sales evenly across stores."
        )
    density, slope = _density(panel, detail, population, as_of, min_cell, dominance, notes)
    return SaturationResult(
        breakeven_monthly_revenue=float(breakeven_monthly_revenue),
        trailing_months=trailing_months,
        as_of=as_of,
        by=by,
        min_cell=min_cell,
        over_time=over_time,
        at_risk=at_risk,
        current=current,
        capacity=capacity,
        density=density,
        density_slope=slope,
        stores_at_risk_detail=detail.filter(pl.col("at_risk")).select(
            "store_id", "group", "full_months", "mean_revenue"
        ),
        notes=notes,
        currency=currency,
    )


def _disclose(
    df: pl.DataFrame, values: list[str], n_col: str, min_cell: int, dominance: float
) -> pl.DataFrame:
    """Apply the disclosure rule (too few stores, or one store's share above `dominance`) to `values`."""
    return suppress_cells(
        df, values, min_stores=min_cell, dominance=dominance, n_stores_col=n_col, max_share_col="max_share"
    )


def _density(panel, detail, population, as_of, min_cell, dominance, notes):
    if population is None or "municipality" not in panel.columns:
        return None, None
    pop = _frame(population, "population")
    _need(pop, ["municipality", "year", "population"], "population")
    keys = (
        pop.select(pl.col("municipality").cast(pl.String))
        .unique()
        .with_columns(year=pl.lit(as_of.year, pl.Int64))
    )
    pop = population_by_year(pop, keys).select("municipality", "population")  # the one population-year rule
    muni = panel.filter(pl.col("period") == as_of).select("store_id", "municipality").unique("store_id")
    d = (
        detail.join(muni, on="store_id", how="left")
        .group_by("municipality")
        .agg(
            stores_open=pl.len(),
            _judged=pl.col("judged").sum(),
            _spm=pl.col("mean_revenue").filter(pl.col("judged")).mean(),
            max_share=pl.col("mean_revenue").filter(pl.col("judged")).max()
            / pl.col("mean_revenue").filter(pl.col("judged")).sum(),
        )
    )
    dens = (
        pop.join(d, on="municipality", how="left")
        .with_columns(pl.col("stores_open").fill_null(0).cast(pl.Int64))
        .with_columns(stores_per_10k=pl.col("stores_open") / pl.col("population") * 1e4)
    )
    fit_df = dens.filter(
        (pl.col("_judged") > 0) & (pl.col("population") > 0) & pl.col("_spm").is_not_null()
    ).with_columns(ly=pl.col("_spm").log(), lx=pl.col("stores_per_10k").log(), _all=pl.lit(1))
    slope = None
    if fit_df.height >= 10 and fit_df["lx"].std() > 0:
        r = fe_ols(fit_df, "ly", ["lx"], fe=["_all"])
        lo, hi = r.ci("lx")
        slope = {"estimate": r.coef["lx"], "lo": lo, "hi": hi, "n_municipalities": float(fit_df.height)}
    else:
        notes.append("Too few municipalities with stores to relate density to sales per store.")
    dens = _disclose(
        dens.with_columns(sales_per_store=pl.col("_spm")), ["sales_per_store"], "_judged", min_cell, dominance
    ).select("municipality", "population", "stores_open", "stores_per_10k", "sales_per_store", "suppressed")
    return dens.sort("municipality"), slope
