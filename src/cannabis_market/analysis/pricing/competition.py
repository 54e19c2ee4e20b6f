"""Local competition and prices: the fixed-effects competition effect, and the constant-quality price
index (same stores, competition held fixed) with its annual compression."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from scipy import stats

from cannabis_market.analysis.inference import FEW_CLUSTERS, demean, dense_codes, fe_ols, two_way_effects
from cannabis_market.analysis.pricing import charts
from cannabis_market.analysis.pricing._base import (
    Estimate,
    annual_rate,
    check_freq,
    require,
    time_index,
)
from cannabis_market.analysis.pricing.elasticity import _panel_prep, _resolve_controls
from cannabis_market.analysis.pricing.trend import PriceTrendResult, price_trend
from cannabis_market.analysis.results import check_alpha
from cannabis_market.data.panels import with_density
from cannabis_market.errors import InputError
from cannabis_market.format import fmt_num, fmt_pct

if TYPE_CHECKING:
    import altair as alt


@dataclass
class CompetitionResult:
    """How store prices move with local competition (store + period fixed effects)."""

    alpha: float
    nobs: int
    n_stores: int
    n_clusters: int
    cluster: str
    log1p_competitors: Estimate | None  # change in log price per unit of log(1 + competitors)
    per_competitor: Estimate | None  # change in log price per additional local competitor
    density: Estimate | None  # change in log price per +1 store per 10,000 residents
    vcov: str = "CRV1"  # CRV3 (leave-one-cluster-out jackknife) when the clusters are few
    binned: pl.DataFrame | None = None
    notes: dict[str, int] = field(default_factory=dict)

    def figures(self) -> dict[str, float]:
        """Headline figures: the log(1 + competitors) effect and the % change per additional competitor."""
        out: dict[str, float] = {}
        for key, e in (
            ("competition_effect", self.log1p_competitors),
            ("per_competitor_pct", self.per_competitor_pct),
        ):
            if e is not None:
                out |= {key: e.estimate, f"{key}_lo": e.lo, f"{key}_hi": e.hi}
        return out

    @property
    def per_competitor_pct(self) -> Estimate | None:
        """Percentage price change per additional local competitor (exp(b) - 1)."""
        return self.per_competitor.as_pct() if self.per_competitor else None

    def summary(self) -> pl.DataFrame:
        specs = (
            ("log(1 + competitors)", "log price per unit log(1 + local competitors)", self.log1p_competitors),
            ("competitors", "log price per additional local competitor", self.per_competitor),
            ("density", "log price per +1 store per 10,000 residents", self.density),
        )
        rows = [e.row(term=term, meaning=meaning) for term, meaning, e in specs if e is not None]
        return pl.DataFrame(rows)

    def report(self) -> str:
        lvl = f"{1 - self.alpha:.0%}"
        parts = [
            f"Local competition and price ({fmt_num(self.nobs)} store-period rows, {self.n_stores} stores; store "
            f"and period fixed effects, errors clustered by {self.cluster}, {self.n_clusters} clusters"
            + (", leave-one-cluster-out (CRV3) as the clusters are few" if self.vcov == "CRV3" else "")
            + "). "
            "Identification comes from stores whose local competition changed over time (new stores opening, "
            "others closing nearby) compared with stores where it did not, in the same period."
        ]
        pc = self.per_competitor_pct
        if pc is not None:
            parts.append(
                f"Each additional local competitor goes with a {fmt_pct(pc.estimate, 2, signed=True)} change in a "
                f"store's price per gram ({lvl} interval {fmt_pct(pc.lo, 2, signed=True)} to "
                f"{fmt_pct(pc.hi, 2, signed=True)})."
            )
        if self.log1p_competitors is not None:
            e = self.log1p_competitors
            parts.append(
                f"On a log scale, doubling (1 + competitors) goes with a {fmt_pct(2**e.estimate - 1, signed=True)} "
                f"price change (coefficient {e.estimate:.3f}, {lvl} interval {e.lo:.3f} to {e.hi:.3f})."
            )
        if self.density is not None:
            e = self.density
            parts.append(
                f"One more store per 10,000 residents goes with a {fmt_pct(math.expm1(e.estimate), signed=True)} "
                f"price change ({lvl} interval {fmt_pct(math.expm1(e.lo), signed=True)} to "
                f"{fmt_pct(math.expm1(e.hi), signed=True)})."
            )
        parts.append(
            "Entry is not random — stores open where demand is growing — so read these as associations net of "
            "fixed store differences and common trends, not as guaranteed causal effects."
        )
        return " ".join(parts)

    def plot_data(self) -> pl.DataFrame:
        """What `chart()` draws: mean within-store log price by number of local competitors (cells of >= 5)."""
        if self.binned is None:
            return pl.DataFrame(schema={"competitors": pl.Float64, "log_p": pl.Float64, "n": pl.UInt32})
        return self.binned

    def chart(self) -> alt.Chart:
        """Mean within-store log price by number of local competitors (deviation from store/period means)."""
        return charts.competition_chart(self)


def competition_price_effect(
    panel: pl.DataFrame | pl.LazyFrame,
    alpha: float = 0.05,
    population: pl.DataFrame | pl.LazyFrame | None = None,
    cluster: str | None = None,
    exclude_partial: bool = True,
    vcov: str | None = None,
) -> CompetitionResult:
    """Log price per gram against local competition, with store and period fixed effects.

    `panel` has period, store_id, revenue, grams (or price_per_g) and `competitors` (other open stores in
    the same municipality) and/or `density` (stores per 10,000 residents). With `population` (municipality,
    year, population) the density is computed as (competitors + 1) / population * 10,000. Three separate
    regressions (one regressor each): log(1 + competitors), competitors (-> % price change per additional
    competitor) and density. Errors are clustered by municipality when there are at least 10 of them (the
    level at which competition varies), otherwise by store. `vcov` (default: "CRV3", the leave-one-cluster-out
    jackknife, when there are fewer than 50 clusters, else "CRV1"): with a few dozen municipalities CRV1
    intervals are too short. Density follows `data.panels.with_density`. A `log1p_competitors` column (e.g. the average of
    log(1 + competitors) over the days of the period, from `store_period_prices`) is used as is when present.
    Rows flagged `partial` are dropped unless `exclude_partial=False`.
    """
    where = "competition_price_effect"
    check_alpha(alpha, where)
    df, notes, _ = _panel_prep(panel, where, need_grams=False, exclude_partial=exclude_partial)
    if population is not None:
        df = with_density(df.drop("population", "density", strict=False), population)
    if "competitors" not in df.columns and "density" not in df.columns:
        raise InputError(
            f"{where}: needs a 'competitors' column (other open stores in the municipality) or a 'density' "
            f"column (stores per 10,000 residents); columns found: {', '.join(df.columns)}"
        )
    if cluster is None:
        cluster = (
            "municipality"
            if "municipality" in df.columns and df["municipality"].n_unique() >= 10
            else "store_id"
        )
    require(df, [cluster], where)
    if vcov is None:
        vcov = "CRV3" if df[cluster].n_unique() < FEW_CLUSTERS else "CRV1"
    fe = ("_unit", "_time")
    out: dict[str, Estimate | None] = {"log1p_competitors": None, "per_competitor": None, "density": None}
    nobs = n_cl = 0
    binned = None
    if "competitors" in df.columns:
        df = df.with_columns(pl.col("competitors").cast(pl.Float64)).with_columns(
            log1p_comp=pl.col("log1p_competitors")
            if "log1p_competitors" in df.columns
            else pl.col("competitors").log1p()
        )
        neg = int((df["competitors"] < 0).sum())
        if neg:
            raise InputError(f"{where}: column 'competitors' has {neg} negative value(s)")
        r1 = fe_ols(df, "log_p", ["log1p_comp"], fe=fe, cluster=cluster, alpha=alpha, vcov=vcov)
        r2 = fe_ols(df, "log_p", ["competitors"], fe=fe, cluster=cluster, alpha=alpha, vcov=vcov)
        out["log1p_competitors"] = Estimate.from_fit(r1, "log1p_comp")
        out["per_competitor"] = Estimate.from_fit(r2, "competitors")
        nobs, n_cl = r2.nobs, r2.n_clusters
        w = demean(df.drop_nulls(["log_p", "competitors"]), ["log_p"], fe)
        binned = (
            df.drop_nulls(["log_p", "competitors"])
            .select(
                pl.col("competitors").round().clip(upper_bound=float(df["competitors"].quantile(0.98) or 0))
            )
            .with_columns(w["log_p"])
            .group_by("competitors")
            .agg(pl.col("log_p").mean(), pl.len().alias("n"))
            .filter(pl.col("n") >= 5)
            .sort("competitors")
        )
    if "density" in df.columns:
        r3 = fe_ols(df, "log_p", ["density"], fe=fe, cluster=cluster, alpha=alpha, vcov=vcov)
        out["density"] = Estimate.from_fit(r3, "density")
        nobs, n_cl = nobs or r3.nobs, n_cl or r3.n_clusters
    return CompetitionResult(
        alpha=alpha,
        nobs=nobs,
        n_stores=df["store_id"].n_unique(),
        n_clusters=n_cl,
        cluster=cluster,
        vcov=vcov,
        binned=binned,
        notes=notes,
        **out,
    )


# -------------------------------------------------------------------------------- price index


def _period_effects(d: pl.DataFrame, col: str) -> pl.DataFrame:
    """Period effects g_t of `col` = unit effect + g_t + noise (relative to the first period; no dummies)."""
    d = d.select("_unit", "period", pl.col(col).cast(pl.Float64)).sort("period")
    unit = dense_codes(d["_unit"])
    time = d["period"].rank("dense").cast(pl.Int64).to_numpy() - 1
    g, _ = two_way_effects(d[col].to_numpy(), unit, time)
    periods = d.group_by("period").agg(n_obs=pl.len()).sort("period")
    return periods.with_columns(pl.Series(col, g)).select("period", col, "n_obs")


def _index_parts(
    panel: pl.DataFrame | pl.LazyFrame,
    adjust_competition: bool,
    exclude_partial: bool,
    alpha: float,
    where: str,
) -> tuple[pl.DataFrame, Estimate | None]:
    df, _, _ = _panel_prep(panel, where, need_grams=False, exclude_partial=exclude_partial)
    df = df.with_columns(_period=pl.col("period").cast(pl.String))
    adjust = adjust_competition and ("competitors" in df.columns or "log1p_competitors" in df.columns)
    delta = None
    cols = ["log_p"]
    if adjust:
        df, _ = _resolve_controls(df, "auto", where)
        fit = fe_ols(
            df, "log_p", ["log1p_competitors"], fe=("_unit", "_period"), cluster="store_id", alpha=alpha
        )
        delta = Estimate.from_fit(fit, "log1p_competitors")
        cols.append("log1p_competitors")
    d = df.drop_nulls(cols)
    g = _period_effects(d, "log_p")
    if adjust:
        g = g.join(_period_effects(d, "log1p_competitors").drop("n_obs"), on="period")
        g = g.with_columns(competition_adjustment=-delta.estimate * pl.col("log1p_competitors")).with_columns(
            log_index=pl.col("log_p") + pl.col("competition_adjustment")
        )
    else:
        g = g.with_columns(
            log_index=pl.col("log_p"), competition_adjustment=pl.lit(0.0), log1p_competitors=pl.lit(0.0)
        )
    first = g.row(0, named=True)
    g = g.with_columns(
        pl.col("log_index") - first["log_index"],
        pl.col("competition_adjustment") - first["competition_adjustment"],
        pl.col("log1p_competitors") - first["log1p_competitors"],
    )
    if "grams" in df.columns:
        raw = df.group_by("period").agg(price_per_g=pl.col("revenue").sum() / pl.col("grams").sum())
    else:
        raw = df.group_by("period").agg(pl.col("price_per_g").mean())
    out = g.with_columns(index=100 * pl.col("log_index").exp()).join(raw, on="period", how="left")
    return out, delta


def price_index(
    panel: pl.DataFrame | pl.LazyFrame,
    adjust_competition: bool = True,
    exclude_partial: bool = True,
) -> pl.DataFrame:
    """Constant-quality price index: what the same stores charge over time, with local competition held fixed.

    The market-average price per gram falls for two reasons: every store cuts prices (compression), and
    the mix changes (new stores, more competitors nearby, other categories). This index keeps only the
    first: log price = store(x category) effect + period effect + delta * log(1 + competitors) + noise;
    delta comes from the fixed-effects regression (as in `competition_price_effect`), and the period
    effects (found by alternating projections, no dummies) are the index. Pass a panel by category
    (`store_period_prices(..., by_category=True)`) so that a shift toward pricier categories is not read
    as a price rise. Returns period, index (100 in the first period), log_index, competition_adjustment
    (log points added back for the change in local competition since the first period), n_obs and the raw
    sales-weighted price_per_g. `compression_trend` turns it into an annual rate with an interval.
    """
    out, _ = _index_parts(panel, adjust_competition, exclude_partial, 0.05, "price_index")
    return out.select("period", "index", "log_index", "competition_adjustment", "n_obs", "price_per_g")


def compression_trend(
    panel: pl.DataFrame | pl.LazyFrame,
    alpha: float = 0.05,
    freq: str = "monthly",
    *,
    adjust_competition: bool = True,
    exclude_partial: bool = True,
    **trend_kw,
) -> PriceTrendResult:
    """Annual compression of the base price: the trend of `price_index`, weighted by the rows per period.

    Weighted least squares (weights = store-category rows behind each period) keeps the first months,
    priced from a handful of stores, from dominating. The index depends on the estimated competition
    effect delta, so its trend error has a second source; the interval adds it by the delta method:
    se^2 = se_trend^2 + (slope of the competition period effects)^2 * se_delta^2. Other arguments go to
    `price_trend` (breaks, n_boot, seed, hac, maxlags).
    """
    where = "compression_trend"
    check_alpha(alpha, where)
    parts, delta = _index_parts(panel, adjust_competition, exclude_partial, alpha, where)
    res = price_trend(
        parts,
        alpha,
        freq,
        price_col="index",
        weights="n_obs",
        label="constant-quality price index",
        **trend_kw,
    )
    if delta is None:
        return res
    n = parts.height
    t = time_index(parts["period"], freq)
    w = parts["n_obs"].cast(pl.Float64).to_numpy()
    X = np.column_stack([np.ones(n), t]) * np.sqrt(w)[:, None]
    b_l = float(np.linalg.lstsq(X, parts["log1p_competitors"].to_numpy() * np.sqrt(w), rcond=None)[0][1])
    sl = res.slope
    se = math.sqrt(sl.se**2 + (b_l * delta.se) ** 2)
    df_resid = max(n - 2, 1)
    q = stats.t.ppf(1 - alpha / 2, df_resid)
    p = float(2 * stats.t.sf(abs(sl.estimate / se), df_resid)) if se > 0 else 0.0
    slope = Estimate(sl.estimate, se, sl.estimate - q * se, sl.estimate + q * se, p)
    res.slope = slope
    res.annual = annual_rate(slope, check_freq(freq))
    res.extra_note = (
        f"The index holds local competition fixed (delta = {delta.estimate:.3f} per log(1 + competitors)); "
        "its interval includes the uncertainty of that adjustment."
    )
    return res
