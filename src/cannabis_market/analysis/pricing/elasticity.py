"""Own-price elasticity of grams sold from within-store price changes (store and period fixed effects)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from cannabis_market.analysis.inference import demean, fe_ols
from cannabis_market.analysis.pricing import charts
from cannabis_market.analysis.pricing._base import (
    MIN_PANEL_STORES,
    Estimate,
    require,
    to_frame,
    with_price,
)
from cannabis_market.analysis.results import check_alpha
from cannabis_market.errors import InputError
from cannabis_market.format import fmt_num

if TYPE_CHECKING:
    import altair as alt


def _panel_prep(
    panel: pl.DataFrame | pl.LazyFrame, where: str, need_grams: bool = True, exclude_partial: bool = True
):
    """Validate a store-period panel, add price_per_g / log_p and the fixed-effect keys.

    Rows flagged `partial` (a store's opening or closing period: not a full period of trading) are dropped
    when `exclude_partial`; their competitor counts and volumes describe only part of the period.
    """
    df = to_frame(panel, where)
    require(df, ["period", "store_id"], where)
    n_partial = 0
    if exclude_partial and "partial" in df.columns:
        n_partial = int(df["partial"].fill_null(False).sum())
        df = df.filter(~pl.col("partial").fill_null(False))
    df, notes = with_price(df, where, need_grams=need_grams)
    if n_partial:
        notes = {"partial_periods": n_partial, **notes}
    n_periods = df["period"].n_unique()
    if n_periods < 2:
        raise InputError(
            f"{where}: single-period data (1 period, {df.height} rows): with period fixed effects nothing "
            "identifies the effect; it needs prices observed over several periods"
        )
    n_stores = df["store_id"].n_unique()
    if n_stores < MIN_PANEL_STORES or df.height < 20:
        raise InputError(
            f"{where}: too few observations ({df.height} rows, {n_stores} stores); need at least "
            f"{MIN_PANEL_STORES} stores and 20 store-period rows"
        )
    has_cat = "category" in df.columns and df["category"].n_unique() > 1
    if has_cat:
        df = df.with_columns(
            _unit=pl.concat_str(
                [pl.col("store_id").cast(pl.String), pl.col("category").cast(pl.String)], separator="|"
            ),
            _time=pl.concat_str(
                [pl.col("period").cast(pl.String), pl.col("category").cast(pl.String)], separator="|"
            ),
        )
    else:
        df = df.with_columns(_unit=pl.col("store_id").cast(pl.String), _time=pl.col("period").cast(pl.String))
    return df.with_columns(log_p=pl.col("price_per_g").log(), _all=pl.lit(1)), notes, has_cat


def _binned(
    df: pl.DataFrame, x: str, y: str, fe: Sequence[str], controls: Sequence[str] = (), bins: int = 20
) -> pl.DataFrame:
    """Within (fixed-effects demeaned, controls partialled out) x and y averaged in quantile bins of x.

    By Frisch-Waugh-Lovell the slope through these points is the fixed-effects coefficient on x.
    """
    cols = [x, y, *controls]
    w = demean(df.drop_nulls(cols), cols, fe)
    if controls:
        C = w.select(controls).to_numpy()
        for c in (x, y):
            v = w[c].to_numpy()
            w = w.with_columns(pl.Series(c, v - C @ np.linalg.lstsq(C, v, rcond=None)[0]))
    return (
        w.with_columns(bin=(pl.col(x).rank("ordinal") - 1).floordiv(math.ceil(w.height / bins)))
        .group_by("bin")
        .agg(pl.col(x).mean(), pl.col(y).mean(), pl.len().alias("n"))
        .sort(x)
    )


@dataclass
class ElasticityResult:
    """Own-price elasticity of grams sold, from within-store price changes (store + period effects)."""

    elasticity: Estimate
    alpha: float
    nobs: int
    n_stores: int
    n_periods: int
    fe: tuple[str, ...]
    r2_within: float
    pooled: Estimate  # no fixed effects: all variation, across and within stores
    between: Estimate  # cross-section of store averages
    by_category: dict[str, Estimate] = field(default_factory=dict)
    binned: pl.DataFrame | None = None
    notes: dict[str, int] = field(default_factory=dict)
    controls: tuple[str, ...] = ()

    @property
    def fixed_effects(self) -> Estimate:
        """The headline estimate (store + period fixed effects), next to `pooled` and `between`.

        Same as the `elasticity` field, which reads oddly as `result.elasticity.estimate`."""
        return self.elasticity

    def figures(self) -> dict[str, float]:
        """What the pricing notebook records: the fixed-effects elasticity and its interval."""
        e = self.elasticity
        return {"price_elasticity": e.estimate, "price_elasticity_lo": e.lo, "price_elasticity_hi": e.hi}

    @property
    def estimate(self) -> float:
        return self.elasticity.estimate

    @property
    def lo(self) -> float:
        return self.elasticity.lo

    @property
    def hi(self) -> float:
        return self.elasticity.hi

    def summary(self) -> pl.DataFrame:
        """Fixed-effects estimate first, then the biased comparisons and any per-category estimates."""
        rows = [
            ("store + period fixed effects", "all", self.elasticity),
            ("pooled OLS, no fixed effects", "all", self.pooled),
            ("between stores (cross-section of averages)", "all", self.between),
            *[("store + period fixed effects", c, e) for c, e in self.by_category.items()],
        ]
        return pl.DataFrame(
            [
                {
                    "model": m,
                    "category": c,
                    "elasticity": e.estimate,
                    "std_error": e.se,
                    "lo": e.lo,
                    "hi": e.hi,
                    "p_value": e.p_value,
                }
                for m, c, e in rows
            ]
        )

    def report(self) -> str:
        e = self.elasticity
        lvl = f"{1 - self.alpha:.0%}"
        txt = (
            f"Price elasticity of demand: {e.estimate:.2f} ({lvl} interval {e.lo:.2f} to {e.hi:.2f}; "
            f"{fmt_num(self.nobs)} store-period rows, {self.n_stores} stores, {self.n_periods} periods, errors "
            f"clustered by store). A 1% higher price goes with about {abs(e.estimate):.2f}% "
            f"{'fewer' if e.estimate < 0 else 'more'} grams sold.\n"
            "What identifies it: only within-store variation — each store's price deviations over time from its "
            "own average, net of the market-wide swings that hit every store in the same period (period fixed "
            "effects"
            + (", by category" if "category" in self.fe[0] else "")
            + "). Permanent differences between stores (location, size, clientele) are removed by the store "
            "effects, so they cannot masquerade as a price response."
            + (
                " It also holds local competition fixed (log(1 + competitors)): a new store nearby moves both a "
                "store's price and its sales, which would otherwise be read as a price response."
                if "log1p_competitors" in self.controls
                else ""
            )
            + " It is causal only if those within-store price changes are not themselves reactions to "
            "store-specific demand shocks.\n"
            "Why a plain cross-sectional regression is biased: prices are set in response to demand. Busy stores "
            "in good locations can charge more and still sell more, so across stores price and quantity move "
            "together through unobserved store quality and location (simultaneity and omitted-variable bias), "
            "which pulls the slope toward zero or even above it; other fixed differences (pricier products "
            "selling fewer grams) can push it the other way. Either way the cross-section does not measure how "
            f"buyers respond to a price change. Here the pooled regression without fixed effects gives "
            f"{self.pooled.estimate:.2f} and the between-store cross-section {self.between.estimate:.2f}.\n"
            "Published estimates for context: about -0.4 to -1.8 (British Columbia regulated market -1.4; "
            "surveys -1.84; pre-legalization -0.42 to -0.60)."
        )
        if self.notes:
            txt += (
                "\nLeft out: "
                + ", ".join(f"{v} row(s) {k.replace('_', ' ')}" for k, v in self.notes.items())
                + "."
            )
        return txt

    def plot_data(self) -> pl.DataFrame:
        """What `chart()` draws: within-store log price and log grams in 20 quantile bins (log_p, log_q, n)."""
        if self.binned is None:
            return pl.DataFrame(schema={"log_p": pl.Float64, "log_q": pl.Float64, "n": pl.UInt32})
        return self.binned

    def chart(self) -> alt.LayerChart:
        """Binned within-store log grams against log price, with the fitted elasticity line."""
        return charts.elasticity_chart(self)


def _resolve_controls(
    df: pl.DataFrame, controls: Sequence[str] | str, where: str
) -> tuple[pl.DataFrame, list[str]]:
    """'auto' -> log(1 + competitors) when a competitors column exists; names must be numeric columns."""
    if controls == "auto":
        has = "competitors" in df.columns or "log1p_competitors" in df.columns
        controls = ["log1p_competitors"] if has else []
    elif isinstance(controls, str):
        controls = [controls]
    out = []
    for c in controls:
        if c == "log1p_competitors" and "log1p_competitors" not in df.columns:
            require(df, ["competitors"], where)
            df = df.with_columns(log1p_competitors=pl.col("competitors").cast(pl.Float64).log1p())
        else:
            require(df, [c], where)
            df = df.with_columns(pl.col(c).cast(pl.Float64))
        out.append(c)
    return df, out


def price_elasticity(
    panel: pl.DataFrame | pl.LazyFrame,
    alpha: float = 0.05,
    controls: Sequence[str] | str = "auto",
) -> ElasticityResult:
    """Elasticity of grams sold with respect to price per gram, with store and period fixed effects.

    `panel` has period, store_id, revenue, grams (and optionally category; then the effects are
    store x category and period x category, and per-category estimates are added). Price = revenue / grams.
    `controls`: extra regressors; "auto" adds log(1 + competitors) when the panel has `competitors`,
    because a new nearby store moves both a store's price and its sales (leaving it out biases the
    elasticity). Errors are clustered by store. Pooled and between-store regressions (same controls, no
    fixed effects) are reported for comparison only: they use the cross-store variation that is biased by
    demand-driven pricing.
    """
    where = "price_elasticity"
    check_alpha(alpha, where)
    df, notes, has_cat = _panel_prep(panel, where)
    df, ctrl = _resolve_controls(df, controls, where)
    df = df.with_columns(log_q=pl.col("grams").log())
    x = ["log_p", *ctrl]
    fe = ("_unit", "_time")
    res = fe_ols(df, "log_q", x, fe=fe, cluster="store_id", alpha=alpha)
    pooled = fe_ols(df, "log_q", x, fe=("_all",), cluster="store_id", alpha=alpha)
    means = df.group_by("_unit").agg(pl.col("log_q", *x).mean(), pl.lit(1).alias("_all"))
    try:
        between = Estimate.from_fit(
            fe_ols(means, "log_q", x, fe=("_all",), cluster=None, alpha=alpha), "log_p"
        )
    except InputError:  # e.g. the control does not vary across stores
        between = Estimate(*(float("nan"),) * 5)
    by_cat: dict[str, Estimate] = {}
    if has_cat:
        for (cat,), sub in df.group_by("category"):
            try:
                r = fe_ols(sub, "log_q", x, fe=fe, cluster="store_id", alpha=alpha)
            except InputError:
                continue
            by_cat[str(cat)] = Estimate.from_fit(r, "log_p")
        by_cat = dict(sorted(by_cat.items()))
    return ElasticityResult(
        elasticity=Estimate.from_fit(res, "log_p"),
        alpha=alpha,
        nobs=res.nobs,
        n_stores=df["store_id"].n_unique(),
        n_periods=df["period"].n_unique(),
        fe=("store x category", "period x category") if has_cat else ("store", "period"),
        r2_within=res.r2_within,
        pooled=Estimate.from_fit(pooled, "log_p"),
        between=between,
        by_category=by_cat,
        binned=_binned(df, "log_p", "log_q", fe, ctrl),
        notes=notes,
        controls=tuple(ctrl),
    )
